"""What a task says its workbooks hold (titled columns, cells asked for as formulas), checked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from spud.core.protocols import CheckResult

# 'column G titled "Line total" (G1)', "D titled Difference (D1)", "column E titled Amount with"
TITLED = re.compile(
    r"\b(?:column\s+)?([A-Z]{1,2})\s+(?:titled|headed|labell?ed|named)\s+"
    r"(?:\"([^\"\n]+)\"|'([^'\n]+)'|([A-Z][\w%]*(?:\s+[\w%]+){0,3}?)\s*\(\s*\1(\d{1,5})\s*\)"
    r"|([A-Z][\w%]*))"
)
# '"Class average" in A1', '"Total" in A32': a label the task quotes for a cell
LABEL = re.compile(r"[\"“]([^\"”\n]{1,40})[\"”] in ([A-Z]{1,2}\d{1,5})\b")
# "put Total in C27": an unquoted one-word label the task puts in a cell
PUT_LABEL = re.compile(
    r"\b(?:put|write)\s+(?:the\s+(?:word|label|text)\s+)?([A-Z][a-z]+)\s+in\s+"
    r"(?:(?:\w+|'[^'\n]+')!)?([A-Z]{1,2}\d{1,5})(?![!\w])"
)
NUMBER_TEXT = re.compile(r"^\s*-?\d+(\.\d+)?\s*$")
TITLE_CELL = re.compile(r"\s*\(\s*([A-Z]{1,2}\d{1,5})\s*\)")
CELL = re.compile(r"^\$?([A-Za-z]{1,3})\$?(\d{1,7})$")
TASK_CELLS = re.compile(r"(?<![\w$])\$?([A-Z]{1,3})\$?(\d{1,7})(?::\$?([A-Z]{1,3})\$?(\d{1,7}))?\b")
MAX_CELLS = 5000
SENTENCE = re.compile(r"[^.;\n]+(?:\.(?=\d)[^.;\n]+)*")
Cell = tuple[str, str, str]  # (workbook, sheet, address)


def sheet_checks(workspace: Path, task: str, books: list[str], writes: bool = True) -> list[Any]:
    """The titles check when the task titles columns; the formulas check when it asks for
    formulas in cells it names; the numbers check when the task writes; for the task's
    workbooks (.xlsx, .xlsm)."""
    books = [b for b in books if b.lower().endswith((".xlsx", ".xlsm"))]
    checks = []
    if books and (titles := titled_cells(task)):
        checks.append(titles_check(workspace, books, titles))
    if books and (cells := formula_cells(task)):
        checks.append(formulas_check(workspace, books, cells))
    if books and writes:
        checks.append(numbers_check(workspace, books))
    return checks


def titled_cells(task: str) -> dict[str, str]:
    """{cell: text} for each column the task titles ("column D titled Price" is D1;
    '"Line total" (G1)' names its cell) and each label it quotes or puts in a cell ('"Total" in
    A32', "put Total in C27")."""
    labels = [*PUT_LABEL.finditer(task), *LABEL.finditer(task)]
    out: dict[str, str] = {m[2]: m[1].strip() for m in labels}
    for m in TITLED.finditer(task):
        column, title = m[1], next(g for g in (m[2], m[3], m[4], m[6]) if g)
        row = m[5]
        if not row and (named := TITLE_CELL.match(task, m.end())):
            if named[1].rstrip("0123456789") == column:
                row = named[1][len(column) :]
        out[f"{column}{row or 1}"] = title.strip()
    return out


def formula_cells(task: str) -> dict[str, bool]:
    """{cell: named in a range} for the cells the task asks for as formulas: those of the
    clause that says formula ("D2:E16 must be formulas"), or of the nearest clause before it
    that names cells ("B2:B5 ... and C2:C5 its average, as formulas"); clauses end at commas."""
    out: dict[str, bool] = {}
    for sentence in SENTENCE.finditer(task):
        clauses = [list(TASK_CELLS.finditer(c)) for c in sentence[0].split(",")]
        for i, clause in enumerate(sentence[0].split(",")):
            if not re.search(r"\bformulas?\b", clause, re.IGNORECASE):
                continue
            named = next((c for c in reversed(clauses[: i + 1]) if c), [])
            for m in named:
                for cell in named_cells(m[0]):
                    out[cell] = out.get(cell, False) or bool(m[3])
    return out


def _values(workspace: Path, book: str) -> dict[tuple[str, str], Any] | None:
    """{(sheet, address): value} of every filled cell (formulas as text); None when unreadable."""
    from spud.tools.office.workbook import OfficeError, load_workbook

    try:
        wb = load_workbook(workspace / book)
    except (OfficeError, OSError):
        return None
    return {
        (ws.title, cell.coordinate): cell.value
        for ws in wb.worksheets
        for row in ws.iter_rows()
        for cell in row
        if cell.value is not None
    }


def _referenced(values: dict[tuple[str, str], Any]) -> dict[str, set[str]]:
    """{sheet: cells its own formulas refer to} ("=SUM(B2:B4)" in B5 makes B2:B4 inputs)."""
    out: dict[str, set[str]] = {}
    for (sheet, _), value in values.items():
        if isinstance(value, str) and value.startswith("="):
            for m in TASK_CELLS.finditer(value):
                if value[m.start() - 1] != "!":
                    out.setdefault(sheet, set()).update(named_cells(m[0]))
    return out


def titles_check(workspace: Path, books: list[str], titles: dict[str, str]) -> Any:
    """A check that each cell the task titles holds its title on some sheet (a 1.5B's pandas
    script headed the task's "D titled Difference (D1)" with "D", and its
    run ended `finished`)."""

    def run() -> CheckResult:
        now = {b: v for b in books if (workspace / b).is_file() and (v := _values(workspace, b))}
        problems = []
        for address, title in titles.items():
            held = [
                (book, sheet, value)
                for book, values in now.items()
                for (sheet, cell), value in values.items()
                if cell == address
            ]
            if now and not any(str(v).strip().lower() == title.lower() for _, _, v in held):
                found = ", ".join(f"{s}!{address} is {v!r}" for _, s, v in held[:3])
                problems.append(
                    f"the task puts {title!r} in {address}; "
                    + (found or f"{address} is empty on every sheet")
                )
        return CheckResult(
            name="the task's titles",
            passed=not problems,
            detail="; ".join(problems[:6]) or "as the task says",
        )

    return run


def formulas_check(workspace: Path, books: list[str], cells: dict[str, bool]) -> Any:
    """A check that the cells the task asks for as formulas, which were empty or formulas when
    the run began, do not end as typed-in values (a 1.5B's script wrote the differences the
    task wanted as formulas "so they follow changes" as numbers, and its run ended
    `finished`). Text typed in a single named cell is left alone: it is a label more often
    than a result."""
    before = {b: _values(workspace, b) or {} for b in books if (workspace / b).is_file()}

    def typed(value: Any) -> bool:
        return value is not None and not (isinstance(value, str) and value.startswith("="))

    def run() -> CheckResult:
        found: dict[tuple[str, str], list[str]] = {}
        for book in books:
            if not (workspace / book).is_file() or (now := _values(workspace, book)) is None:
                continue
            was = before.get(book, {})
            inputs = _referenced(now)
            for (sheet, cell), value in now.items():
                if cell in cells and typed(value) and not typed(was.get((sheet, cell))):
                    if isinstance(value, str) and not cells[cell]:
                        continue
                    if cell in inputs.get(sheet, ()):  # what a formula adds up: data
                        continue
                    found.setdefault((book, sheet), []).append(cell)
        problems = []
        for (book, sheet), typed_in in found.items():
            problems.append(
                f"{book}: {sheet}!{_listed(typed_in)} hold typed-in values ({len(typed_in)} "
                "cell(s)); the task asks for formulas there (text starting with '=')"
            )
        return CheckResult(
            name="the task's formulas",
            passed=not problems,
            detail="; ".join(problems[:6]) or "formulas where the task asks for them",
        )

    return run


def numbers_check(workspace: Path, books: list[str]) -> Any:
    """A check that the run wrote no numbers as text where they count: decimals, or cells a
    formula of the sheet refers to (a 1.5B's script copied a CSV's amounts into a workbook as
    strings, its =SUM of them was 0, and its run ended `finished`)."""
    before = {b: _values(workspace, b) or {} for b in books if (workspace / b).is_file()}

    def run() -> CheckResult:
        problems = []
        for book in books:
            if not (workspace / book).is_file() or (now := _values(workspace, book)) is None:
                continue
            inputs, was = _referenced(now), before.get(book, {})
            found: dict[str, list[str]] = {}
            for (sheet, cell), value in now.items():
                if (
                    isinstance(value, str)
                    and (m := NUMBER_TEXT.match(value))
                    and (m[1] or cell in inputs.get(sheet, ()))
                    and was.get((sheet, cell)) != value
                ):
                    found.setdefault(sheet, []).append(cell)
            for sheet, cells in found.items():
                first = min(cells, key=cell_order)
                problems.append(
                    f"{book}: {sheet}!{_listed(cells)} hold numbers as text ({len(cells)} "
                    f"cell(s), {now[(sheet, first)]!r}): formulas do not add text; write them as "
                    "numbers (float(value) for a CSV's text)"
                )
        return CheckResult(
            name="numbers as numbers",
            passed=not problems,
            detail="; ".join(problems[:6]) or "no numbers written as text",
        )

    return run


def _listed(cells: list[str]) -> str:
    """The first four cells in reading order, and "..." for more."""
    ordered = sorted(cells, key=cell_order)
    return ", ".join(ordered[:4]) + (" ..." if len(ordered) > 4 else "")


def named_cells(task: str) -> set[str]:
    """The cells a task names, as addresses ("B3", "C2:C3" as C2 and C3; sheets ignored)."""
    from openpyxl.utils import get_column_letter
    from openpyxl.utils.cell import column_index_from_string

    out: set[str] = set()
    for m in TASK_CELLS.finditer(task):
        c1, r1 = column_index_from_string(m[1]), int(m[2])
        c2, r2 = (column_index_from_string(m[3]), int(m[4])) if m[3] else (c1, r1)
        if (c2 - c1 + 1) * (r2 - r1 + 1) <= MAX_CELLS:
            out |= {
                f"{get_column_letter(c)}{r}" for c in range(c1, c2 + 1) for r in range(r1, r2 + 1)
            }
    return out


def cell_order(address: str) -> tuple[int, str]:
    """Row, then column: how a reader lists cells."""
    m = CELL.match(address)
    return (int(m[2]), m[1]) if m else (0, address)
