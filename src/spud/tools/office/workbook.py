"""Opening office files with clear errors, and showing a workbook or a window of a sheet."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from spud.tools.office.formula import formula_text
from spud.tools.office.recalc import Recalc

MAX_EDIT_CELLS = 3_000_000  # above this a sheet is only read in windows, never edited
READ_ROWS, READ_COLS = 40, 15
CELL_CHARS = 40


class OfficeError(Exception):
    """A problem with an office file that the user or the model can fix; the text says how."""


def check_office_file(path: Path, kinds: tuple[str, ...]) -> None:
    """Raise OfficeError for a missing, encrypted, legacy or corrupt OOXML file."""
    if not path.is_file():
        raise OfficeError(f"no such file: {path.name}")
    suffix = path.suffix.lower()
    if suffix not in kinds:
        raise OfficeError(f"{path.name}: expected one of {', '.join(kinds)}, not {suffix or '?'}")
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        if suffix in (".xls", ".doc", ".ppt"):
            raise OfficeError(f"{path.name} is a legacy binary file; save it as {suffix}x first")
        raise OfficeError(
            f"{path.name} is password-protected (encrypted); remove the password and try again"
        )
    if not zipfile.is_zipfile(path):
        raise OfficeError(f"{path.name} is corrupt: it is not a valid {suffix} (zip) file")


def load_workbook(path: Path, *, read_only: bool = False, data_only: bool = False) -> Any:
    """Open a workbook with clear errors for bad files."""
    import openpyxl

    check_office_file(path, (".xlsx", ".xlsm"))
    try:
        return openpyxl.load_workbook(
            path,
            read_only=read_only,
            data_only=data_only,
            keep_vba=path.suffix.lower() == ".xlsm",
            rich_text=False,
        )
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as exc:
        raise OfficeError(f"{path.name} is corrupt or not a workbook: {exc}") from None


def bounds(rng: str) -> tuple[int, int, int, int]:
    """(min_col, min_row, max_col, max_row) of a range a model wrote ('$b$2:c9' works too)."""
    from openpyxl.utils import range_boundaries

    return range_boundaries(rng.replace("$", "").upper())


def workbook_size(path: Path) -> int:
    """Cells in the used ranges of all sheets, read from the sheet dimensions (cheap)."""
    wb = load_workbook(path, read_only=True)
    try:
        total = 0
        for ws in wb.worksheets:
            ws.reset_dimensions() if ws.max_row is None else None
            total += (ws.max_row or 0) * (ws.max_column or 0)
        return total
    finally:
        wb.close()


def show(value: Any) -> str:
    """A cell value on one short line, fit for a pipe table."""
    text = "" if value is None else str(value)
    text = text.replace("\n", " ").replace("|", "/")
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def read_window(ws: Any, bounds: tuple[int, int, int, int], recalc: Recalc | None) -> str:
    """Rows of a sheet as a pipe table with column letters and row numbers."""
    from openpyxl.utils import get_column_letter

    c1, r1, c2, r2 = bounds
    letters = [get_column_letter(c) for c in range(c1, c2 + 1)]
    lines = ["   | " + " | ".join(letters)]
    for r, row in enumerate(
        ws.iter_rows(min_row=r1, max_row=r2, min_col=c1, max_col=c2, values_only=True), r1
    ):
        shown = []
        for letter, v in zip(letters, row, strict=False):
            text = formula_text(v)
            if text is not None:
                got = recalc.value(ws.title, f"{letter}{r}") if recalc else None
                shown.append(show(text) + (f" -> {show(got)}" if got is not None else ""))
            else:
                shown.append(show(v))
        lines.append(f"{r:>3}| " + " | ".join(shown))
    return "\n".join(lines)


def describe_workbook(target: Path) -> str:
    """A short text description of a workbook."""
    big = target.is_file() and workbook_size(target) > MAX_EDIT_CELLS
    wb = load_workbook(target, read_only=big)
    lines = [f"{target.name}: {len(wb.worksheets)} sheets"]
    if target.suffix.lower() == ".xlsm":
        lines.append("  macro-enabled (.xlsm): macros are kept but never run; edits are refused")
    for ws in wb.worksheets:
        dims = ws.calculate_dimension() if not big else f"A1:?{ws.max_row}"
        lines.append(f"- sheet {ws.title!r}: used range {dims} ({ws.max_row} rows)")
        if big:
            continue
        if ws.merged_cells.ranges:
            merged = ", ".join(str(r) for r in list(ws.merged_cells.ranges)[:10])
            lines.append(f"    merged: {merged}")
        for tname, table in ws.tables.items():
            lines.append(f"    table {tname}: {table.ref}")
        for chart in ws._charts:
            title = _chart_title(chart)
            lines.append(f"    chart: {type(chart).__name__}{f' {title!r}' if title else ''}")
        if ws.conditional_formatting:
            lines.append(f"    conditional formats: {len(list(ws.conditional_formatting))}")
        if ws.data_validations.dataValidation:
            lines.append(f"    data validations: {len(ws.data_validations.dataValidation)}")
        header = next(ws.iter_rows(min_row=1, max_row=1, max_col=READ_COLS, values_only=True), ())
        if any(v is not None for v in header):
            lines.append("    row 1: " + " | ".join(show(v) for v in header))
    for name, dn in wb.defined_names.items():
        lines.append(f"- name {name} = {dn.attr_text}")
    if big:
        lines.append("  (large workbook: read it in windows with sheet_read)")
    return "\n".join(lines)


def _chart_title(chart: Any) -> str:
    try:
        return "".join(r.t for p in chart.title.tx.rich.p for r in (p.r or []))
    except AttributeError:
        return ""
