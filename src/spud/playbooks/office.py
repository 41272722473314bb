"""Playbook: workbook and document edits: look, plan the cells, write, recalculate, verify."""

from __future__ import annotations

import re
from pathlib import Path

from spud.playbooks import playbook
from spud.playbooks.base import Brief, head_lines, inputs_and_outputs, named_files, workspace_files
from spud.playbooks.cells_draft import CellsDraft
from spud.playbooks.checks import (
    TaskVerifier,
    changed_check,
    named_sheets,
    office_check,
    outputs_check,
    ranges_check,
)
from spud.playbooks.script_draft import ScriptDraft
from spud.playbooks.sheet_shapes import sheet_checks
from spud.sandbox.bubblewrap import Sandbox
from spud.tools.office.slips import formula_slips, slips_text

OFFICE = (".xlsx", ".xlsm", ".docx", ".pptx")
TEXT_INPUTS = (".csv", ".txt", ".md", ".json")
SHOWN_ROWS, SHOWN_COLS = 15, 12
# Work on whole rows (picking, ordering, copying them) takes a script; cells take the rest.
ROWS_WORK = re.compile(
    r"\b(?:sort(?:ed|s)?|order(?:ed)? by|filter(?:ed)?|lists? only|only the (?:rows|items)|"
    r"cop(?:y|ies)|remove|delete|duplicates?|each row of)\b",
    re.IGNORECASE,
)
# A task that changes its office files in place (no new file named) must leave them changed.
EDITS = re.compile(
    r"\b(?:put|write|add|fill|fix|change|update|set|insert|replace|correct|make|rename|sort|"
    r"remove|delete|format|bold|highlight)\b",
    re.IGNORECASE,
)
# A task about a workbook's wrong formulas: the slips it already holds are what to fix.
DROPS_SHEETS = re.compile(r"\b(?:remove|delete|drop|rename)\b[^.]*\bsheets?\b", re.IGNORECASE)
FIXES = re.compile(r"\b(?:fix|wrong|incorrect|mistakes?|errors?|broken)\b", re.IGNORECASE)
LIBRARIES = (
    "; openpyxl, pandas, python-docx and python-pptx are installed (write workbooks with "
    "openpyxl, not pandas: its to_excel rewrites a workbook without its formulas, titles and "
    "other sheets). Formulas go in as text "
    "starting with '=' (openpyxl keeps them; the workbook is recalculated when it is checked)"
)

# How to write each kind of new file, said only for the kinds the task makes (a 1.5B asked for
# review.pptx saved an openpyxl workbook under that name, three rounds).
WRITERS = {
    ".pptx": "write a .pptx with python-pptx: `from pptx import Presentation`, `prs = "
    "Presentation()`, per slide `s = prs.slides.add_slide(prs.slide_layouts[1])` (title and "
    "bullets), `s.shapes.title.text = 'Title'`, `body = s.placeholders[1].text_frame`, "
    "`body.text = 'first bullet'`, `body.add_paragraph().text = 'next bullet'`, then "
    "`prs.save(name)`; every placeholder of a slide's layout gets text (the check reports an "
    "empty one: a title slide, `slide_layouts[0]`, has its subtitle in `placeholders[1]`)",
    ".docx": "write a .docx with python-docx: `from docx import Document`, `doc = Document()`, "
    "`doc.add_heading('Title', level=1)`, `doc.add_paragraph('text')`, a table as `t = "
    "doc.add_table(rows=1, cols=n)`, `t.rows[0].cells[i].text = 'header'`, `cells = "
    "t.add_row().cells` per row, then `doc.save(name)`",
    ".xlsx": "write a new .xlsx with openpyxl: `from openpyxl import Workbook`, `wb = "
    "Workbook()`, `ws = wb.active`, `ws.title = 'Name'`, `ws.append([...])` per row, "
    "`wb.create_sheet('Other')` for more sheets, a formula as `ws['D9'] = '=SUM(D2:D8)'`, bold "
    "as `from openpyxl.styles import Font` and `ws['A1'].font = Font(bold=True)`, a number "
    "format per cell as `ws['D2'].number_format = '0.00'`, then `wb.save(name)`",
}

# The scripts' reads of a workbook went wrong on openpyxl itself (`sum(ws['D'])` of cells, the
# header row summed, `ws['B2:B4'].values`): its values come loaded as plain lists.
LOADED = (
    ". Do not open the input workbooks to read them: their values are already loaded, e.g. "
    "`rows = {example}` gives that sheet's rows as lists of values, the header row first "
    "(`header, data = rows[0], rows[1:]`; a formula without a stored value is its text). "
    "Use openpyxl only to write a workbook"
)


