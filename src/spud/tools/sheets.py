"""Spreadsheet tools (openpyxl) with recalculation by the `formulas` engine after each write."""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from spud.core.messages import ToolResult
from spud.core.protocols import Tool
from spud.tools.files import WorkspaceTool

MAX_EDIT_CELLS = 3_000_000  # above this a sheet is only read in windows, never edited
MAX_RECALC_FORMULAS = 300_000
READ_ROWS, READ_COLS = 40, 15
CELL_CHARS = 40
MAX_ERRORS_SHOWN = 20
ERROR_CODES = ("#REF!", "#DIV/0!", "#NAME?", "#VALUE!", "#N/A", "#NUM!", "#NULL!")
CIRCULAR = "#CIRCULAR!"
_ADDRESS_DEPENDENT = re.compile(
    r"\b(ROW|COLUMN|ROWS|COLUMNS|OFFSET|INDIRECT|CELL|ADDRESS)\s*\(", re.I
)
_CELL = re.compile(r"^(\$?)([A-Za-z]{1,3})(\$?)(\d+)$")
_COL = re.compile(r"^(\$?)([A-Za-z]{1,3})$")
_ROW = re.compile(r"^(\$?)(\d+)$")


class OfficeError(Exception):
    """A problem with an office file that the user or the model can fix; the text says how."""


# -- opening files ---------------------------------------------------------------------------


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


def _bounds(rng: str) -> tuple[int, int, int, int]:
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


# -- references ------------------------------------------------------------------------------


def split_ref(ref: str) -> tuple[str | None, str]:
    """'Sheet 1'!A1:B2 -> ('Sheet 1', 'A1:B2'); A1 -> (None, 'A1')."""
    if "!" not in ref:
        return None, ref
    sheet, _, rng = ref.rpartition("!")
    if sheet.startswith("'") and sheet.endswith("'"):
        sheet = sheet[1:-1].replace("''", "'")
    return sheet, rng


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


# -- recalculation ---------------------------------------------------------------------------


@dataclass
class CellError:
    """An error value found after recalculation."""

    sheet: str
    cell: str
    error: str
    formula: str = ""

    def __str__(self) -> str:
        where = f"{quote_sheet(self.sheet)}!{self.cell}"
        what = "circular reference" if self.error == CIRCULAR else self.error
        return f"{where}: {what}" + (f" (formula {self.formula})" if self.formula else "")


@dataclass
class Recalc:
    """The computed value of every formula cell, and the errors among them."""

    values: dict[tuple[str, str], Any] = field(default_factory=dict)
    errors: list[CellError] = field(default_factory=list)
    formulas: int = 0
    skipped: str = ""

    def value(self, sheet: str, cell: str) -> Any:
        return self.values.get((sheet, cell.replace("$", "").upper()))


@contextmanager
def _quiet() -> Iterator[None]:
    log = logging.getLogger("schedula")
    level = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        log.setLevel(level)


def _formula_text(value: Any) -> str | None:
    text = getattr(value, "text", value)  # ArrayFormula keeps its formula in .text
    return text if isinstance(text, str) and text.startswith("=") and len(text) > 1 else None


def _plain(value: Any) -> Any:
    """A formulas result as a plain Python value (errors become their code)."""
    import numpy as np
    from formulas.tokens.operand import XlError

    if isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else value.flat[0]
    if isinstance(value, XlError):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


