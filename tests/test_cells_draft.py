"""Workbook edits drafted as a dict of cells: ranges filled, sheets added, checked, repaired."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from test_drafts import Drafter, script_run

from spud.playbooks import brief_for
from spud.playbooks.cells_draft import CellsDraft, CellsError, by_sheet, cells_in
from spud.playbooks.checks import TaskVerifier
from spud.playbooks.script_draft import ScriptDraft
from spud.sandbox.bubblewrap import Sandbox, SandboxConfig
from spud.tools.office.recalc import recalculate

ORDERS = [["Item", "Qty", "Price"], ["tea", 2, 1.5], ["jam", 1, 4.0], ["oats", 3, 2.0]]
TASK = (
    'orders.xlsx has an Orders sheet (Item, Qty, Price in rows 2 to 4). Put "Line total" in '
    "D1 and Qty times Price in D2:D4 as formulas, and a sheet Totals with Total in A1 and the "
    "sum of the line totals in B1."
)


def orders(ws_dir: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Orders"
    for row in ORDERS:
        ws.append(row)
    wb.save(ws_dir / "orders.xlsx")


def values(path: Path, sheet: str, cells: list[str]) -> list:
    """The cells' values as a spreadsheet would show them (the workbook recalculated)."""
    recalc = recalculate(openpyxl.load_workbook(path))
    return [recalc.value(sheet, c) for c in cells]


def test_a_range_fills_its_formula_down_and_a_new_sheet_is_added(workspace: Path, store):
    orders(workspace)
    reply = (
        "```python\ncells = {\n"
        '    "Orders!D1": "Line total",\n'
        '    "Orders!D2:D4": "=B2*C2",\n'
        '    "Totals!A1:B1": ["Total", "=SUM(Orders!D2:D4)"],\n'
        "}\n```"
    )
    model = Drafter([reply])
    result, messages = script_run(workspace, store, model, TASK, office=True)
    assert result.status == "finished", result.summary
    assert "verify orders.xlsx" in result.summary  # the office check ran before finishing
    book = openpyxl.load_workbook(workspace / "orders.xlsx")
    assert [book["Orders"][f"D{r}"].value for r in (2, 3, 4)] == ["=B2*C2", "=B3*C3", "=B4*C4"]
    assert book["Totals"]["A1"].value == "Total"
    assert values(workspace / "orders.xlsx", "Totals", ["B1"]) == [13.0]
    calls = [m.tool_calls[0].name for m in messages if m.role == "assistant"]
    assert calls == ["sheet_write", "sheet_add", "sheet_write", "finish"]
    asked = model.prompts[0][1].content
    assert "orders.xlsx" in asked and "B2=2" in asked and "cells = {" in asked


def test_a_reply_without_cells_is_told_why_and_the_next_one_is_written(workspace: Path, store):
    orders(workspace)
    book = openpyxl.load_workbook(workspace / "orders.xlsx")
    book.create_sheet("Notes")["A1"] = "checked by Ann"
    book.save(workspace / "orders.xlsx")
    bad = '```python\ncells = {"Orders!D2:D": "=B2*C2"}\n```'
    unasked = '```python\ncells = {"Sheet1!D2:D4": "=B2*C2"}\n```'  # no such sheet, not asked
    good = '```python\ncells = {"Orders!D1": "Line total", "Orders!D2:D4": "=B2*C2"}\n```'
    model = Drafter([bad, unasked, good])
    result, messages = script_run(workspace, store, model, TASK, office=True)
    assert result.status == "finished", result.summary
    written = next(m for m in messages if m.meta.get("draft"))
    assert written.meta["draft"] == good and written.meta["unused"] == [bad, unasked]
    told = model.prompts[1][-1].content
    assert "'Orders!D2:D' is not a cell or range" in told
    told = model.prompts[2][-1].content
    assert "orders.xlsx has no sheet 'Sheet1' (its sheets: 'Orders', 'Notes')" in told
    assert openpyxl.load_workbook(workspace / "orders.xlsx").sheetnames == ["Orders", "Notes"]
    assert openpyxl.load_workbook(workspace / "orders.xlsx")["Orders"]["D4"].value == "=B4*C4"


