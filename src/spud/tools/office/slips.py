"""A workbook's usual formula slips: a formula unlike those on both sides of it, a sum that stops
short of the numbers next to its range (the two checks spreadsheet programs flag), a number
typed in among like formulas, a formula among a header row's titles; with the fix a
spreadsheet program offers, where there is one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from spud.tools.office.formula import formula_shape, formula_text, quote_sheet

MAX_SLIPS = 12
# B2:D23, each row number without $ (both move when the formula is filled down)
MOVING = re.compile(r"(?<![A-Za-z0-9_$])\$?([A-Z]{1,3})(\d+):\$?([A-Z]{1,3})(\d+)(?![\d(])")
# =SUM(B2:B12), the whole formula one aggregate of one range on the formula's own sheet
AGGREGATE = re.compile(
    r"^=\s*(SUM|AVERAGE|MIN|MAX|COUNT|COUNTA|PRODUCT)\(\s*\$?([A-Z]{1,3})\$?(\d+)\s*:"
    r"\s*\$?([A-Z]{1,3})\$?(\d+)\s*\)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Slip:
    """A formula that is probably wrong, and why."""

    sheet: str
    cell: str
    formula: str
    why: str
    fix: str = ""  # the formula a spreadsheet program's quick fix would put there

    def __str__(self) -> str:
        return f"{quote_sheet(self.sheet)}!{self.cell} {self.formula}: {self.why}"


def formula_slips(wb: Any) -> list[Slip]:
    """The slips in every sheet of an openpyxl workbook, in reading order."""
    slips: list[Slip] = []
    for ws in wb.worksheets:
        cells = {
            (c.row, c.column): c.value for row in ws.iter_rows() for c in row if c.value is not None
        }
        formulas = {at: t for at, v in cells.items() if (t := formula_text(v)) is not None}
        for (row, col), value in sorted(cells.items()):
            text = formulas.get((row, col))
            if text is None:
                typed = _typed_among(formulas, value, row, col)
                if typed[0]:
                    slips.append(Slip(ws.title, _address(row, col), str(value), *typed))
                continue
            found = (
                _unlike_neighbours(formulas, row, col),
                _short_sum(cells, text, row, col),
                (_among_titles(cells, row, col), ""),
                _runs_down(formulas, text, row, col),
            )
            why, fix = next((f for f in found if f[0]), ("", ""))
            if why:
                slips.append(Slip(ws.title, _address(row, col), text, why, fix))
    return slips


def slips_text(slips: list[Slip], limit: int = MAX_SLIPS) -> str:
    """The slips as lines under a heading; empty when there are none."""
    if not slips:
        return ""
    lines = ["formulas to check (probably wrong):", *(f"  {s}" for s in slips[:limit])]
    if len(slips) > limit:
        lines.append(f"  [and {len(slips) - limit} more]")
    return "\n".join(lines)


Found = tuple[str, str]  # why a cell is a slip (empty: it is not), and its fix


def _unlike_neighbours(formulas: dict[tuple[int, int], str], row: int, col: int) -> Found:
    """Why a formula differs from the two beside it (above and below, or left and right)
    that share one shape; the fix copies theirs (a spreadsheet program's "copy formula from
    above")."""
    like = _like_neighbours(formulas, _shape(formulas[(row, col)], row, col), row, col)
    if like:
        return f"unlike the formulas {like[0]} it; like them it would be {like[1]}", like[1]
    return ("", "")


def _typed_among(formulas: dict[tuple[int, int], str], value: Any, row: int, col: int) -> Found:
    """Why a number sits between two formulas of one shape (a total typed over its formula,
    left stale when the data changed); the fix is their formula."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ("", "")
    like = _like_neighbours(formulas, "", row, col)
    if like:
        why = f"a number typed in among the formulas {like[0]} it; like them it would be {like[1]}"
        return why, like[1]
    return ("", "")


def _like_neighbours(
    formulas: dict[tuple[int, int], str], here: str, row: int, col: int
) -> tuple[str, str] | None:
    """(which side, their formula moved here) when the two cells beside (row, col) hold
    formulas of one shape other than here; None otherwise."""
    for dr, dc, side in ((1, 0, "above and below"), (0, 1, "left and right")):
        before, after = (row - dr, col - dc), (row + dr, col + dc)
        if before not in formulas or after not in formulas:
            continue
        shape = _shape(formulas[before], *before)
        if shape and shape == _shape(formulas[after], *after) and shape != here:
            return side, _translated(formulas[before], before, (row, col))
    return None


def _short_sum(cells: dict[tuple[int, int], Any], text: str, row: int, col: int) -> Found:
    """Why an aggregate of a range in its own column (or row) leaves out numbers between the
    range and itself, or just before the range; the fix takes them in (a spreadsheet
    program's "update formula to include cells")."""
    from openpyxl.utils import column_index_from_string

    m = AGGREGATE.match(text)
    if not m:
        return ("", "")
    c1, r1 = column_index_from_string(m[2].upper()), int(m[3])
    c2, r2 = column_index_from_string(m[4].upper()), int(m[5])
    if c1 == c2 == col and r2 < row:  # a column's total below it
        gap = [(r, col) for r in range(r2 + 1, row)]
        before = (r1 - 1, col)
    elif r1 == r2 == row and c2 < col:  # a row's total right of it
        gap = [(row, c) for c in range(c2 + 1, col)]
        before = (row, c1 - 1)
    else:
        return ("", "")
    start, end = _address(r1, c1), _address(r2, c2)
    if gap and all(_number_like(cells.get(at)) for at in gap):
        left = ", ".join(_address(*at) for at in gap[:3]) + (" ..." if len(gap) > 3 else "")
        whole = f"={m[1].upper()}({start}:{_address(*gap[-1])})"
        return f"leaves out {left}, between its range and it", whole
    plain = cells.get(before)  # a number, not a formula (a header row's formula is no data)
    if not gap and isinstance(plain, (int, float)) and not isinstance(plain, bool):
        whole = f"={m[1].upper()}({_address(*before)}:{end})"
        return f"leaves out {_address(*before)}, just before its range", whole
    return ("", "")


def _among_titles(cells: dict[tuple[int, int], Any], row: int, col: int) -> str:
    """Why a formula sits in a header row: every other cell of its row is a text, and the
    cell below it holds data (a 1.5B wrote "G1": "=E1*F1" above "G2:G31", where the task
    asked for the title "Line total")."""
    others = [v for (r, c), v in cells.items() if r == row and c != col]
    titles = [v for v in others if isinstance(v, str) and formula_text(v) is None]
    if len(titles) < 2 or len(titles) < len(others) or not _number_like(cells.get((row + 1, col))):
        return ""
    return "a formula among the header row's titles (text); a column's title is text"


def _runs_down(formulas: dict[tuple[int, int], str], text: str, row: int, col: int) -> Found:
    """Why a formula filled down a column (the one above or below it has its shape) has a
    range that starts at its own row and runs down past it: filled down, the range moves
    with the row (a 1.5B's "E2:E23": "=AVERAGE(B2:D23)" gave E3 =AVERAGE(B3:D24), each
    student's average taken over the rows below too)."""
    here = _shape(text, row, col)
    if not here or not any(
        _shape(formulas.get(at, ""), *at) == here for at in ((row - 1, col), (row + 1, col))
    ):
        return ("", "")
    for m in MOVING.finditer(text):
        if int(m[2]) == row and int(m[4]) > row:
            own = f"{m[1]}{row}:{m[3]}{row}"
            why = (
                f"its range {m[0]} runs from its own row down to row {m[4]}, and filled down "
                f"the column it moves with each row; one row's cells would be {own}"
            )
            return why, ""
    return ("", "")


def _number_like(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) or formula_text(value) is not None


def _shape(text: str, row: int, col: int) -> str:
    try:
        return formula_shape(text, row, col)[0]
    except Exception:  # a formula the tokenizer cannot read has no shape to compare
        return ""


def _translated(text: str, origin: tuple[int, int], to: tuple[int, int]) -> str:
    from openpyxl.formula.translate import Translator

    try:
        return Translator(text, origin=_address(*origin)).translate_formula(_address(*to))
    except Exception:
        return text


def _address(row: int, col: int) -> str:
    from openpyxl.utils import get_column_letter

    return f"{get_column_letter(col)}{row}"