class Engine:
    """Recalculates an openpyxl workbook: compiles each distinct formula shape once."""

    def __init__(self, wb: Any) -> None:
        self.wb = wb
        self.sheets = {ws.title.upper(): ws for ws in wb.worksheets}
        self.cells: dict[tuple[str, str], Any] = {}
        self.names = self._names()

    def _names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        for name, dn in self.wb.defined_names.items():
            names[name.upper()] = dn.attr_text
        return names

    def run(self) -> Recalc:
        import formulas
        import schedula as sh
        from openpyxl.utils import get_column_letter

        out = Recalc()
        formula_cells: dict[tuple[str, int, int], str] = {}
        for ws in self.wb.worksheets:
            for row in ws.iter_rows():
                for c in row:
                    if c.value is None:
                        continue
                    text = _formula_text(c.value)
                    if text is None:
                        self.cells[(ws.title, c.coordinate)] = c.value
                    else:
                        formula_cells[(ws.title, c.row, c.column)] = text
        out.formulas = len(formula_cells)
        if out.formulas > MAX_RECALC_FORMULAS:
            out.skipped = f"{out.formulas} formulas is over the recalculation limit"
            return out
        parser = formulas.Parser()
        cache: dict[str, Any] = {}
        compiled: dict[tuple[str, int, int], tuple[Any, list[str]]] = {}
        with _quiet():
            for key, text in formula_cells.items():
                compiled[key] = self._compile(parser, cache, text, key[1], key[2])
        deps = {k: self._deps(k[0], refs, formula_cells) for k, (_, refs) in compiled.items()}
        order, cyclic = _topo(deps)
        empty = sh.EMPTY
        with _quiet():
            for key in order:
                sheet, r, c = key
                coord = f"{get_column_letter(c)}{r}"
                func, refs = compiled[key]
                if func is None:
                    value: Any = refs[0] if refs else "#NAME?"
                else:
                    try:
                        args = [self._input(sheet, ref, empty) for ref in refs]
                        value = _plain(func(*args))
                    except Exception as exc:
                        value = "#NAME?" if _not_implemented(exc) else "#VALUE!"
                self.cells[(sheet, coord)] = value
                out.values[(sheet, coord)] = value
        for sheet, r, c in cyclic:
            coord = f"{get_column_letter(c)}{r}"
            self.cells[(sheet, coord)] = CIRCULAR
            out.values[(sheet, coord)] = CIRCULAR
        for (sheet, r, c), text in formula_cells.items():
            coord = f"{get_column_letter(c)}{r}"
            v = out.values.get((sheet, coord))
            if isinstance(v, str) and (v in ERROR_CODES or v == CIRCULAR):
                out.errors.append(CellError(sheet, coord, v, text))
        return out

    def _compile(
        self, parser: Any, cache: dict[str, Any], text: str, row: int, col: int
    ) -> tuple[Any, list[str]]:
        try:
            shape, refs = formula_shape(text, row, col)
        except Exception:
            shape, refs = "", []
        if shape and shape in cache and not _ADDRESS_DEPENDENT.search(text):
            return cache[shape], refs
        try:
            func = parser.ast(text)[1].compile()
        except Exception as exc:
            return None, ["#NAME?" if "function" in str(exc).lower() else "#VALUE!"]
        inputs = list(func.inputs)
        if shape and inputs == refs and not _ADDRESS_DEPENDENT.search(text):
            cache[shape] = func
        return func, inputs

    def _resolve(self, here: str, ref: str) -> tuple[Any, tuple[int, int, int, int]] | None:
        """The sheet and bounds (min_col, min_row, max_col, max_row) a reference covers."""
        from openpyxl.utils import range_boundaries

        sheet, rng = split_ref(ref)
        if sheet is None and rng.upper() in self.names:
            target = self.names[rng.upper()]
            return None if "!" not in target else self._resolve(here, target)
        ws = self.sheets.get((sheet or here).upper())
        if ws is None:
            return None
        try:
            b = range_boundaries(rng.replace("$", ""))
        except ValueError:
            return None
        min_col, min_row, max_col, max_row = b
        return ws, (
            min_col or 1,
            min_row or 1,
            max_col or max(ws.max_column, 1),
            max_row or max(ws.max_row, 1),
        )

    def _deps(
        self, sheet: str, refs: list[str], formula_cells: dict[tuple[str, int, int], str]
    ) -> set[tuple[str, int, int]]:
        deps: set[tuple[str, int, int]] = set()
        for ref in refs:
            found = self._resolve(sheet, ref)
            if found is None:
                continue
            ws, (c1, r1, c2, r2) = found
            size = (c2 - c1 + 1) * (r2 - r1 + 1)
            if size <= 64:
                for r in range(r1, r2 + 1):
                    for c in range(c1, c2 + 1):
                        if (ws.title, r, c) in formula_cells:
                            deps.add((ws.title, r, c))
            else:
                for key in self._by_sheet(formula_cells).get(ws.title, ()):
                    if r1 <= key[1] <= r2 and c1 <= key[2] <= c2:
                        deps.add(key)
        return deps

    def _by_sheet(
        self, formula_cells: dict[tuple[str, int, int], str]
    ) -> dict[str, list[tuple[str, int, int]]]:
        if not hasattr(self, "_sheet_index"):
            index: dict[str, list[tuple[str, int, int]]] = {}
            for key in formula_cells:
                index.setdefault(key[0], []).append(key)
            self._sheet_index = index
        return self._sheet_index

    def _input(self, here: str, ref: str, empty: Any) -> Any:
        import numpy as np
        from formulas.tokens.operand import XlError

        found = self._resolve(here, ref)
        if found is None:
            return np.array([[XlError("#REF!")]], dtype=object)
        ws, (c1, r1, c2, r2) = found
        from openpyxl.utils import get_column_letter

        letters = [get_column_letter(c) for c in range(c1, c2 + 1)]
        arr = np.empty((r2 - r1 + 1, c2 - c1 + 1), dtype=object)
        cells = self.cells
        for i, r in enumerate(range(r1, r2 + 1)):
            for j, letter in enumerate(letters):
                v = cells.get((ws.title, f"{letter}{r}"), empty)
                if isinstance(v, str) and (v in ERROR_CODES or v == CIRCULAR):
                    v = XlError("#REF!" if v == CIRCULAR else v)
                arr[i, j] = v
        return arr


