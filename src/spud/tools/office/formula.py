"""Formula text: A1 references, their relative shapes, and shifting them for inserted rows."""

from __future__ import annotations

import re
from typing import Any

_CELL = re.compile(r"^(\$?)([A-Za-z]{1,3})(\$?)(\d+)$")
_COL = re.compile(r"^(\$?)([A-Za-z]{1,3})$")
_ROW = re.compile(r"^(\$?)(\d+)$")


def split_ref(ref: str) -> tuple[str | None, str]:
    """'Sheet 1'!A1:B2 -> ('Sheet 1', 'A1:B2'); A1 -> (None, 'A1')."""
    if "!" not in ref:
        return None, ref
    sheet, _, rng = ref.rpartition("!")
    if sheet.startswith("'") and sheet.endswith("'"):
        sheet = sheet[1:-1].replace("''", "'")
    return sheet, rng


_SHEET_BOTH_ENDS = re.compile(
    r"(?P<sheet>'(?:[^']|'')+'|[A-Za-z_][A-Za-z0-9_.]*)!(?P<a>\$?[A-Za-z]{1,3}\$?\d+):"
    r"(?P=sheet)!(?P<b>\$?[A-Za-z]{1,3}\$?\d+)"
)


def one_sheet_ranges(formula: str) -> str:
    """Sheet1!B2:Sheet1!B4 -> Sheet1!B2:B4: the same range as spreadsheets read it (the
    formula engine read the first form as two cells)."""
    return _SHEET_BOTH_ENDS.sub(r"\g<sheet>!\g<a>:\g<b>", formula)


def quote_sheet(name: str) -> str:
    """A sheet name as written in a formula."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name) and not _CELL.match(name):
        return name
    return "'" + name.replace("'", "''") + "'"


def _tokens(formula: str) -> list[Any]:
    from openpyxl.formula.tokenizer import Tokenizer

    return list(Tokenizer(formula).items)


def _is_range(t: Any) -> bool:
    from openpyxl.formula.tokenizer import Token

    return t.type == Token.OPERAND and t.subtype == Token.RANGE


def _range_tokens(formula: str) -> list[Any]:
    return [t for t in _tokens(formula) if _is_range(t)]


def _r1c1_part(part: str, row: int, col: int) -> str:
    from openpyxl.utils import column_index_from_string

    if m := _CELL.match(part):
        c = column_index_from_string(m[2].upper())
        r = int(m[4])
        rs = f"R{r}" if m[3] else f"R[{r - row}]"
        cs = f"C{c}" if m[1] else f"C[{c - col}]"
        return rs + cs
    if m := _COL.match(part):
        c = column_index_from_string(m[2].upper())
        return f"C{c}" if m[1] else f"C[{c - col}]"
    if m := _ROW.match(part):
        r = int(m[2])
        return f"R{r}" if m[1] else f"R[{r - row}]"
    return part.upper()


def formula_shape(formula: str, row: int, col: int) -> tuple[str, list[str]]:
    """The formula in relative (R1C1-like) form, and its references in order, normalized."""
    parts: list[str] = []
    refs: list[str] = []
    for t in _tokens(formula):
        if not _is_range(t):
            parts.append(t.value)
            continue
        sheet, rng = split_ref(t.value)
        rel = ":".join(_r1c1_part(p, row, col) for p in rng.split(":"))
        parts.append((f"{sheet}!" if sheet else "") + rel)
        norm = rng.replace("$", "").upper()
        if sheet is not None:
            norm = f"{quote_sheet(sheet).upper()}!{norm}"
        if norm not in refs:
            refs.append(norm)
    return "=" + "\x00".join(parts), refs


def shift_formula(formula: str, sheet: str, here: str, axis: str, index: int, count: int) -> str:
    """Adjust references to `sheet` after inserting (count>0) or deleting (count<0) rows/cols.

    `here` is the sheet holding the formula (unqualified references point to it).
    """
    if not isinstance(formula, str) or not formula.startswith("="):
        return formula
    try:
        tokens = _tokens(formula)
    except Exception:
        return formula
    changed = False
    parts: list[str] = []
    for t in tokens:
        if _is_range(t):
            ref_sheet, rng = split_ref(t.value)
            if (ref_sheet or here).lower() == sheet.lower():
                new = shift_range(rng, axis, index, count)
                if new != rng:
                    changed = True
                    parts.append(t.value[: len(t.value) - len(rng)] + new)
                    continue
        parts.append(t.value)
    return "=" + "".join(parts) if changed else formula


def _shift_number(n: int, index: int, count: int, end: bool) -> int | None:
    if count > 0:
        return n + count if n >= index else n
    gone = range(index, index - count)
    if n in gone:
        return None
    return n + count if n >= index - count else n


def shift_range(rng: str, axis: str, index: int, count: int) -> str:
    """One A1 reference (cell, range, whole rows or columns) shifted; '#REF!' if deleted."""
    from openpyxl.utils import column_index_from_string, get_column_letter

    parts = rng.split(":")
    parsed: list[tuple[str, str, str, str]] = []  # ($col, col, $row, row)
    for p in parts:
        if m := _CELL.match(p):
            parsed.append((m[1], m[2], m[3], m[4]))
        elif m := _COL.match(p):
            parsed.append((m[1], m[2], "", ""))
        elif m := _ROW.match(p):
            parsed.append(("", "", m[1], m[2]))
        else:
            return rng  # a name or something we do not shift
    new: list[list[str]] = [list(p) for p in parsed]
    for i, (_, col, _, row) in enumerate(parsed):
        text = row if axis == "rows" else col
        if not text:
            continue
        n = int(text) if axis == "rows" else column_index_from_string(col.upper())
        moved = _shift_number(n, index, count, end=i == 1)
        if moved is None and len(parsed) == 2 and count < 0:
            # a range end inside the deleted block: clamp to the block's edge
            moved = index if i == 0 else index - 1
        if moved is None:
            return "#REF!"
        new[i][3 if axis == "rows" else 1] = (
            str(moved) if axis == "rows" else get_column_letter(moved)
        )
    if len(new) == 2:
        k = 3 if axis == "rows" else 1
        if new[0][k] and new[1][k]:
            a = int(new[0][k]) if axis == "rows" else column_index_from_string(new[0][k])
            b = int(new[1][k]) if axis == "rows" else column_index_from_string(new[1][k])
            if b < a:
                return "#REF!"
    return ":".join("".join(p) for p in new)


def formula_text(value: Any) -> str | None:
    """The formula a cell value holds ('=...'), or None for a plain value."""
    text = getattr(value, "text", value)  # ArrayFormula keeps its formula in .text
    return text if isinstance(text, str) and text.startswith("=") and len(text) > 1 else None