def test_cells_that_fail_their_checks_get_the_values_and_then_a_script_takes_over(
    workspace: Path, store
):
    orders(workspace)
    broken = '```python\ncells = {"Orders!D2": "=B2/0"}\n```'  # #DIV/0!, each round
    again = '```python\ncells = {"Orders!D2": "=B2/(C2-C2)"}\n```'
    third = '```python\ncells = {"Orders!D2": "=1/0"}\n```'
    script = (
        "```python\nimport openpyxl\nwb = openpyxl.load_workbook('orders.xlsx')\n"
        "ws = wb['Orders']\nws['D1'] = 'Line total'\nfor r in range(2, 5):\n"
        "    ws[f'D{r}'] = f'=B{r}*C{r}'\n"
        "wb.save('orders.xlsx')\n```"
    )
    model = Drafter([broken, again, third, script])
    result, _ = script_run(workspace, store, model, TASK, office=True)
    assert result.status == "finished", result.summary
    repair = model.prompts[1][-1].content
    assert "D2 = =B2/0" in repair and "#DIV/0!" in repair  # what the cells hold now, and why
    assert "openpyxl" in model.prompts[3][1].content  # the script draft's own ask
    assert values(workspace / "orders.xlsx", "Orders", ["D2", "D4"]) == [3.0, 6.0]


def test_cells_given_back_unchanged_are_told_what_the_checks_said_again(workspace: Path, store):
    orders(workspace)
    titled = '```python\ncells = {"Orders!D1": "=B1*C1", "Orders!D2:D4": "=B2*C2"}\n```'
    good = '```python\ncells = {"Orders!D1": "Line total", "Orders!D2:D4": "=B2*C2"}\n```'
    model = Drafter([titled, titled, good])
    task = TASK.replace('Put "Line total" in D1', "Put a title in D1")  # no text to hold to
    result, _ = script_run(workspace, store, model, task, office=True)
    assert result.status == "finished", result.summary
    told = model.prompts[2][-1].content
    assert told.startswith("Every cell in your dict already holds exactly that")
    assert "The checks still say:\n- verify orders.xlsx:" in told
    assert "D1 =B1*C1: a formula among the header row's titles" in told
    assert openpyxl.load_workbook(workspace / "orders.xlsx")["Orders"]["D1"].value == "Line total"


def test_a_range_the_task_names_left_in_part_empty_is_a_failing_check(workspace: Path, store):
    orders(workspace)
    short = '```python\ncells = {"Orders!D1": "Line total", "Orders!D2:D3": "=B2*C2"}\n```'
    whole = '```python\ncells = {"Orders!D4": "=B4*C4"}\n```'
    model = Drafter([short, whole])
    task = 'In orders.xlsx put "Line total" in D1 and Qty times Price in D2:D4 as formulas.'
    result, _ = script_run(workspace, store, model, task, office=True)
    assert result.status == "finished", result.summary
    told = model.prompts[1][-1].content
    assert "- the task's ranges: Orders!D4 empty, in D2:D4, which the task names" in told
    assert values(workspace / "orders.xlsx", "Orders", ["D4"]) == [6.0]


def test_cell_keys_and_values_become_each_sheets_writes():
    sheets = ["Orders", "Notes"]
    got = by_sheet({"B2:C3": [[1, 2], [3, 4]], "'notes'!A1": "hi", "New!A1:A2": 0}, sheets)
    assert got == {
        "Orders": {"B2": 1, "C2": 2, "B3": 3, "C3": 4},  # a bare address: the first sheet
        "Notes": {"A1": "hi"},  # the workbook's spelling of the name
        "New": {"A1": 0, "A2": 0},  # a value over a range fills it
    }
    assert by_sheet({"E2:F2": "=SUM($A$1:A2)"}, sheets)["Orders"]["F2"] == "=SUM($A$1:B2)"
    with pytest.raises(CellsError, match="has 3 cells but its list 2 values"):
        by_sheet({"A1:A3": [1, 2]}, sheets)
    with pytest.raises(CellsError, match="top left to bottom right"):
        by_sheet({"A5:A1": 1}, sheets)
    with pytest.raises(CellsError, match="no dict of cells"):
        cells_in("Put =SUM(B2:B4) in B5.")
    with pytest.raises(CellsError, match="plain text, numbers or lists"):
        cells_in("```python\ncells = {'A1': sum([1, 2])}\n```")
    # a formula's own quote marks inside the Python string (a 1.5B's SUMIF, three replies)
    quoted = '```python\ncells = {\n    "S!B2": "=SUMIF(D!B:B, "North", D!D:D)",  # North\n}\n```'
    assert cells_in(quoted) == {"S!B2": '=SUMIF(D!B:B, "North", D!D:D)'}
    with pytest.raises(CellsError, match="not valid Python"):
        cells_in('```python\ncells = {\n    "S!B2": "North" "South",,\n}\n```')


def test_a_sheet_is_added_only_when_the_task_names_it_not_its_files_name():
    task = "In sales.xlsx put the total of B2:B4 in B5 and a copy of it in a sheet Summary."
    draft = CellsDraft(task, "", TaskVerifier(checks=[]), "sales.xlsx", ["Sheet", "Notes"])
    assert draft.settled({"Sheet": {}, "Summary": {}}) == {"Sheet": {}, "Summary": {}}
    for unasked in ("Sales", "Sheet1", "Summ"):
        with pytest.raises(CellsError, match=f"sales.xlsx has no sheet '{unasked}'"):
            draft.settled({unasked: {"B5": 1}})