def _not_implemented(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, NotImplementedError) or "NotImplementedError" in repr(seen.args):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _topo(
    deps: dict[tuple[str, int, int], set[tuple[str, int, int]]],
) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
    """Evaluation order (Kahn); cells left over are on or behind a circular reference."""
    users: dict[tuple[str, int, int], list[tuple[str, int, int]]] = {}
    waiting = {k: len(v) for k, v in deps.items()}
    for k, v in deps.items():
        for d in v:
            users.setdefault(d, []).append(k)
    ready = [k for k, n in waiting.items() if n == 0]
    order: list[tuple[str, int, int]] = []
    while ready:
        k = ready.pop()
        order.append(k)
        for u in users.get(k, ()):
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.append(u)
    done = set(order)
    return order, [k for k in deps if k not in done]


def recalculate(wb: Any) -> Recalc:
    """Compute every formula of an openpyxl workbook (loaded with formulas, not data_only)."""
    return Engine(wb).run()


def errors_text(recalc: Recalc, limit: int = MAX_ERRORS_SHOWN) -> str:
    """One line per error cell, capped."""
    if recalc.skipped:
        return f"not recalculated: {recalc.skipped}"
    if not recalc.errors:
        return f"recalculated {recalc.formulas} formulas: no error cells"
    lines = [f"recalculated {recalc.formulas} formulas: {len(recalc.errors)} error cells:"]
    lines += [f"  {e}" for e in recalc.errors[:limit]]
    if len(recalc.errors) > limit:
        lines.append(f"  [and {len(recalc.errors) - limit} more]")
    return "\n".join(lines)


# -- tools -----------------------------------------------------------------------------------


def _error(message: str) -> ToolResult:
    return ToolResult(output=message, ok=False)


