"""Spreadsheet tools (openpyxl) with recalculation by the `formulas` engine after each write."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from spud.core.messages import ToolResult
from spud.core.protocols import Tool
from spud.tools.files import WorkspaceTool
from spud.tools.office.formula import formula_text, quote_sheet, shift_formula, shift_range
from spud.tools.office.recalc import Recalc, errors_text, recalculate
from spud.tools.office.slips import formula_slips, slips_text
from spud.tools.office.workbook import (
    MAX_EDIT_CELLS,
    READ_COLS,
    READ_ROWS,
    OfficeError,
    bounds,
    describe_workbook,
    load_workbook,
    read_window,
    show,
    workbook_size,
)


def _error(message: str) -> ToolResult:
    return ToolResult(output=message, ok=False)


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
        slips = slips_text(formula_slips(wb))
        text = "\n".join(filter(None, [done, errors_text(recalc), slips]))
        text += "\nsaved. " + (
            "Fix the error cells."
            if recalc.errors
            else "Check the formulas listed and fix those that are wrong; if the task is done, "
            "call finish."
            if slips
            else "If the task is done, call finish."
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
            c1, r1, c2, r2 = bounds(args.range or "A1")
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
            got = recalc.value(ws.title, addr) if formula_text(v) else None
            arrow = f" -> {show(got)}" if got is not None else ""
            shown.append(f"  {addr} = {show(v)}{arrow}")
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
            c1, r1, c2, r2 = bounds(args.range)
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
            c1, r1, c2, r2 = bounds(args.data)
            cats = bounds(args.categories) if args.categories else None
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
                        hits.append(f"{quote_sheet(ws.title)}!{c.coordinate}: {show(v)}")
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