def test_in_a_one_sheet_workbook_an_unasked_sheet_is_that_sheet():
    task = "In sales.xlsx put the total of B2:B4 in B5 and a copy of it in a sheet Summary."
    draft = CellsDraft(task, "", TaskVerifier(checks=[]), "sales.xlsx", ["Sheet"])
    writes = {"Sales": {"B5": "=SUM(Sales!B2:B4)"}, "Sheet1": {"A5": "Total"}, "Summary": {}}
    assert draft.settled(writes) == {
        "Sheet": {"B5": "=SUM(B2:B4)", "A5": "Total"},  # its formula reads this sheet
        "Summary": {},  # the task names it: added
    }


def test_cells_holding_data_are_written_only_when_the_task_names_them(workspace: Path, store):
    orders(workspace)
    over = '```python\ncells = {"Orders!C2:C4": "=B2*2", "Orders!D1": "Line total"}\n```'
    good = '```python\ncells = {"Orders!D1": "Line total", "Orders!D2:D4": "=B2*C2"}\n```'
    model = Drafter([over, good])
    result, _ = script_run(workspace, store, model, TASK, office=True)
    assert result.status == "finished", result.summary
    told = model.prompts[1][-1].content
    assert "Orders!C2, C3, C4 hold the workbook's data, which the task does not ask" in told
    assert openpyxl.load_workbook(workspace / "orders.xlsx")["Orders"]["C2"].value == 1.5  # kept
    assert values(workspace / "orders.xlsx", "Orders", ["D4"]) == [6.0]
    task = "In prices.xlsx the price of pears (B3) is now 15; fix C2:C3 as well."
    draft = CellsDraft(
        task, "", TaskVerifier(checks=[]), "p.xlsx", ["P"], {"P": {"B2", "B3", "C3"}}
    )
    draft.data_kept({"P": {"B3": 15, "C3": "=B3*2"}})  # named: B3 itself, C3 in C2:C3
    with pytest.raises(CellsError, match=r"P!B2 hold"):
        draft.data_kept({"P": {"B2": 1}} | {"Q": {"B2": 1}})


def test_only_an_edit_of_one_workbooks_cells_is_drafted_as_cells(workspace: Path):
    orders(workspace)
    sandbox = Sandbox(SandboxConfig(workspace=workspace))

    def opening(task: str) -> object:
        brief = brief_for(task, workspace, sandbox)
        assert brief is not None
        return brief.opening

    drafted = opening(TASK)
    assert isinstance(drafted, CellsDraft) and isinstance(drafted.then, ScriptDraft)
    assert drafted.sheets == ["Orders"] and "C4" in drafted.data["Orders"]
    for task in (
        "List only the orders of orders.xlsx with Qty over 1 in a new sheet, sorted by Price.",
        "Make report.docx from orders.xlsx with the total.",
    ):
        assert isinstance(opening(task), ScriptDraft), task


def budget(ws_dir: Path) -> None:
    """Three month sheets and a Q1 sheet whose B4 reads the wrong row and total stops short."""
    wb = openpyxl.Workbook()
    q1 = wb.active
    q1.title = "Q1"
    for month, base in (("Jan", 100), ("Feb", 200), ("Mar", 300)):
        ws = wb.create_sheet(month)
        ws.append(["Category", "Amount"])
        for i, cat in enumerate(["Rent", "Staff", "Travel", "Tools", "Legal"]):
            ws.append([cat, base + i])
    q1.append(["Category", "Q1 total"])
    for r, cat in enumerate(["Rent", "Staff", "Travel", "Tools", "Legal"], start=2):
        q1.append([cat, f"=Jan!B{r}+Feb!B{r}+Mar!B{r}"])
    q1["B4"] = "=Jan!B4+Feb!B5+Mar!B4"
    q1["A7"], q1["B7"] = "Total", "=SUM(B2:B5)"
    wb.save(ws_dir / "budget.xlsx")


FIX_TASK = (
    "In budget.xlsx the Q1 sheet adds up each category over Jan, Feb and Mar (B2 to B6) with "
    "the grand total in B7. Some Q1 formulas are wrong: fix them."
)