def _show(value: Any) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\n", " ").replace("|", "/")
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def coerce(value: Any) -> Any:
    """Numbers given as text become numbers; '=...' stays a formula."""
    if isinstance(value, str):
        s = value.strip()
        if re.fullmatch(r"-?(0|[1-9]\d*)", s):
            return int(s)
        if re.fullmatch(r"-?(0|[1-9]\d*)?\.\d+", s):
            return float(s)
    return value


class SheetTool(WorkspaceTool):
    """Shared by the spreadsheet tools: open, pick a sheet, save and recalculate."""

    live_args = {"sheet": "sheets"}  # the embedded model's grammar offers the sheets that exist

    def open(self, path: str, *, create: bool = False) -> tuple[Path, Any] | ToolResult:
        target = self.resolve(path)
        if isinstance(target, ToolResult):
            return target
        if create and not target.exists():
            import openpyxl

            if target.suffix.lower() != ".xlsx":
                return _error(f"{path}: new workbooks must end in .xlsx")
            wb = openpyxl.Workbook()
            return target, wb
        try:
            if target.is_file() and workbook_size(target) > MAX_EDIT_CELLS:
                return _error(
                    f"{path} is too large to edit here (over {MAX_EDIT_CELLS} cells); "
                    "read it in windows with sheet_read"
                )
            return target, load_workbook(target)
        except OfficeError as exc:
            return _error(str(exc))

    def sheet(self, wb: Any, name: str | None) -> Any:
        if not name:
            return wb.active
        for ws in wb.worksheets:
            if ws.title.lower() == name.lower():
                return ws
        names = ", ".join(ws.title for ws in wb.worksheets)
        return _error(f"no sheet {name!r}; the sheets are: {names}")

    def open_sheet(self, path: str, name: str | None) -> tuple[Path, Any, Any] | ToolResult:
        """The workbook file, the workbook and one of its sheets, or an error result."""
        opened = self.open(path)
        if isinstance(opened, ToolResult):
            return opened
        target, wb = opened
        ws = self.sheet(wb, name)
        return ws if isinstance(ws, ToolResult) else (target, wb, ws)

    def save(self, target: Path, wb: Any, done: str) -> tuple[ToolResult, Recalc | None]:
        if target.suffix.lower() == ".xlsm":
            msg = f"{target.name} is macro-enabled (.xlsm); Spud does not modify macro workbooks"
            return _error(msg + ". Work on an .xlsx copy instead"), None
        wb.calculation.fullCalcOnLoad = True  # Excel and LibreOffice recompute on open
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            wb.save(target)
        except OSError as exc:
            return _error(f"cannot write {self.rel(target)}: {exc.strerror}"), None
        recalc = recalculate(wb)
        text = f"{done}\n{errors_text(recalc)}"
        text += "\nsaved. " + (
            "Fix the error cells." if recalc.errors else "If the task is done, call finish."
        )
        data = {
            "path": self.rel(target),
            "written": True,
            "errors": [str(e) for e in recalc.errors],
        }
        return ToolResult(output=text, data=data), recalc


class SheetDescribe(SheetTool):
    """sheet_describe: what a workbook holds."""

    name = "sheet_describe"
    risk = "read"
    description = (
        "Describe an .xlsx workbook: its sheets with used ranges, tables, named ranges, "
        "merged cells and charts. Start here before reading or editing a spreadsheet."
    )

    class Args(BaseModel):
        path: str = Field(description="Workbook path relative to the workspace.")

    def run(self, args: Args) -> ToolResult:
        target = self.resolve(args.path)
        if isinstance(target, ToolResult):
            return target
        try:
            info = describe_workbook(target)
        except OfficeError as exc:
            return _error(str(exc))
        return ToolResult(output=info, data={"path": self.rel(target)})


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
            lines.append("    row 1: " + " | ".join(_show(v) for v in header))
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


