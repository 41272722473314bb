"""Playbooks on the replay model and the real sandbox: choice, gathered context, check and repair."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from spud.core.agent import Agent, Harness, Limits
from spud.core.errors import ConfigError
from spud.models.replay import ReplayModel
from spud.playbooks import brief_for, choose, registered
from spud.playbooks.base import inputs_and_outputs, workspace_files
from spud.sandbox.bubblewrap import Sandbox, SandboxConfig
from spud.tools.office.tools import office_tools
from spud.tools.shell import coding_tools

TASK = "The tests in test_calc.py fail. Fix calc.py so that they pass."
BROKEN = "def add(a, b):\n    return a - b\n"
FIXED = "def add(a, b):\n    return a + b\n"
TESTS = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


def call(name: str, **arguments: object) -> dict:
    return {"calls": [{"name": name, "arguments": arguments}]}


@pytest.fixture
def code_ws(workspace: Path) -> Path:
    (workspace / "calc.py").write_text(BROKEN)
    (workspace / "test_calc.py").write_text(TESTS)
    return workspace


def run_task(task: str, ws: Path, store, replies: list[dict], repairs: int = 2, office=False):
    sandbox = Sandbox(SandboxConfig(workspace=ws))
    tools = coding_tools(ws, sandbox) + (office_tools(ws) if office else [])
    brief = brief_for(task, ws, sandbox)
    assert brief is not None
    agent = Agent(
        ReplayModel(replies),
        tools,
        store,
        limits=Limits(max_steps=10),
        harness=Harness(check_repairs=repairs),
        verifier=brief.verifier,
    )
    sid = agent.start(task, str(ws), "system" + brief.prompt, brief.context)
    return agent.run(sid), store.messages(sid), brief


def test_every_playbook_is_registered_from_its_own_file():
    assert {"code", "office", "files", "web"} <= set(registered())


def test_the_task_and_workspace_choose_the_playbook(code_ws: Path, tmp_path: Path):
    assert choose(TASK, code_ws).name == "code"
    assert choose("In calc.py replace 'a - b' by 'a + b'.", code_ws).name == "code"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert choose("Add a margin column to q3.xlsx", empty).name == "office"
    assert choose("Open http://127.0.0.1:9/shop.html and read the price", empty).name == "web"
    assert choose("Convert people.csv to people.json", empty).name == "files"
    assert choose("What is 2 + 3?", empty) is None


def test_unknown_playbook_name_is_a_clear_error(code_ws: Path):
    with pytest.raises(ConfigError, match="unknown playbook 'cooking'.*code"):
        brief_for(TASK, code_ws, Sandbox(SandboxConfig(workspace=code_ws)), "cooking")
    assert brief_for(TASK, code_ws, Sandbox(SandboxConfig(workspace=code_ws)), "none") is None


def test_code_brief_gathers_the_code_the_tests_and_the_failure(code_ws: Path):
    brief = brief_for(TASK, code_ws, Sandbox(SandboxConfig(workspace=code_ws)))
    assert brief.playbook == "code"
    assert "calc.py:\n```\ndef add(a, b):\n    return a - b\n```" in brief.context
    assert "test_calc.py:\n```\nfrom calc import add" in brief.context
    assert "1 failed" in brief.context and "assert -1 == 5" in brief.context
    assert "The tests in test_calc.py say what calc.py must do" in brief.prompt


def test_a_failing_check_sends_the_model_back_to_repair(code_ws: Path, store):
    replies = [
        call("write_file", path="calc.py", content="def add(a, b):\n    return a * b\n"),
        call("finish", summary="fixed add"),
        call("write_file", path="calc.py", content=FIXED),
        call("finish", summary="fixed add for real"),
    ]
    result, messages, _ = run_task(TASK, code_ws, store, replies)
    refusal = next(m for m in messages if m.kind == "check_failed")
    assert "`python -m pytest -q`" in refusal.content and "assert 6 == 5" in refusal.content
    assert result.status == "finished"
    assert result.summary.startswith("fixed add for real [checked and passed: `python -m pytest")
    assert "1 passed" in result.checks[0].detail


def test_each_change_shows_the_tests_result(code_ws: Path, store):
    replies = [call("write_file", path="calc.py", content=FIXED), call("finish", summary="ok")]
    result, messages, _ = run_task(TASK, code_ws, store, replies)
    write = next(m for m in messages if m.role == "tool" and m.name == "write_file")
    assert "[tests after this change: 1 passed" in write.content
    assert result.status == "finished"


def test_a_run_that_never_passes_its_check_does_not_end_finished(code_ws: Path, store):
    wrong = call("write_file", path="calc.py", content="def add(a, b):\n    return 0\n")
    replies = [wrong, call("finish", summary="done"), call("finish", summary="done!")]
    result, _, _ = run_task(TASK, code_ws, store, replies, repairs=1)
    assert result.status == "check_failed"
    assert "FAILED: `python -m pytest -q`" in result.summary
    assert store.get_session(result.session_id).status == "check_failed"


def test_editing_the_tests_is_caught(code_ws: Path, store):
    replies = [
        call("write_file", path="test_calc.py", content="def test_add():\n    pass\n"),
        call("finish", summary="tests pass now"),
    ]
    result, _, _ = run_task(TASK, code_ws, store, replies, repairs=0)
    assert result.status == "check_failed"
    assert "tests left unchanged" in result.summary


def test_files_playbook_checks_the_named_output_exists(workspace: Path, store):
    (workspace / "people.csv").write_text("name,age\nAda,36\n")
    task = "Convert people.csv to people.json (a list of objects)."
    replies = [
        call("read_file", path="people.csv"),
        call("finish", summary="converted"),
        call("write_file", path="people.json", content='[{"name": "Ada", "age": 36}]'),
        call("finish", summary="converted"),
    ]
    result, messages, brief = run_task(task, workspace, store, replies)
    assert brief.playbook == "files" and "name,age" in brief.context
    refusal = next(m for m in messages if m.kind == "check_failed")
    assert "people.json was not created" in refusal.content
    assert (
        result.status == "finished" and "checked and passed: output people.json" in result.summary
    )


def test_json_keys_the_task_types_are_checked_in_the_output(workspace: Path, store):
    (workspace / "items.csv").write_text("sku,price,stock,tags,gone\nA-1,4.50,120,a;b,\nB,1,2,,\n")
    task = (
        "Convert items.csv into items.json, one object per row. Types: `sku`: a string; "
        "`price`: a number (e.g. `4.5`); `stock`: an integer; `tags`: a list of strings; "
        "`gone`: a boolean, or null when empty."
    )
    as_text = (
        '[{"sku": "A-1", "price": "4.50", "stock": "120", "tags": ["a", "b"], "gone": null}, '
        '{"sku": "B", "price": 1, "stock": 2, "tags": [""], "gone": null}]'
    )
    typed = (
        '[{"sku": "A-1", "price": 4.5, "stock": 120, "tags": ["a", "b"], "gone": null}, '
        '{"sku": "B", "price": 1, "stock": 2, "tags": [], "gone": null}]'
    )
    replies = [
        call("write_file", path="items.json", content=as_text),
        call("finish", summary="converted"),
        call("write_file", path="items.json", content=typed),
        call("finish", summary="converted"),
    ]
    result, messages, _ = run_task(task, workspace, store, replies)
    refusal = next(m for m in messages if m.kind == "check_failed").content
    assert 'items.json: "price" is "4.50" (text) in record 1' in refusal
    assert "the task says a number" in refusal and '"stock" is "120" (text)' in refusal
    assert '"tags" is [""] (a list holding one empty string' in refusal and "record 2" in refusal
    assert "sku" not in refusal and "gone" not in refusal
    assert result.status == "finished" and "the task's JSON types" in result.summary


def test_types_the_task_gives_in_a_sentence_are_read():
    from spud.playbooks.task_shapes import typed_keys

    task = (
        "Types: `isbn` and `title` are strings as written; `year` is an integer; `price` is a "
        "number; `in_stock` is a boolean (`yes` is true, `no` is false)."
    )
    assert typed_keys(task) == {
        "isbn": ("a string", False),
        "title": ("a string", False),
        "year": ("an integer", False),
        "price": ("a number", False),
        "in_stock": ("a boolean", False),
    }


def test_an_output_line_a_word_away_from_the_tasks_example_line_is_sent_back(
    workspace: Path, store
):
    (workspace / "a.log").write_text("10:00:01 INFO started on port 80\n10:00:03 WARN slow\n")
    task = (
        "Copy the entries of a.log into out.log, each with the source name after the time, "
        "as in `10:00:01 a INFO started on port 80`. Write `kept K of N` at the end."
    )
    replies = [
        call(
            "write_file", path="out.log", content="10:00:01 INFO started on port 80\nkept 2 of 2\n"
        ),
        call("finish", summary="copied"),
        call("write_file", path="out.log", content="10:00:01 a INFO started on port 80\n"),
        call("finish", summary="copied"),
    ]
    result, messages, _ = run_task(task, workspace, store, replies)
    refusal = next(m for m in messages if m.kind == "check_failed").content
    assert "out.log line 1 is '10:00:01 INFO started on port 80'" in refusal
    assert "line 1 leaves out 'a'" in refusal and "kept" not in refusal
    assert result.status == "finished" and "the task's example lines" in result.summary


def test_a_csv_output_must_start_with_the_header_the_task_gives(workspace: Path, store):
    (workspace / "team.md").write_text("| Name | Office |\n|---|---|\n| Ana | Berlin |\n")
    task = "Write team.csv from the table in team.md, with the header name,office and one row each."
    replies = [
        call("write_file", path="team.csv", content="Name,Office,\nAna,Berlin,\n"),
        call("finish", summary="written"),
        call("write_file", path="team.csv", content="name, office\nAna,Berlin\n"),
        call("finish", summary="written"),
    ]
    result, messages, _ = run_task(task, workspace, store, replies)
    refusal = next(m for m in messages if m.kind == "check_failed").content
    assert "team.csv: the first row is 'Name,Office,'; the task gives the header 'name,office'" in (
        refusal
    )
    assert result.status == "finished" and "the task's header" in result.summary


def test_a_sheet_the_task_names_must_be_in_the_workbook(workspace: Path):
    (workspace / "costs.csv").write_text("item,amount\ntaxi,12.5\n")
    task = "Turn costs.csv into costs.xlsx with one sheet named Expenses, the same rows."
    brief = brief_for(task, workspace, Sandbox(SandboxConfig(workspace=workspace)))
    assert brief is not None and brief.playbook == "office"
    wb = openpyxl.Workbook()
    wb.active.append(["item", "amount"])
    wb.save(workspace / "costs.xlsx")
    failed = [c for c in brief.verifier.check() if not c.passed]
    assert [c.detail for c in failed] == [
        "the task names a sheet 'Expenses', and no workbook has it (costs.xlsx has Sheet)"
    ]
    wb.active.title = "Expenses"
    wb.save(workspace / "costs.xlsx")
    assert all(c.passed for c in brief.verifier.check())


def test_a_range_left_in_part_empty_fails_only_when_it_was_empty_before(workspace: Path):
    wb = openpyxl.Workbook()
    for row in [["Region", "Sales"], ["North", 120], ["South", None]]:
        wb.active.append(row)
    wb.save(workspace / "sales.xlsx")
    task = "In sales.xlsx put each region's share of the sales in C2:C3 and check B2:B3."
    brief = brief_for(task, workspace, Sandbox(SandboxConfig(workspace=workspace)))
    assert brief is not None
    wb.active["C2"] = "=B2/120"
    wb.save(workspace / "sales.xlsx")
    ranges = next(c for c in brief.verifier.check() if c.name == "the task's ranges")
    assert not ranges.passed and ranges.detail == "Sheet!C3 empty, in C2:C3, which the task names"
    wb.active["C3"] = 0
    wb.save(workspace / "sales.xlsx")
    assert all(c.passed for c in brief.verifier.check() if c.name == "the task's ranges")


def test_the_task_s_titled_columns_and_formulas_are_checked_on_the_workbook(workspace: Path):
    wb = openpyxl.Workbook()
    wb.active.title = "Budget"
    for row in [["Category", "Planned", "Actual"], ["Rent", 100, 120], ["Travel", 50, 40]]:
        wb.active.append(row)
    wb.save(workspace / "budget.xlsx")
    task = (
        "budget.xlsx has a sheet Budget. Add column D titled Difference (D1) with Actual minus "
        'Planned, and E titled "Over budget" (E1) saying yes or no. Use formulas in D2:E3, '
        "and put Total in A4 with the sum of the differences in D4 as a formula. Put "
        '"Total" in A5.'
    )
    brief = brief_for(task, workspace, Sandbox(SandboxConfig(workspace=workspace)))
    assert brief is not None

    def results() -> dict[str, str]:
        return {c.name: c.detail for c in brief.verifier.check() if not c.passed}

    ws = wb.active
    # what a pandas script wrote: the column letters as titles, the values typed in
    for address, value in {"D1": "D", "E1": "E", "D2": 20, "E2": "yes", "D3": -10}.items():
        ws[address] = value
    ws["E3"], ws["A4"], ws["D4"] = "no", "Total", 10
    wb.save(workspace / "budget.xlsx")
    failed = results()
    assert failed["the task's titles"] == (
        "the task puts 'Total' in A5; A5 is empty on every sheet; the task puts 'Difference' "
        "in D1; Budget!D1 is 'D'; the task puts 'Over budget' in E1; Budget!E1 is 'E'"
    )
    assert failed["the task's formulas"] == (
        "budget.xlsx: Budget!D2, E2, D3, E3 ... hold typed-in values (5 cell(s)); the task "
        "asks for formulas there (text starting with '=')"
    )  # the label "Total" in A4, a single cell, is not counted
    ws["D1"], ws["E1"] = "difference", "Over budget "
    for r in (2, 3):
        ws[f"D{r}"], ws[f"E{r}"] = f"=C{r}-B{r}", f'=IF(C{r}>B{r},"yes","no")'
    ws["D4"] = "=SUM(D2:D3)"
    wb.save(workspace / "budget.xlsx")
    ws["A5"] = "Total"
    wb.save(workspace / "budget.xlsx")
    assert not {"the task's titles", "the task's formulas"} & set(results())


def test_numbers_written_as_text_fail_the_numbers_check(workspace: Path):
    wb = openpyxl.Workbook()
    wb.active.title = "Expenses"
    wb.active.append(["date", "amount", "code", "old"])
    wb.active.append(["2024-01-02", 1, 1, "7.5"])  # "7.5" was text before the run: left alone
    wb.save(workspace / "expenses.xlsx")
    task = "Copy expenses.csv into expenses.xlsx, and put Total in C27 with their sum."
    brief = brief_for(task, workspace, Sandbox(SandboxConfig(workspace=workspace)))
    assert brief is not None

    def numbers() -> tuple[bool, str]:
        found = next(c for c in brief.verifier.check() if c.name == "numbers as numbers")
        return found.passed, found.detail

    ws = wb.active
    # a script's copy of a CSV: every value a string; codes are text, amounts should not be
    ws["B2"], ws["C2"], ws["B3"], ws["C3"], ws["B4"] = "276.73", "1042", "12", "0007", "=B2+B3"
    wb.save(workspace / "expenses.xlsx")
    assert numbers() == (
        False,
        "expenses.xlsx: Expenses!B2, B3 hold numbers as text (2 cell(s), '276.73'): formulas "
        "do not add text; write them as numbers (float(value) for a CSV's text)",
    )
    ws["B2"], ws["B3"] = 276.73, 12
    wb.save(workspace / "expenses.xlsx")
    assert numbers() == (True, "no numbers written as text")
    titles = next(c for c in brief.verifier.check() if c.name == "the task's titles")
    assert titles.detail == "the task puts 'Total' in C27; C27 is empty on every sheet"


def test_office_playbook_shows_the_workbook_and_verifies_it(workspace: Path, store):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Q3"
    ws.append(["item", "price", "cost"])
    ws.append(["peeler", 12.5, 0])
    wb.save(workspace / "q3.xlsx")
    task = "In q3.xlsx add a margin column D: price divided by cost, header 'margin'."
    replies = [
        call("sheet_write", path="q3.xlsx", cells={"D1": "margin", "D2": "=B2/C2"}),
        call("finish", summary="added"),
        call("sheet_write", path="q3.xlsx", cells={"D2": '=IF(C2=0,"",B2/C2)'}),
        call("finish", summary="added, no division by zero"),
    ]
    result, messages, brief = run_task(task, workspace, store, replies, office=True)
    assert brief.playbook == "office"
    assert "sheet 'Q3'" in brief.context and "B2=12.5" in brief.context
    refusal = next(m for m in messages if m.kind == "check_failed")
    assert "#DIV/0!" in refusal.content
    assert result.status == "finished"


def test_an_office_edit_that_leaves_the_workbook_as_it_was_is_not_finished(workspace: Path, store):
    wb = openpyxl.Workbook()
    for row in [["Region", "Sales"], ["North", 120], ["South", 80]]:
        wb.active.append(row)
    wb.save(workspace / "sales.xlsx")
    task = "In sales.xlsx, put a formula in B4 that adds up B2:B3."
    replies = [
        call("sheet_read", path="sales.xlsx"),
        call("finish", summary="B4 now adds up B2:B3"),  # it never wrote B4
        call("finish", summary="done"),
    ]
    result, messages, _ = run_task(task, workspace, store, replies, repairs=1, office=True)
    refusal = next(m for m in messages if m.kind == "check_failed")
    assert "sales.xlsx still as before: the task asks to change it" in refusal.content
    assert result.status == "check_failed"
    question = "What is the total of B2:B3 in sales.xlsx?"  # nothing to change: no such check
    brief = brief_for(question, workspace, Sandbox(SandboxConfig(workspace=workspace)))
    checks = brief.verifier.check()
    assert [c.name for c in checks] == ["verify sales.xlsx", "the task's ranges"]
    assert all(c.passed for c in checks)


def test_web_playbook_turns_the_browser_on(workspace: Path):
    brief = brief_for(
        "Open http://127.0.0.1:8000/a.html and write the price into price.txt",
        workspace,
        Sandbox(SandboxConfig(workspace=workspace)),
    )
    assert brief.playbook == "web" and brief.toolsets == {"browser"}
    assert "browser_open" in brief.prompt
    assert brief.verifier.check()[0].detail == "price.txt was not created"


def test_the_tests_of_a_coding_task_cannot_be_rewritten(code_ws: Path, tmp_path: Path):
    from spud.config import Settings
    from spud.service.sessions import RunSpec, SessionService

    svc = SessionService(Settings(home=tmp_path / "home"))
    replies = [
        call("write_file", path="test_calc.py", content="def test_add():\n    pass\n"),
        call("write_file", path="calc.py", content=FIXED),
        call("finish", summary="fixed"),
    ]
    spec = RunSpec(workspace=code_ws, task=TASK, model=ReplayModel(replies), auto_approve=True)
    result = svc.execute(spec)
    refused = next(m for m in svc.messages(result.session_id) if m.name == "write_file")
    assert refused.content.startswith("Not run: denied by policy (rule test_calc.py holds tests;")
    assert "change calc.py, not the tests" in refused.content
    assert (code_ws / "test_calc.py").read_text() == TESTS  # even with --yes
    assert result.status == "finished"


def test_the_grammar_offers_only_the_code_files_to_write(code_ws: Path):
    from test_edit_formats import accepts

    from spud.core.tooling import fixed_choices, tool_spec
    from spud.models.local import calls_gbnf

    sandbox = Sandbox(SandboxConfig(workspace=code_ws))
    brief = brief_for(TASK, code_ws, sandbox)
    assert brief.choices == {t: {"path": ["calc.py"]} for t in ("write_file", "edit_file")}
    tools = [t for t in coding_tools(code_ws, sandbox) if t.name in brief.tools]
    gbnf = calls_gbnf(fixed_choices([tool_spec(t) for t in tools], brief.choices), "raw")
    header = '{{"name": "write_file", "arguments": {{"path": "{}"}}}}\n```\nx = 1\n```'
    assert accepts(gbnf, header.format("calc.py"))
    assert not accepts(gbnf, header.format("test_calc.py"))


def test_the_files_a_task_names_are_told_from_abbreviations_and_patterns(tmp_path: Path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "web-1.log").write_text("x\n")
    (tmp_path / "notes.txt").write_text("x\n")
    task = (
        "Merge web-1.log and notes.txt into merged.log (e.g. one line each); dates are "
        "DD.MM.YYYY, photos go to IMG_YYYYMMDD.EXT, set self.items from datetime.date, "
        "and write levels.json and inv-*.txt."
    )
    inputs, outputs = inputs_and_outputs(task, workspace_files(tmp_path))
    assert inputs == ["logs/web-1.log", "notes.txt"]  # a bare name finds its one file
    assert outputs == ["merged.log", "levels.json"]


def test_an_output_that_holds_nothing_fails_its_check(tmp_path: Path):
    """A CSV with its header alone, an empty JSON list or an empty file is not an output."""
    from spud.playbooks.checks import outputs_check

    check = outputs_check(tmp_path, ["receipts.csv", "levels.json", "notes.txt"])
    (tmp_path / "receipts.csv").write_text("date,store,total\n")
    (tmp_path / "levels.json").write_text("[]\n")
    (tmp_path / "notes.txt").write_text("")
    result = check()
    assert not result.passed
    assert result.detail == (
        "receipts.csv holds only one line (a header row and no data rows); "
        "levels.json holds only []: no data; notes.txt is empty"
    )
    (tmp_path / "receipts.csv").write_text("date,store,total\n2024-05-02,Book Nook,15.00\n")
    (tmp_path / "levels.json").write_text('{"INFO": 3}')
    (tmp_path / "notes.txt").write_text("done\n")
    assert check().passed


def test_an_output_in_another_order_than_the_task_asks_fails(tmp_path: Path):
    """ "sorted by category name": a report's lines by their first field, its TOTAL line left
    out; a CSV by the header column named; a case-sensitive order passes too."""
    from spud.playbooks.task_shapes import shape_checks

    task = (
        "Write report.txt with one line per category, sorted by category name, of the form "
        "`category: total`, then a last line `TOTAL: grand total`."
    )
    check, last = shape_checks(tmp_path, task, ["report.txt"])
    (tmp_path / "report.txt").write_text("rent: 800.00\nfood: 41.25\nTOTAL: 841.25\n")
    result = check()
    assert not result.passed and result.detail == (
        "report.txt: the lines are in the order rent, food; the task asks for them sorted by "
        "category name (ascending)"
    )
    (tmp_path / "report.txt").write_text("food: 41.25\nrent: 800.00\nTOTAL: 841.25\n")
    assert check().passed
    assert last().passed and last().name == "the task's last line"

    for task, wrong, right in (
        (
            "Write out.csv with the header old,new, one row per file, sorted by the old path.",
            "old,new\nc.jpg,x\nA.jpg,y\n",
            "old,new\nB.jpg,y\na.jpg,x\n",
        ),
        (  # "Sort the rows by ...", as an order
            "Make out.csv with the header id,time. Sort the rows by time, earliest first.",
            "id,time\ne1,2026-11-06 11:05\ne2,2026-11-02 20:17\n",
            "id,time\ne2,2026-11-02 20:17\ne1,2026-11-06 11:05\n",
        ),
    ):
        checks = shape_checks(tmp_path, task, ["out.csv"])
        (tmp_path / "out.csv").write_text(wrong)
        assert not checks[-1]().passed
        (tmp_path / "out.csv").write_text(right)
        assert checks[-1]().passed
    assert not shape_checks(tmp_path, "Write out.txt; the list is not sorted.", ["out.txt"])


def test_numbers_past_the_tasks_decimals_and_columns_off_its_format_fail(tmp_path: Path):
    """ "rounded to 2 decimals": a JSON output's unrounded sum fails, named by its place; a
    bullet that writes a CSV column `YYYY-MM-DD HH:MM:SS` or "with exactly 2 decimals" holds
    that column's values to it."""
    from spud.playbooks.value_shapes import value_checks

    task = "Write s.json with `total` and `by_day`. Every money value is rounded to 2 decimals."
    (check,) = value_checks(tmp_path, task, ["s.json"])
    (tmp_path / "s.json").write_text('{"total": 7518.450000000001, "by_day": {"mon": [1.5]}}')
    result = check()
    assert not result.passed
    assert result.detail == 's.json: ["total"] is 7518.450000000001, more than 2 decimals'
    (tmp_path / "s.json").write_text('{"total": 7518.45, "by_day": {"mon": [1.5, 3]}}')
    assert check().passed
    (tmp_path / "in.csv").write_text("site,lat\nA,52.520008\n")  # a number copied as written
    (check,) = value_checks(tmp_path, task, ["s.json"])
    (tmp_path / "s.json").write_text('{"total": 7518.45, "lat": 52.520008}')
    assert check().passed

    task = (
        "Make p.csv with the header id,time_utc,amount.\n\n"
        "- time_utc: the event's ts converted to UTC and written\n  `YYYY-MM-DD HH:MM:SS`.\n"
        "- amount: written with exactly 2 decimals (`65` is `65.00`).\n"
    )
    (check,) = value_checks(tmp_path, task, ["p.csv"])
    (tmp_path / "p.csv").write_text("id,time_utc,amount\ne1,2026-11-06T11:05:03+00:00,65\n")
    result = check()
    assert not result.passed and result.detail == (
        "p.csv row 2: time_utc is '2026-11-06T11:05:03+00:00', not written YYYY-MM-DD HH:MM:SS; "
        "p.csv row 2: amount is '65', not with exactly 2 decimals"
    )
    (tmp_path / "p.csv").write_text("id,time_utc,amount\ne1,2026-11-06 11:05:03,65.00\n")
    assert check().passed
    assert not value_checks(tmp_path, "Write p.csv from a.csv.", ["p.csv"])