def test_a_fix_of_formulas_sees_the_slips_and_those_left_take_their_quick_fixes(
    workspace: Path, store
):
    budget(workspace)
    half = '```python\ncells = {"Q1!B4": "=Jan!B4+Feb!B4+Mar!B4"}\n```'
    model = Drafter([half])
    result, messages = script_run(workspace, store, model, FIX_TASK, office=True)
    assert result.status == "finished", result.summary
    # the first ask shows what a spreadsheet program would flag, with the likely formula
    asked = model.prompts[0][1].content
    assert "'Q1'!B4 =Jan!B4+Feb!B5+Mar!B4: unlike the formulas above and below it" in asked
    assert "like them it would be =Jan!B4+Feb!B4+Mar!B4" in asked
    assert "'Q1'!B7 =SUM(B2:B5): leaves out B6" in asked
    # fixing B4 alone leaves the short total: its quick fix (take B6 in) is written for it
    assert len(model.prompts) == 1
    assert values(workspace / "budget.xlsx", "Q1", ["B4", "B7"]) == [606, 3030]
    writes = [
        m for m in messages if m.role == "assistant" and m.tool_calls[0].name == "sheet_write"
    ]
    assert [w.meta.get("quick_fix", False) for w in writes] == [False, True]
    assert writes[1].tool_calls[0].arguments["cells"] == {"B7": "=SUM(B2:B6)"}


def test_flagged_formulas_given_back_unchanged_take_their_quick_fixes(workspace: Path, store):
    budget(workspace)
    same = '```python\ncells = {"Q1!B4": "=Jan!B4+Feb!B5+Mar!B4", "Q1!B7": "=SUM(B2:B5)"}\n```'
    model = Drafter([same])
    result, messages = script_run(workspace, store, model, FIX_TASK, office=True)
    assert result.status == "finished", result.summary
    assert len(model.prompts) == 1 and "quick fixes" in result.summary
    assert values(workspace / "budget.xlsx", "Q1", ["B4", "B7"]) == [606, 3030]
    (write,) = [m for m in messages if m.role == "assistant" and m.meta.get("quick_fix")]
    assert write.tool_calls[0].arguments["cells"] == {
        "B4": "=Jan!B4+Feb!B4+Mar!B4",
        "B7": "=SUM(B2:B6)",
    }
    assert write.meta["unused"] == [same.strip()]  # the reply given back is kept with it


def test_slips_a_workbook_held_before_do_not_fail_a_task_that_does_not_fix_them(
    workspace: Path, store
):
    budget(workspace)
    task = "In budget.xlsx put the text Checked in Q1!C1."
    model = Drafter(['```python\ncells = {"Q1!C1": "Checked"}\n```'])
    result, _ = script_run(workspace, store, model, task, office=True)
    assert result.status == "finished", result.summary
    assert openpyxl.load_workbook(workspace / "budget.xlsx")["Q1"]["C1"].value == "Checked"


def test_a_lookup_task_is_shown_how_a_lookup_formula_fills_a_range(workspace: Path, store):
    orders(workspace)
    book = openpyxl.load_workbook(workspace / "orders.xlsx")
    shelves = book.create_sheet("Shelves")
    for row in [["Item", "Shelf"], ["oats", "C3"], ["tea", "A1"], ["jam", "B2"]]:
        shelves.append(row)
    book.save(workspace / "orders.xlsx")
    task = (
        "In orders.xlsx add column E titled Shelf (E1) to the Orders sheet, with each item's "
        "shelf looked up from the Shelves sheet; E2:E4 must be formulas."
    )
    reply = (
        '```python\ncells = {"Orders!E1": "Shelf", '
        '"Orders!E2:E4": "=VLOOKUP(A2, Shelves!$A$2:$B$4, 2, FALSE)"}\n```'
    )
    model = Drafter([reply])
    result, _ = script_run(workspace, store, model, task, office=True)
    assert result.status == "finished", result.summary
    assert '"=VLOOKUP(B2, Prices!$A$2:$B$50, 2, FALSE)"' in model.prompts[0][1].content
    assert values(workspace / "orders.xlsx", "Orders", ["E2", "E3", "E4"]) == ["A1", "B2", "C3"]


def test_a_formula_where_the_task_puts_a_columns_title_is_sent_back(workspace: Path, store):
    orders(workspace)
    task = "In orders.xlsx add column D titled Total (D1) with Qty times Price, as formulas."
    into_title = '```python\ncells = {"Orders!D1": "=B2*C2"}\n```'
    good = '```python\ncells = {"Orders!D1": "Total", "Orders!D2:D4": "=B2*C2"}\n```'
    model = Drafter([into_title, good])
    result, _ = script_run(workspace, store, model, task, office=True)
    assert result.status == "finished", result.summary
    told = model.prompts[1][-1].content
    assert told.startswith(
        'Orders!D1 is where the task puts the text "Total", not a formula. A column\'s formulas '
        'go in the rows below its title ("Orders!D2:D4": one formula that fills down).'
    )
    book = openpyxl.load_workbook(workspace / "orders.xlsx")
    assert [book["Orders"][f"D{r}"].value for r in (1, 2, 4)] == ["Total", "=B2*C2", "=B4*C4"]