class SheetRead(SheetTool):
    """sheet_read: a window of cells as a compact table, formulas with their values."""

    name = "sheet_read"
    risk = "read"
    description = (
        "Read cells of a sheet as a table (values; formulas shown as '=FORMULA -> value'). "
        f"Shows at most {READ_ROWS} rows and {READ_COLS} columns; give a range like 'A1:F40' "
        "to read other parts of a large sheet."
    )

    class Args(BaseModel):
        path: str = Field(description="Workbook path relative to the workspace.")
        sheet: str | None = Field(None, description="Sheet name (default: the first sheet).")
        range: str | None = Field(None, description="Cells to read, e.g. 'A1:D20'.")

    def run(self, args: Args) -> ToolResult:

        target = self.resolve(args.path)
        if isinstance(target, ToolResult):
            return target
        try:
            big = workbook_size(target) > MAX_EDIT_CELLS
            wb = load_workbook(target, read_only=big)
        except OfficeError as exc:
            return _error(str(exc))
        ws = self.sheet(wb, args.sheet)
        if isinstance(ws, ToolResult):
            return ws
        try:
            c1, r1, c2, r2 = _bounds(args.range or "A1")
        except ValueError:
            return _error(f"invalid range {args.range!r}; write it like 'A1:D20'")
        c1, r1 = c1 or 1, r1 or 1
        if not args.range:
            c2, r2 = ws.max_column or 1, ws.max_row or 1
        c2, r2 = c2 or ws.max_column or 1, r2 or ws.max_row or 1
        last_r, last_c = min(r2, r1 + READ_ROWS - 1), min(c2, c1 + READ_COLS - 1)
        recalc = None if big else recalculate(wb)
        table = read_window(ws, (c1, r1, last_c, last_r), recalc)
        note = ""
        if (last_r, last_c) != (r2, c2):
            from openpyxl.utils import get_column_letter as col

            nxt = f"{col(c1)}{last_r + 1}:{col(last_c)}{min(r2, last_r + READ_ROWS)}"
            note = f"\n[window cut; the sheet has {ws.max_row} rows; next rows: range={nxt!r}]"
        return ToolResult(
            output=f"{self.rel(target)} / {ws.title}:\n{table}{note}",
            data={"path": self.rel(target)},
        )


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
            text = _formula_text(v)
            if text is not None:
                got = recalc.value(ws.title, f"{letter}{r}") if recalc else None
                shown.append(_show(text) + (f" -> {_show(got)}" if got is not None else ""))
            else:
                shown.append(_show(v))
        lines.append(f"{r:>3}| " + " | ".join(shown))
    return "\n".join(lines)


class SheetWrite(SheetTool):
    """sheet_write: set values and formulas, save, recalculate and report errors."""

    name = "sheet_write"
    risk = "write"
    description = (
        "Write values or formulas into cells of an .xlsx sheet and save (creates the file if "
        'missing). cells maps addresses to values, e.g. {"B5": "=SUM(B2:B4)", "A5": '
        '"Total"}. The workbook is then recalculated and error cells are reported.'
    )

    class Args(BaseModel):
        path: str = Field(description="Workbook path relative to the workspace.")
        cells: dict[str, str | int | float | bool | None] = Field(
            description="Cell address -> value; text starting with '=' is a formula."
        )
        sheet: str | None = Field(None, description="Sheet name (default: the first sheet).")

    def run(self, args: Args) -> ToolResult:
        from openpyxl.cell.cell import MergedCell
        from openpyxl.utils.cell import coordinate_from_string

        if not args.cells:
            return _error('cells is empty; give addresses and values, e.g. {"A1": 5}')
        opened = self.open(args.path, create=True)
        if isinstance(opened, ToolResult):
            return opened
        target, wb = opened
        ws = self.sheet(wb, args.sheet)
        if isinstance(ws, ToolResult):
            return ws
        written = []
        for address, value in args.cells.items():
            addr = address.replace("$", "").strip().upper()
            try:
                coordinate_from_string(addr)
            except ValueError:
                return _error(f"invalid cell address {address!r}; write it like 'B5'")
            cell = ws[addr]
            if isinstance(cell, MergedCell):
                top = next(str(r).split(":")[0] for r in ws.merged_cells.ranges if addr in r)
                return _error(f"{addr} is inside a merged range; write to {top}; nothing saved")
            cell.value = coerce(value)
            written.append(addr)
        result, recalc = self.save(target, wb, "")
        if recalc is None:
            return result
        shown = []
        for addr in written:
            v = ws[addr].value
            got = recalc.value(ws.title, addr) if _formula_text(v) else None
            arrow = f" -> {_show(got)}" if got is not None else ""
            shown.append(f"  {addr} = {_show(v)}{arrow}")
        head = f"wrote {len(written)} cells in {self.rel(target)} / {ws.title}:"
        result.output = "\n".join([head, *shown[:30], result.output.lstrip("\n")])
        return result


