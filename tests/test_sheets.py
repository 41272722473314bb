"""Spreadsheet tools on real workbooks: values, formulas, recalculation, styles, bad files."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from openpyxl.comments import Comment
from openpyxl.formatting.rule import CellIsRule
from openpyxl.styles import Font, PatternFill
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation

from spud.tools.office.formula import shift_formula
from spud.tools.office.recalc import recalculate
from spud.tools.office.sheets import (
    SheetAdd,
    SheetChart,
    SheetDescribe,
    SheetFind,
    SheetFormat,
    SheetInsert,
    SheetRead,
    SheetWrite,
)
from spud.tools.office.tools import office_tools
from spud.tools.office.workbook import load_workbook


def _run(tool_cls, ws: Path, **args):
    tool = tool_cls(ws)
    return tool.run(tool.Args(**args))


@pytest.fixture
def book(workspace: Path) -> Path:
    """A sales workbook with styles, a merged title, a comment, validation and a named range."""
    wb = openpyxl.Workbook()
    s = wb.active
    s.title = "Sales"
    s.append(["Region", "Q1", "Q2"])
    for row in [["North", 10, 20], ["South", 30, 40], ["East", 50, 60]]:
        s.append(row)
    s["A1"].font = Font(bold=True)
    s["B1"].fill = PatternFill("solid", start_color="FFFFFF00", end_color="FFFFFF00")
    s["A1"].comment = Comment("header", "me")
    s.merge_cells("E1:F1")
    s["E1"] = "Report"
    dv = DataValidation(type="whole", operator="between", formula1="0", formula2="1000")
    s.add_data_validation(dv)
    dv.add("B2:B4")
    s.conditional_formatting.add(
        "B2:B4",
        CellIsRule(operator="greaterThan", formula=["25"], fill=PatternFill(bgColor="FFC7CE")),
    )
    s.column_dimensions["A"].width = 18
    s["B2"].number_format = "#,##0.00"
    summary = wb.create_sheet("Summary")
    summary["A1"] = "Total Q1"
    summary["B1"] = "=SUM(Sales!B2:B4)"
    summary["B2"] = "=q2_total*2"
    wb.defined_names["q2_total"] = DefinedName("q2_total", attr_text="Summary!$B$3")
    summary["B3"] = "=SUM(Sales!C2:C4)"
    path = workspace / "sales.xlsx"
    wb.save(path)
    return path


def test_write_formula_recalculates_and_keeps_untouched_styles(book: Path, workspace: Path):
    res = _run(SheetWrite, workspace, path="sales.xlsx", cells={"A5": "Total", "B5": "=SUM(B2:B4)"})
    assert res.ok, res.output
    assert "B5 = =SUM(B2:B4) -> 90" in res.output
    assert "no error cells" in res.output
    wb = openpyxl.load_workbook(book)
    s = wb["Sales"]
    assert s["B5"].value == "=SUM(B2:B4)" and s["A5"].value == "Total"
    assert recalculate(wb).value("Sales", "B5") == 90
    assert s["A1"].font.b and s["B1"].fill.start_color.rgb == "FFFFFF00"
    assert s["A1"].comment.text == "header"
    assert [str(r) for r in s.merged_cells.ranges] == ["E1:F1"]
    assert str(s.data_validations.dataValidation[0].sqref) == "B2:B4"
    assert [str(r.sqref) for r in s.conditional_formatting] == ["B2:B4"]
    assert s.column_dimensions["A"].width == 18 and s["B2"].number_format == "#,##0.00"


def test_a_write_names_formulas_unlike_their_neighbours_and_short_totals(
    book: Path, workspace: Path
):
    cells = {"D2": "=B2+C2", "D3": "=B3+C2", "D4": "=B4+C4", "D5": "=SUM(D2:D3)"}
    res = _run(SheetWrite, workspace, path="sales.xlsx", cells=cells)
    assert res.ok, res.output
    assert "formulas to check (probably wrong):" in res.output
    assert "D3 =B3+C2: unlike the formulas above and below it; like them it would be =B3+C3" in (
        res.output
    )
    assert "D5 =SUM(D2:D3): leaves out D4, between its range and it" in res.output
    fixed = _run(
        SheetWrite, workspace, path="sales.xlsx", cells={"D3": "=B3+C3", "D5": "=SUM(D2:D4)"}
    )
    assert "formulas to check" not in fixed.output
    assert "If the task is done, call finish." in fixed.output


def test_a_number_typed_among_formulas_is_a_slip_and_each_slip_has_its_quick_fix(
    book: Path, workspace: Path
):
    """A total typed over its formula is named; the fixes are what a spreadsheet program's
    quick fixes put there (copy the neighbours' formula, take the left-out cells in)."""
    from spud.tools.office.slips import formula_slips

    cells = {"D2": "=B2+C2", "D3": 70, "D4": "=B4+C4", "D5": "=SUM(D2:D3)"}
    res = _run(SheetWrite, workspace, path="sales.xlsx", cells=cells)
    typed = "D3 70: a number typed in among the formulas above and below it; like them it would"
    assert f"{typed} be =B3+C3" in res.output
    slips = {s.cell: s.fix for s in formula_slips(openpyxl.load_workbook(book))}
    assert slips == {"D3": "=B3+C3", "D5": "=SUM(D2:D4)"}
    _run(SheetWrite, workspace, path="sales.xlsx", cells={"D3": "=B3+C3", "D5": "=SUM(D2:D4)"})
    assert not formula_slips(openpyxl.load_workbook(book))


def test_a_write_names_a_formula_among_the_header_rows_titles(book: Path, workspace: Path):
    cells = {"D1": "=B1+C1", "D2": "=B2+C2", "D3": "=B3+C3", "D4": "=B4+C4"}
    res = _run(SheetWrite, workspace, path="sales.xlsx", cells=cells)
    assert res.ok, res.output
    assert "D1 =B1+C1: a formula among the header row's titles (text)" in res.output
    fixed = _run(SheetWrite, workspace, path="sales.xlsx", cells={"D1": "Total"})
    assert "formulas to check" not in fixed.output


def test_a_write_names_a_row_formula_whose_range_runs_down_past_its_row(
    book: Path, workspace: Path
):
    cells = {"D1": "Average", **{f"D{r}": f"=AVERAGE(B{r}:C{r + 2})" for r in (2, 3)}}
    res = _run(SheetWrite, workspace, path="sales.xlsx", cells=cells)
    assert res.ok, res.output
    assert (
        "D2 =AVERAGE(B2:C4): its range B2:C4 runs from its own row down to row 4, and filled "
        "down the column it moves with each row; one row's cells would be B2:C2"
    ) in res.output
    own = {f"D{r}": f"=AVERAGE(B{r}:C{r})" for r in (2, 3, 4)}
    fixed = _run(SheetWrite, workspace, path="sales.xlsx", cells=own)
    assert "formulas to check" not in fixed.output


def test_cross_sheet_and_named_ranges_compute(book: Path):
    r = recalculate(load_workbook(book))
    assert r.value("Summary", "B1") == 90
    assert r.value("Summary", "B3") == 120
    assert r.value("Summary", "B2") == 240
    assert r.errors == []


def test_errors_are_reported_with_their_address(book: Path, workspace: Path):
    res = _run(SheetWrite, workspace, path="sales.xlsx", sheet="Summary", cells={"C1": "=B1/0"})
    assert res.ok
    assert "Summary!C1: #DIV/0!" in res.output
    assert res.data["errors"] == ["Summary!C1: #DIV/0! (formula =B1/0)"]
    res = _run(SheetWrite, workspace, path="sales.xlsx", cells={"D2": "=D3+1", "D3": "=D2+1"})
    assert "Sales!D2: circular reference" in res.output and "Sales!D3" in res.output
    res = _run(SheetWrite, workspace, path="sales.xlsx", cells={"D2": "=NOSUCHFN(1)", "D3": 1})
    assert "Sales!D2: #NAME?" in res.output
    # a #VALUE! says which single cells it read hold text (a header multiplied, most often)
    res = _run(SheetWrite, workspace, path="sales.xlsx", cells={"D1": "=B1*C1+SUM(B2:B4)"})
    assert (
        "Sales!D1: #VALUE! (formula =B1*C1+SUM(B2:B4); B1 is the text 'Q1', C1 is the text 'Q2')"
    ) in res.data["errors"]


def test_a_range_with_its_sheet_named_at_both_ends_sums_the_whole_range(workspace: Path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Q 1"
    for row in [[10], [15], [11]]:
        ws.append(row)
    ws["B1"] = "=SUM('Q 1'!A1:'Q 1'!A3)"  # as spreadsheets read it: A1:A3, not A1 and A3
    wb.create_sheet("Other")["A1"] = "=SUM(Other!B1:Other!B2)+'Q 1'!A1"
    assert recalculate(wb).value("Q 1", "B1") == 36
    assert recalculate(wb).value("Other", "A1") == 10


def test_insert_rows_adjusts_references_everywhere(book: Path, workspace: Path):
    res = _run(SheetInsert, workspace, path="sales.xlsx", axis="rows", index=3, count=2)
    assert res.ok, res.output
    wb = openpyxl.load_workbook(book)
    s, summary = wb["Sales"], wb["Summary"]
    assert s["A6"].value == "East" and s["A2"].value == "North" and s["A5"].value == "South"
    assert summary["B1"].value == "=SUM(Sales!B2:B6)"
    assert str(s.data_validations.dataValidation[0].sqref) == "B2:B6"
    assert [str(r) for r in s.merged_cells.ranges] == ["E1:F1"]
    assert recalculate(wb).value("Summary", "B1") == 90


def test_delete_row_and_column_break_references_with_ref_errors(book: Path, workspace: Path):
    _run(SheetWrite, workspace, path="sales.xlsx", sheet="Summary", cells={"C1": "=Sales!B3*2"})
    res = _run(SheetInsert, workspace, path="sales.xlsx", axis="rows", index=3, delete=True)
    assert "Summary!C1: #REF!" in res.output
    wb = openpyxl.load_workbook(book)
    assert wb["Summary"]["B1"].value == "=SUM(Sales!B2:B3)"
    assert recalculate(wb).value("Summary", "B1") == 60
    res = _run(SheetInsert, workspace, path="sales.xlsx", axis="columns", index=2, delete=True)
    wb = openpyxl.load_workbook(book)
    assert wb["Sales"]["B1"].value == "Q2"
    assert wb["Summary"]["B1"].value == "=SUM(Sales!#REF!)"
    assert wb["Summary"]["B3"].value == "=SUM(Sales!B2:B3)"


def test_shift_formula_keeps_other_sheets_and_absolute_marks():
    f = "=SUM($B$2:B9)+Other!B5+'Sales'!C4"
    assert shift_formula(f, "Sales", "Sales", "rows", 4, 1) == "=SUM($B$2:B10)+Other!B5+'Sales'!C5"


def test_format_chart_add_find_describe_read(book: Path, workspace: Path):
    res = _run(
        SheetFormat,
        workspace,
        path="sales.xlsx",
        range="B2:C4",
        number_format="0.0",
        bold=True,
        fill="#00FF00",
        width=14,
    )
    assert res.ok, res.output
    res = _run(
        SheetChart,
        workspace,
        path="sales.xlsx",
        kind="bar",
        data="B1:C4",
        categories="A2:A4",
        title="Sales by region",
        anchor="H2",
    )
    assert res.ok, res.output
    assert _run(SheetAdd, workspace, path="sales.xlsx", name="Notes").ok
    wb = openpyxl.load_workbook(book)
    s = wb["Sales"]
    assert s["C3"].number_format == "0.0" and s["C3"].font.b
    assert s["C3"].fill.start_color.rgb == "FF00FF00" and s.column_dimensions["B"].width == 14
    assert s["A1"].comment.text == "header"
    assert len(s._charts) == 1 and wb.sheetnames == ["Sales", "Summary", "Notes"]
    desc = _run(SheetDescribe, workspace, path="sales.xlsx").output
    assert "BarChart 'Sales by region'" in desc and "merged: E1:F1" in desc
    assert "name q2_total = Summary!$B$3" in desc
    found = _run(SheetFind, workspace, path="sales.xlsx", query="south").output
    assert "Sales!A3: South" in found
    read = _run(SheetRead, workspace, path="sales.xlsx", sheet="Summary").output
    assert "=SUM(Sales!B2:B4) -> 90" in read


def test_huge_sheet_is_read_in_windows(workspace: Path):
    wb = openpyxl.Workbook()
    for i in range(1, 3001):
        wb.active.append([i, f"=A{i}*2"])
    wb.save(workspace / "big.xlsx")
    res = _run(SheetRead, workspace, path="big.xlsx", range="A100:B3000")
    assert res.ok
    lines = res.output.splitlines()
    assert len(lines) < 50 and "=A100*2 -> 200" in res.output
    assert "next rows: range='A140:B179'" in res.output


def test_new_workbook_is_created_and_merged_cell_refused(workspace: Path):
    res = _run(SheetWrite, workspace, path="new.xlsx", cells={"A1": "3", "A2": "=A1*1.5"})
    assert res.ok and "A2 = =A1*1.5 -> 4.5" in res.output
    assert openpyxl.load_workbook(workspace / "new.xlsx").active["A1"].value == 3
    wb = openpyxl.Workbook()
    wb.active.merge_cells("A1:B1")
    wb.save(workspace / "m.xlsx")
    res = _run(SheetWrite, workspace, path="m.xlsx", cells={"B1": 1})
    assert not res.ok and "write to A1" in res.output


def test_bad_files_get_clear_errors(workspace: Path):
    (workspace / "corrupt.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    (workspace / "locked.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    res = _run(SheetDescribe, workspace, path="corrupt.xlsx")
    assert not res.ok and "corrupt" in res.output
    res = _run(SheetRead, workspace, path="locked.xlsx")
    assert not res.ok and "password-protected" in res.output
    res = _run(SheetWrite, workspace, path="../outside.xlsx", cells={"A1": 1})
    assert not res.ok and "outside the workspace" in res.output
    wb = openpyxl.Workbook()
    wb.save(workspace / "macro.xlsm")
    res = _run(SheetWrite, workspace, path="macro.xlsm", cells={"A1": 1})
    assert not res.ok and "macro-enabled" in res.output


def test_office_tools_have_unique_names(workspace: Path):
    names = [t.name for t in office_tools(workspace)]
    assert len(names) == len(set(names)) and "sheet_write" in names and "verify_file" in names