def test_rows_written_as_json_strings_fail_the_typed_keys_check(tmp_path: Path):
    """A list of JSON texts holds no record: the typed-keys check fails instead of passing
    with nothing to check; records nested under a key are still found."""
    from spud.playbooks.task_shapes import shape_checks

    task = "Convert a.csv into a.json. Types: `qty` is an integer."
    (check,) = shape_checks(tmp_path, task, ["a.json"])
    (tmp_path / "a.json").write_text('["{\\"qty\\": \\"4\\"}"]')
    result = check()
    assert not result.passed
    assert result.detail.startswith('a.json: no record holds the keys the task types ("qty");')
    (tmp_path / "a.json").write_text('{"rows": [{"qty": 4}]}')
    assert check().passed
    (tmp_path / "a.json").write_text('[{"qty": 4}]')
    assert check().passed


def test_values_under_the_wrong_column_fail(tmp_path: Path):
    """An e-mail address under `city` and a city under `email` fail; a price column needs
    digits; empty fields and columns with no kind of their own pass."""
    from spud.playbooks.task_shapes import shape_checks

    task = "cards/ holds contact cards. Write contacts.csv with the header name,email,city,price."
    checks = shape_checks(tmp_path, task, ["contacts.csv"])
    check = next(c for c in checks if c().name == "values in their columns")
    (tmp_path / "contacts.csv").write_text(
        "name,email,city,price\nAnn Lee,Paris,ann@example.org,12.50\nBo,bo@x.io,Oslo,free\n"
    )
    result = check()
    assert not result.passed
    assert result.detail == (
        "contacts.csv row 2: the email column holds 'Paris', which is not an e-mail address; "
        "contacts.csv row 2: the city column holds 'ann@example.org', an e-mail address, which "
        "belongs under the e-mail column; contacts.csv row 3: the price column holds 'free', "
        "with no digit in it"
    )
    (tmp_path / "contacts.csv").write_text(
        "name,email,city,price\nAnn Lee,ann@example.org,Paris,12.50\nBo,,Oslo,€3\n"
    )
    assert check().passed
    (tmp_path / "contacts.csv").write_text("name,city\nAnn,Paris\n")
    assert check().passed