class SheetInsert(SheetTool):
    """sheet_insert: insert or delete rows or columns, adjusting references."""

    name = "sheet_insert"
    risk = "write"
    description = (
        "Insert (or, with delete=true, delete) rows or columns in a sheet. Formulas on every "
        "sheet, named ranges and merged cells are adjusted; references to deleted cells "
        "become #REF! and are reported."
    )

    class Args(BaseModel):
        path: str = Field(description="Workbook path relative to the workspace.")
        axis: Literal["rows", "columns"] = Field(description="Rows or columns.")
        index: int = Field(ge=1, description="First row number (or column number, A=1).")
        count: int = Field(1, ge=1, le=100000, description="How many.")
        delete: bool = Field(False, description="Delete instead of insert.")
        sheet: str | None = Field(None, description="Sheet name (default: the first sheet).")

    def run(self, args: Args) -> ToolResult:
        opened = self.open_sheet(args.path, args.sheet)
        if isinstance(opened, ToolResult):
            return opened
        target, wb, ws = opened
        shift_sheet(wb, ws, args.axis, args.index, -args.count if args.delete else args.count)
        what = "deleted" if args.delete else "inserted"
        done = f"{what} {args.count} {args.axis} at {args.index} in {ws.title}"
        return self.save(target, wb, done)[0]


def shift_sheet(wb: Any, ws: Any, axis: str, index: int, count: int) -> None:
    """Insert (count>0) or delete (count<0) rows/columns and fix every reference to them."""
    from openpyxl.worksheet.cell_range import CellRange

    merged = [str(r) for r in ws.merged_cells.ranges]
    for r in merged:
        ws.unmerge_cells(r)
    if axis == "rows":
        (ws.insert_rows if count > 0 else ws.delete_rows)(index, abs(count))
    else:
        (ws.insert_cols if count > 0 else ws.delete_cols)(index, abs(count))
    for r in merged:
        new = shift_range(r, axis, index, count)
        if new != "#REF!" and ":" in new and CellRange(new).size != {"rows": 1, "columns": 1}:
            ws.merge_cells(new)
    for other in wb.worksheets:
        for row in other.iter_rows():
            for c in row:
                if isinstance(c.value, str) and c.value.startswith("="):
                    c.value = shift_formula(c.value, ws.title, other.title, axis, index, count)
    for dn in wb.defined_names.values():
        dn.attr_text = shift_formula("=" + dn.attr_text, ws.title, "", axis, index, count)[1:]
    for table in ws.tables.values():
        table.ref = shift_range(table.ref, axis, index, count)
    for dv in ws.data_validations.dataValidation:
        dv.sqref = _shift_sqref(str(dv.sqref), axis, index, count)
    cf = ws.conditional_formatting
    rules = [(str(rng.sqref), rng.rules) for rng in cf]
    cf._cf_rules.clear()
    for sqref, rule_list in rules:
        new = _shift_sqref(sqref, axis, index, count)
        if new:
            for rule in rule_list:
                cf.add(new, rule)


def _shift_sqref(sqref: str, axis: str, index: int, count: int) -> str:
    parts = [shift_range(p, axis, index, count) for p in sqref.split()]
    return " ".join(p for p in parts if p != "#REF!")


