"""Workbook edits drafted as a dict of cells (`"Orders!G2:G31": "=E2*F2"`), written, checked."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spud.core.messages import Message, ModelReply, ToolCall
from spud.core.protocols import Act, Opening, TextModel, Verifier
from spud.playbooks.draft import BLOCK, REDRAFT_TEMPERATURE, said, usage_of
from spud.playbooks.sheet_shapes import (
    CELL,
    MAX_CELLS,
    cell_order,
    named_cells,
    titled_cells,
)
from spud.tools.office.slips import formula_slips

CELLS_SYSTEM = "You are an expert spreadsheet user. You edit workbooks with Excel formulas."
CELLS_ASK = (
    "Reply with the cells to write, as a Python dict named cells in one ```python block: "
    "each key a cell or range of {workbook} with its sheet, each value a number, a text or a "
    "formula (text starting with '='). A range takes one formula and fills it, its row and "
    "column numbers moving as in a spreadsheet, or a list of values in order. A sheet that "
    "the task asks for is added. Headers and labels are plain text. Write only the cells "
    "that change. For example:\n"
    "```python\ncells = {{\n"
    '    "Stock!E1": "Value",\n'
    '    "Stock!E2:E20": "=C2*D2",  # =C3*D3 in E3, and so on\n'
    '    "Stock!A21:B21": ["Total", "all items"],\n'
    '    "Stock!E21": "=SUM(E2:E20)",\n'
    "}}\n```"
)
# "each order's unit price looked up from the Prices sheet": a 1.5B wrote =Prices!B2 row by
# row, as if the two sheets' rows matched
LOOKUP = re.compile(r"\blook(?:s|ed|ing)?[ -]?up\b|\blookup\b|\bmatching\b", re.IGNORECASE)
LOOKUP_HINT = (
    " A value found by its key in another sheet's table is a lookup: "
    '"Orders!F2:F20": "=VLOOKUP(B2, Prices!$A$2:$B$50, 2, FALSE)" finds B2 in the first '
    "column of Prices!A2:B50 and gives that row's second column ($ keeps the table fixed "
    "as the formula fills the range)."
)
CELLS_REPAIR = (
    "Spud wrote the cells and recalculated the workbook:\n{written}\n\nThe checks say:\n"
    "{checks}\n\nReply with the cells to change, as the dict named cells in one ```python "
    "block whose first line is a comment on what is wrong."
)
# a `"key": "=formula",` line of a cells dict, the formula up to the line's last quote mark
QUICK_FIXED = "Fixed the formulas a spreadsheet program flags, with its own quick fixes."
FORMULA_LINE = re.compile(
    r'^(\s*)("[^"\n]+"|\'[^\'\n]+\')\s*:\s*"(=[^\n]*)"(\s*,?\s*(?:#[^\n]*)?)$', re.MULTILINE
)


class CellsError(ValueError):
    """A cells reply that cannot be written, with what to change."""


class Unchanged(CellsError):
    """A cells reply whose every cell already holds what it would write."""


@dataclass
class CellsDraft:
    """Rounds of cells, write, recalculate, check: a workbook edit's first steps on a text
    model, without a script's openpyxl calls to get wrong. `then` takes over if no round's
    cells pass the checks (e.g. a script, for work on whole rows)."""

    task: str
    shown: str  # the workbook as the playbook shows it
    verifier: Verifier
    workbook: str  # its path in the workspace
    sheets: list[str]  # its sheets, the first being the one a bare address means
    data: dict[str, set[str]] = field(default_factory=dict)  # cells holding values, by sheet
    then: Opening | None = None
    workspace: Path | None = None  # where the workbook is: cells that already hold a write's
    # value are left out of it
    rounds: int = 3
    max_tokens: int = 1536
    fixing: bool = False  # a task about wrong formulas: the slips left take their quick fixes

    def __call__(self, model: TextModel, act: Act) -> None:
        ask = f"{self.task}\n\n{self.shown}\n\n{CELLS_ASK.format(workbook=self.workbook)}"
        if LOOKUP.search(self.task):
            ask += LOOKUP_HINT
        chat = [Message(role="system", content=CELLS_SYSTEM), Message(role="user", content=ask)]
        unused: list[ModelReply] = []
        tried: list[dict[str, Any]] = []
        failed = ""  # what the checks said of the last cells written
        temperature = None
        for _ in range(self.rounds):
            reply = model.chat(
                chat, max_tokens=self.max_tokens, temperature=temperature, until_block=True
            )
            text = reply.message.content
            chat.append(Message(role="assistant", content=text))
            try:
                cells = cells_in(text)
                writes = self.changes(self.settled(by_sheet(cells, self.sheets)))
                self.data_kept(writes)
                self.titles_kept(writes)
            except CellsError as exc:
                # formulas given back as they were, slips among them: their quick fixes
                if isinstance(exc, Unchanged) and self.quick_fixed(act):
                    if all(c.passed for c in self.verifier.check()):
                        act(ToolCall(name="finish", arguments={"summary": QUICK_FIXED}), {})
                        return
                temperature = REDRAFT_TEMPERATURE  # the same reply again would not help
                # cells given back as written: what the checks said of them, again (a 1.5B
                # gave "G1": "=E1*F1" back for a title, three rounds)
                told = f"\nThe checks still say:\n{failed}" if isinstance(exc, Unchanged) else ""
                chat.append(
                    Message(role="user", content=f"{exc}{told} Reply with the corrected dict.")
                )
                unused.append(reply)
                continue
            if cells in tried:  # the same cells again: a fresh chat, sampled more freely
                chat, temperature = chat[:2], REDRAFT_TEMPERATURE
                unused.append(reply)
                continue
            tried.append(cells)
            temperature = None
            meta: dict[str, Any] = {
                "kind": "draft",
                "draft": text,
                "usage": usage_of(*unused, reply),
            }
            if unused:  # the replies sent back unwritten, kept for whoever reads the run
                meta["unused"] = [r.message.content for r in unused]
            unused, results = [], []
            for sheet, values in writes.items():
                if sheet not in self.sheets:
                    add = {"path": self.workbook, "name": sheet}
                    results.append(act(ToolCall(name="sheet_add", arguments=add), meta).content)
                    self.sheets.append(sheet)
                    meta = {"kind": "draft"}
                args = {"path": self.workbook, "cells": values, "sheet": sheet}
                results.append(act(ToolCall(name="sheet_write", arguments=args), meta).content)
                meta = {"kind": "draft"}  # the reply's text and cost go with its first call
            checks = self.verifier.check()
            if not all(c.passed for c in checks) and (fixed := self.quick_fixed(act)):
                results += fixed
                checks = self.verifier.check()
            if all(c.passed for c in checks):
                summary = said(text) or f"Wrote {len(cells)} cells of {self.workbook}; checked."
                act(ToolCall(name="finish", arguments={"summary": summary}), {})
                return
            failed = "\n".join(f"- {c.name}: {c.detail}" for c in checks if not c.passed)
            written = "\n".join(r or "" for r in results)[-2500:]
            chat.append(
                Message(role="user", content=CELLS_REPAIR.format(written=written, checks=failed))
            )
        if self.then is not None:
            self.then(model, act)

    def quick_fixed(self, act: Act) -> list[str]:
        """Write the quick fixes of the slips the workbook holds, a step per sheet (in a task
        about wrong formulas); what each write said."""
        results = []
        for sheet, values in self.quick_fixes().items():
            args = {"path": self.workbook, "cells": values, "sheet": sheet}
            call = ToolCall(name="sheet_write", arguments=args)
            results.append(act(call, {"kind": "draft", "quick_fix": True}).content or "")
        return results

    def quick_fixes(self) -> dict[str, dict[str, str]]:
        """In a task about wrong formulas, the fix a spreadsheet program offers for each slip
        the workbook still holds, by sheet (a 1.5B shown `Deals!F38 =SUM(F2:F36): leaves
        out F37` and `=SUMIF(Deals!$B$2:$B$30, ...)` among ranges to row 37 gave both back
        as they were, three rounds)."""
        from spud.tools.office.workbook import OfficeError, load_workbook

        if not self.fixing or self.workspace is None:
            return {}
        try:
            book = load_workbook(self.workspace / self.workbook)
        except OfficeError:  # a workbook that does not open is the checks' to report
            return {}
        fixes: dict[str, dict[str, str]] = {}
        for slip in formula_slips(book):
            if slip.fix:
                fixes.setdefault(slip.sheet, {})[slip.cell] = slip.fix
        return fixes

    def settled(self, writes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The writes with each sheet one to write or to add. A sheet is added only when the
        task names it (a file's name does not name a sheet: "Sales" is not "sales.xlsx").
        In a one-sheet workbook any other sheet is that sheet (a 1.5B wrote "Sheet1!B5" and
        "Sales!B5" into sales.xlsx, whose one sheet is "Sheet"); elsewhere it is an error."""
        unknown = [
            s
            for s in writes
            if s not in self.sheets
            and not re.search(rf"(?<![\w.]){re.escape(s)}(?!\w|\.\w)", self.task, re.I)
        ]
        if not unknown:
            return writes
        if len(self.sheets) > 1:
            have = ", ".join(repr(s) for s in self.sheets)
            raise CellsError(
                f"{self.workbook} has no sheet {unknown[0]!r} (its sheets: {have}), and the "
                "task asks for no such new sheet."
            )
        names = "|".join(re.escape(s) for s in unknown)
        prefix = re.compile(rf"(?<![\w.!])(?:'(?:{names})'|(?:{names}))!", re.I)
        only = writes.pop(self.sheets[0], {})
        for sheet in unknown:
            only.update(writes.pop(sheet))
        for at, value in only.items():
            if isinstance(value, str) and value.startswith("="):
                only[at] = prefix.sub("", value)  # =SUM(Sales!B2:B4) reads this sheet
        return {self.sheets[0]: only, **writes}

    def changes(self, writes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The writes without the cells that already hold what would be written; an error
        when that is all of them (a 1.5B asked to fix a wrong formula gave back every formula
        as it was, and the unchanged workbook passed as done)."""
        from spud.tools.office.workbook import OfficeError, load_workbook

        if self.workspace is None:
            return writes
        try:
            book = load_workbook(self.workspace / self.workbook)
        except OfficeError:
            return writes
        left = {
            sheet: {
                at: v
                for at, v in values.items()
                if sheet not in book.sheetnames or not same_value(book[sheet][at].value, v)
            }
            for sheet, values in writes.items()
        }
        left = {sheet: values for sheet, values in left.items() if values}
        if writes and not left:
            raise Unchanged(
                "Every cell in your dict already holds exactly that, so writing it changes "
                "nothing. Look again at what the task asks and give the cells that must change."
            )
        return left

    def data_kept(self, writes: dict[str, dict[str, Any]]) -> None:
        """Cells that hold the workbook's data are written only when the task names them
        (the 1.5B wrote a summary's formulas over the Sales rows they were to add up)."""
        named = named_cells(self.task)
        for sheet, values in writes.items():
            over = sorted(set(values) & self.data.get(sheet, set()) - named, key=cell_order)
            if over:
                shown = ", ".join(over[:6]) + (" ..." if len(over) > 6 else "")
                raise CellsError(
                    f"{sheet}!{shown} hold the workbook's data, which the task does not ask to "
                    "change. Write the new cells where the task says: empty cells, a new "
                    "column or row, or the sheet it asks for."
                )

    def titles_kept(self, writes: dict[str, dict[str, Any]]) -> None:
        """A formula is not written where the task puts a text: a column's title or a quoted
        label (a 1.5B asked for "column E titled Average (E1)" wrote =AVERAGE(B2:D23) into E1
        and no title, in two tasks)."""

        for address, title in titled_cells(self.task).items():
            for sheet, values in writes.items():
                value = values.get(address)
                if not (isinstance(value, str) and value.startswith("=")):
                    continue
                told = (
                    f'{sheet}!{address} is where the task puts the text "{title}", not a formula.'
                )
                if address.endswith("1") and address[-2].isalpha():  # a column's title
                    column = address[:-1]
                    rows = [int(m[2]) for c in self.data.get(sheet, ()) if (m := CELL.match(c))]
                    last = max(rows, default=0)
                    below = f"{column}2:{column}{last}" if last > 1 else f"{column}2 down"
                    told += (
                        " A column's formulas go in the rows below its title "
                        f'("{sheet}!{below}": one formula that fills down).'
                    )
                raise CellsError(told)


def same_value(held: Any, written: Any) -> bool:
    """Whether a cell holding `held` already has the value or formula `written`."""
    if isinstance(held, str) and isinstance(written, str) and held.startswith("="):
        return held.replace(" ", "").upper() == written.replace(" ", "").upper()
    if isinstance(held, bool) or isinstance(written, bool):
        return held is written
    return held == written


def cells_in(reply: str) -> dict[str, Any]:
    """The dict named cells (or the only dict) in the reply's Python block."""
    for block in BLOCK.findall(reply):
        try:
            tree = ast.parse(block)
        except SyntaxError as exc:
            try:
                tree = ast.parse(requoted(block))
            except SyntaxError:
                raise CellsError(
                    f"The block is not valid Python (line {exc.lineno}: {exc.msg})."
                ) from None
        dicts = [
            node.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
        ]
        if dicts:
            try:
                found = ast.literal_eval(dicts[-1])
            except ValueError:
                raise CellsError(
                    "The dict's keys and values must be plain text, numbers or lists of them."
                ) from None
            if not found:
                raise CellsError("The dict is empty: give the cells to write.")
            return found
    raise CellsError("Your reply had no dict of cells (cells = {...}) in a ```python block.")


def requoted(block: str) -> str:
    """The block with each formula value that holds its own quote marks written as one Python
    string: a 1.5B's right SUMIF cells, `"B2": "=SUMIF(Sales!B:B, "North", Sales!D:D)",`, did
    not parse, three replies running, and the task went to scripts that never passed."""

    def one(m: re.Match[str]) -> str:
        return f"{m[1]}{m[2]}: {m[3]!r}{m[4]}"

    return FORMULA_LINE.sub(one, block)


def by_sheet(cells: dict[str, Any], sheets: list[str]) -> dict[str, dict[str, Any]]:
    """Each sheet's cells to write, address by address, ranges filled in."""
    from openpyxl.formula.translate import Translator
    from openpyxl.utils import get_column_letter
    from openpyxl.utils.cell import column_index_from_string

    out: dict[str, dict[str, Any]] = {}
    count = 0
    for key, value in cells.items():
        if not isinstance(key, str):
            raise CellsError(f'The key {key!r} is not a cell like "Sheet1!B5".')
        sheet, _, where = key.rpartition("!")
        sheet = known_sheet(sheet.strip().strip("'"), sheets)
        first, _, last = where.strip().partition(":")
        a, b = CELL.match(first), CELL.match(last or first)
        if a is None or b is None:
            raise CellsError(f'{key!r} is not a cell or range like "Sheet1!B5" or "B2:B9".')
        cols = range(
            column_index_from_string(a[1].upper()), column_index_from_string(b[1].upper()) + 1
        )
        rows = range(int(a[2]), int(b[2]) + 1)
        addresses = [f"{get_column_letter(c)}{r}" for r in rows for c in cols]
        count += len(addresses)
        if not addresses or count > MAX_CELLS:
            raise CellsError(f"{key!r} is not a range from top left to bottom right, or too big.")
        if isinstance(value, (list, tuple)):
            flat = [v for row in value for v in (row if isinstance(row, (list, tuple)) else [row])]
            if len(flat) != len(addresses):
                raise CellsError(
                    f"{key!r} has {len(addresses)} cells but its list {len(flat)} values."
                )
            filled = dict(zip(addresses, flat, strict=True))
        elif isinstance(value, str) and value.startswith("="):
            origin = addresses[0]
            filled = {
                at: Translator(value, origin=origin).translate_formula(at) for at in addresses
            }
        else:
            filled = dict.fromkeys(addresses, value)
        for at, v in filled.items():
            if v is not None and not isinstance(v, (str, int, float, bool)):
                raise CellsError(f"The value for {at} is not a number or text: {v!r}.")
        out.setdefault(sheet, {}).update(filled)
    return out


def known_sheet(name: str, sheets: list[str]) -> str:
    """The workbook's spelling of a sheet name; the first sheet for none; else the new name."""
    if not name:
        return sheets[0]
    return next((s for s in sheets if s.lower() == name.lower()), name)