def test_the_line_the_task_puts_last_must_be_last(tmp_path: Path):
    """ "then a last line `ALL: total units`": an `ALL:` line written first fails, one that is
    missing fails, one written last passes."""
    from spud.playbooks.task_shapes import shape_checks

    task = (
        "Write summary.txt with one line per region, sorted by region name, of the form "
        "`region: units`, then a last line `ALL: total units`."
    )
    check = shape_checks(tmp_path, task, ["summary.txt"])[-1]
    (tmp_path / "summary.txt").write_text("ALL: 85\neast: 31\nnorth: 19\nwest: 35\n")
    result = check()
    assert not result.passed
    assert result.detail == (
        "summary.txt: the task asks for a last line starting 'ALL:'; it is line 1 of 4"
    )
    (tmp_path / "summary.txt").write_text("east: 31\nnorth: 19\nwest: 35\n")
    assert check().detail.endswith("no line starts so")
    (tmp_path / "summary.txt").write_text("east: 31\nnorth: 19\nwest: 35\nALL: 85\n\n")
    assert check().passed
    assert not shape_checks(tmp_path, "Write out.txt, one line per name.", ["out.txt"])


def test_an_output_the_task_wants_as_just_the_number_holds_one_number(tmp_path: Path):
    from spud.playbooks.task_shapes import shape_checks

    task = "Count the ERROR lines of app.log and write just the number into errors.txt."
    [check] = shape_checks(tmp_path, task, ["errors.txt"])
    (tmp_path / "errors.txt").write_text("12 errors\n")
    result = check()
    assert not result.passed and result.name == "just the number"
    assert result.detail == "errors.txt holds '12 errors'; the task asks for just the number"
    (tmp_path / "errors.txt").write_text("12\n")
    assert check().passed
    assert not shape_checks(tmp_path, "Count the ERROR lines into errors.txt.", ["errors.txt"])