class SheetAdd(SheetTool):
    """sheet_add: add a sheet to a workbook."""

    name = "sheet_add"
    risk = "write"
    description = "Add a new empty sheet to an .xlsx workbook (creates the workbook if missing)."

    class Args(BaseModel):
        path: str = Field(description="Workbook path relative to the workspace.")
        name: str = Field(min_length=1, max_length=31, description="Name of the new sheet.")

    def run(self, args: Args) -> ToolResult:
        if re.search(r"[\[\]:*?/\\]", args.name):
            return _error("a sheet name cannot contain [ ] : * ? / or \\")
        opened = self.open(args.path, create=True)
        if isinstance(opened, ToolResult):
            return opened
        target, wb = opened
        if any(ws.title.lower() == args.name.lower() for ws in wb.worksheets):
            return _error(f"a sheet named {args.name!r} already exists")
        wb.create_sheet(args.name)
        return self.save(target, wb, f"added sheet {args.name!r} to {self.rel(target)}")[0]


class SheetFormat(SheetTool):
    """sheet_format: number formats, bold, fill colour and column widths."""

    name = "sheet_format"
    risk = "write"
    description = (
        "Format a range of cells: number_format (e.g. '0.00', '#,##0', '0%', 'yyyy-mm-dd'), "
        "bold, italic, fill colour (hex like 'FFFF00') and column width."
    )

    class Args(BaseModel):
        path: str = Field(description="Workbook path relative to the workspace.")
        range: str = Field(description="Cells to format, e.g. 'B2:B10'.")
        sheet: str | None = Field(None, description="Sheet name (default: the first sheet).")
        number_format: str | None = Field(None, description="Excel number format.")
        bold: bool | None = Field(None, description="Bold on or off.")
        italic: bool | None = Field(None, description="Italic on or off.")
        fill: str | None = Field(None, description="Background colour as hex RGB, e.g. 'FFFF00'.")
        width: float | None = Field(None, gt=0, le=255, description="Column width.")

    def run(self, args: Args) -> ToolResult:
        from copy import copy

        from openpyxl.styles import PatternFill
        from openpyxl.utils import get_column_letter

        opened = self.open_sheet(args.path, args.sheet)
        if isinstance(opened, ToolResult):
            return opened
        target, wb, ws = opened
        try:
            c1, r1, c2, r2 = _bounds(args.range)
        except ValueError:
            return _error(f"invalid range {args.range!r}; write it like 'B2:B10'")
        fill = (args.fill or "").lstrip("#").upper()
        if fill and not re.fullmatch(r"[0-9A-F]{6}", fill):
            return _error(f"fill must be a hex colour like 'FFFF00', not {args.fill!r}")
        c1, r1 = c1 or 1, r1 or 1
        c2, r2 = c2 or ws.max_column, r2 or ws.max_row
        for row in ws.iter_rows(min_row=r1, max_row=r2, min_col=c1, max_col=c2):
            for cell in row:
                if args.number_format:
                    cell.number_format = args.number_format
                if args.bold is not None or args.italic is not None:
                    font = copy(cell.font)
                    font.b = args.bold if args.bold is not None else font.b
                    font.i = args.italic if args.italic is not None else font.i
                    cell.font = font
                if fill:
                    cell.fill = PatternFill("solid", start_color="FF" + fill, end_color="FF" + fill)
        if args.width:
            for c in range(c1, c2 + 1):
                ws.column_dimensions[get_column_letter(c)].width = args.width
        return self.save(target, wb, f"formatted {args.range} in {ws.title}")[0]