@playbook
class OfficeWork:
    """Show the workbook first, then write cells and check the recalculated values."""

    name = "office"

    def score(self, task: str, workspace: Path) -> int:
        names = named_files(task)
        return 3 if any(n.lower().endswith(OFFICE) for n in names) else 0

    def brief(self, task: str, workspace: Path, sandbox: Sandbox) -> Brief:
        inputs, outputs = inputs_and_outputs(task, workspace_files(workspace))
        parts = []
        for rel in inputs[:4]:
            if rel.lower().endswith((".xlsx", ".xlsm")):
                parts.append(workbook_view(workspace / rel))
            elif rel.lower().endswith(TEXT_INPUTS):
                parts.append(head_lines(workspace, rel, 15))
        office = [n for n in [*inputs, *outputs] if n.lower().endswith(OFFICE)]
        prompt = (
            "\nHow to do this task:\n"
            "1. The files are shown below: find the sheets, columns and cells the task names.\n"
            "2. Write with sheet_write: formulas are text starting with '='. Fill every row "
            "the task covers, not only the first one.\n"
            "3. After each write the workbook is recalculated and the values are shown: check "
            "them against the task and fix errors.\n"
            "4. Documents and slides: write them with docx_write or pptx_write.\n"
            "5. When the files hold what the task asks for, call finish."
        )
        checks = []
        if outputs:
            checks.append(outputs_check(workspace, outputs))
        elif EDITS.search(task) and (edited := [n for n in inputs if n.lower().endswith(OFFICE)]):
            checks.append(changed_check(workspace, edited))  # an edit in place must change it
        if office:
            fixing, keep = bool(FIXES.search(task)), not DROPS_SHEETS.search(task)
            named = named_sheets(task)
            checks.append(office_check(workspace, office, fixing, keep_sheets=keep, named=named))
            if (ranges := ranges_check(workspace, office, task)) is not None:
                checks.append(ranges)
            writes = bool(outputs) or bool(EDITS.search(task))
            checks += sheet_checks(workspace, task, office, writes)
        context = "Spud looked at the files before you start.\n\n" + "\n\n".join(parts)
        verifier = TaskVerifier(checks=checks)
        # a text model first writes one script (openpyxl, python-docx, python-pptx), run and
        # checked; an edit of one workbook's cells is drafted as the cells themselves
        shown = "\n\n".join(parts)
        books = [n for n in inputs if n.lower().endswith((".xlsx", ".xlsm"))]
        opening = ScriptDraft(
            task,
            shown,
            verifier,
            LIBRARIES
            + (LOADED.format(example=example_sheet(workspace, books)) if books else "")
            + writers(outputs),
            workspace=workspace,
            sheets=books,
            outputs=outputs,
        )
        if (data := cell_edit(task, workspace, inputs, outputs)) is not None:
            opening = CellsDraft(
                task, shown, verifier, inputs[0], list(data), data, opening, workspace
            )
            opening.fixing = bool(FIXES.search(task))
        return Brief(
            playbook=self.name,
            opening=opening,
            prompt=prompt,
            context=context if parts else "",
            verifier=verifier,
            toolsets={"office"},
        )


def cell_edit(
    task: str, workspace: Path, inputs: list[str], outputs: list[str]
) -> dict[str, set[str]] | None:
    """The sheets of the one workbook a task edits in place (nothing else read or made, no
    work on whole rows), each with the cells that hold data (values, not formulas); None for
    any other office task."""
    from spud.tools.office.workbook import OfficeError, load_workbook

    workbooks = [n for n in inputs if n.lower().endswith(".xlsx")]
    if outputs or len(inputs) != 1 or len(workbooks) != 1 or ROWS_WORK.search(task):
        return None
    try:
        book = load_workbook(workspace / workbooks[0])
    except OfficeError:
        return None
    return {
        ws.title: {
            c.coordinate
            for row in ws.iter_rows()
            for c in row
            if c.value is not None and not str(c.value).startswith("=")
        }
        for ws in book.worksheets
    }


def writers(outputs: list[str]) -> str:
    """How to write the office files the task makes, one clause per kind."""
    kinds = dict.fromkeys(Path(o).suffix.lower() for o in outputs)
    return "".join(f". To {WRITERS[k]}" for k in kinds if k in WRITERS)


def example_sheet(workspace: Path, books: list[str]) -> str:
    """How a script names the first workbook's first sheet in SHEETS."""
    from spud.tools.office.workbook import OfficeError, load_workbook

    try:
        first = load_workbook(workspace / books[0]).worksheets[0].title
    except (OfficeError, IndexError):
        first = "Sheet1"
    return f"SHEETS[{books[0]!r}][{first!r}]"


def workbook_view(path: Path) -> str:
    """Each sheet's first rows as a grid with addresses, formulas shown as written."""
    from openpyxl.utils import get_column_letter

    from spud.tools.office.workbook import OfficeError, load_workbook

    try:
        wb = load_workbook(path)
    except OfficeError as exc:
        return f"{path.name}: {exc}"
    lines = [f"{path.name}: sheets {', '.join(repr(ws.title) for ws in wb.worksheets)}"]
    for ws in wb.worksheets:
        cols = min(ws.max_column, SHOWN_COLS)
        lines.append(
            f"sheet {ws.title!r} ({ws.max_row} rows, columns A-{get_column_letter(cols)}):"
        )
        for row in ws.iter_rows(min_row=1, max_row=min(ws.max_row, SHOWN_ROWS), max_col=cols):
            cells = [f"{c.coordinate}={c.value}" for c in row if c.value is not None]
            if cells:
                lines.append("  " + " | ".join(cells))
        if ws.max_row > SHOWN_ROWS:
            lines.append(f"  ... {ws.max_row - SHOWN_ROWS} more rows (sheet_read shows them)")
    if slips := slips_text(formula_slips(wb)):  # what a spreadsheet program would flag
        lines.append(slips)
    return "\n".join(lines)