class SheetChart(SheetTool):
    """sheet_chart: add a bar, line or pie chart over a range."""

    name = "sheet_chart"
    risk = "write"
    description = (
        "Add a chart to a sheet. data is the range of values with a header row (e.g. 'B1:B5'), "
        "categories the labels (e.g. 'A2:A5'); the chart is placed at anchor (e.g. 'E2')."
    )

    class Args(BaseModel):
        path: str = Field(description="Workbook path relative to the workspace.")
        kind: Literal["bar", "line", "pie"] = Field(description="Chart type.")
        data: str = Field(description="Values range including its header row, e.g. 'B1:C5'.")
        categories: str | None = Field(None, description="Labels range, e.g. 'A2:A5'.")
        title: str | None = Field(None, description="Chart title.")
        anchor: str = Field("H2", description="Top-left cell where the chart goes.")
        sheet: str | None = Field(None, description="Sheet name (default: the first sheet).")

    def run(self, args: Args) -> ToolResult:
        from openpyxl.chart import BarChart, LineChart, PieChart, Reference

        opened = self.open_sheet(args.path, args.sheet)
        if isinstance(opened, ToolResult):
            return opened
        target, wb, ws = opened
        try:
            c1, r1, c2, r2 = _bounds(args.data)
            cats = _bounds(args.categories) if args.categories else None
        except ValueError as exc:
            return _error(f"invalid range: {exc}; write ranges like 'B1:B5'")
        chart = {"bar": BarChart, "line": LineChart, "pie": PieChart}[args.kind]()
        chart.add_data(
            Reference(ws, min_col=c1, min_row=r1, max_col=c2, max_row=r2), titles_from_data=True
        )
        if cats:
            chart.set_categories(
                Reference(ws, min_col=cats[0], min_row=cats[1], max_col=cats[2], max_row=cats[3])
            )
        if args.title:
            chart.title = args.title
        ws.add_chart(chart, args.anchor.upper())
        return self.save(target, wb, f"added a {args.kind} chart of {args.data} at {args.anchor}")[
            0
        ]


class SheetFind(SheetTool):
    """sheet_find: cells whose value or formula contains a text."""

    name = "sheet_find"
    risk = "read"
    description = "Find cells in a workbook whose value or formula contains a text (any case)."

    class Args(BaseModel):
        path: str = Field(description="Workbook path relative to the workspace.")
        query: str = Field(min_length=1, description="Text to look for.")
        sheet: str | None = Field(None, description="Only this sheet.")

    def run(self, args: Args) -> ToolResult:
        target = self.resolve(args.path)
        if isinstance(target, ToolResult):
            return target
        try:
            wb = load_workbook(target, read_only=True)
        except OfficeError as exc:
            return _error(str(exc))
        q = args.query.lower()
        hits: list[str] = []
        for ws in wb.worksheets:
            if args.sheet and ws.title.lower() != args.sheet.lower():
                continue
            for row in ws.iter_rows():
                for c in row:
                    v = getattr(c, "value", None)
                    if v is not None and q in str(v).lower():
                        hits.append(f"{quote_sheet(ws.title)}!{c.coordinate}: {_show(v)}")
                if len(hits) > 100:
                    break
        wb.close()
        if not hits:
            return ToolResult(output=f"no cells contain {args.query!r}", data={"matches": 0})
        text = "\n".join(hits[:100]) + ("\n[more matches not shown]" if len(hits) > 100 else "")
        return ToolResult(output=text, data={"matches": len(hits)})


def sheet_tools(workspace: Path) -> list[Tool]:
    """The spreadsheet tools, bound to one workspace."""
    return [
        SheetDescribe(workspace),
        SheetRead(workspace),
        SheetWrite(workspace),
        SheetInsert(workspace),
        SheetAdd(workspace),
        SheetFormat(workspace),
        SheetChart(workspace),
        SheetFind(workspace),
    ]


def office_tools(workspace: Path) -> list[Tool]:
    """Spreadsheet, document and verification tools, bound to one workspace."""
    from spud.tools.documents import document_tools
    from spud.tools.office_verify import VerifyFile

    return [*sheet_tools(workspace), *document_tools(workspace), VerifyFile(workspace)]
