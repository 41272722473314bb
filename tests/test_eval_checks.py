"""Checkers on known-good and known-bad workspaces; suites as data, user suites, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest

from spud.core.errors import ConfigError
from spud.core.messages import Message, ToolCall
from spud.eval.checks import CHECKERS, CheckContext, run_checks
from spud.eval.runner import prepare
from spud.eval.suite import Task, load_suite

SUITE = load_suite("spud")
TASKS = {t.id: t for t in SUITE.tasks}


def verdict(task: Task, ws: Path, summary: str = "", messages: list[Message] = ()) -> str | None:
    ctx = CheckContext(
        workspace=ws,
        messages=list(messages),
        status="finished",
        summary=summary,
        original=dict(task.files),
    )
    return run_checks(ctx, task.checks, SUITE.checkers)


def fresh(task_id: str, tmp_path: Path) -> tuple[Task, Path]:
    task = TASKS[task_id]
    ws = tmp_path / task_id
    ws.mkdir()
    prepare(task, ws)
    return task, ws


def test_builtin_suite_has_40_tasks_in_four_areas():
    cats = {t.category for t in SUITE.tasks}
    assert len(SUITE.tasks) >= 40 and cats == {"coding", "files", "office", "browsing"}
    kinds = {t.id.split("-")[0] for t in SUITE.tasks if t.category == "coding"}
    assert {"fix", "impl", "refactor"} <= kinds


@pytest.mark.parametrize("task_id", sorted(TASKS))
def test_doing_nothing_fails_every_task(task_id: str, tmp_path: Path):
    """Known-bad output 1: the untouched workspace and an empty answer."""
    task, ws = fresh(task_id, tmp_path)
    assert verdict(task, ws) is not None


def _sheet(ws: Path, name: str, cells: dict[str, object]) -> None:
    wb = openpyxl.load_workbook(ws / name)
    for ref, value in cells.items():
        wb.active[ref] = value
    wb.save(ws / name)


# Reference solutions: what a correct agent leaves behind (files written, cells, answer).
GOOD = {
    "fix-add": ({"calc.py": "def add(a, b):\n    return a + b\n"}, None, ""),
    "fix-average-empty": (
        {"stats.py": "def average(xs):\n    return sum(xs) / len(xs) if xs else 0\n"},
        None,
        "",
    ),
    "copy-version": ({"VERSION": "2.7.1\n"}, None, ""),
    "json-field": (
        {"package.json": json.dumps({"name": "spud-demo", "version": "1.0.0", "private": True})},
        None,
        "",
    ),
    "sheet-sum": ({}, ("sales.xlsx", {"B5": "=SUM(B2:B4)"}), ""),
    "sheet-update-price": ({}, ("prices.xlsx", {"B3": 15}), ""),
    "sheet-fix-div0": (
        {},
        ("ratios.xlsx", {"C2": "=IF(B2=0,0,A2/B2)", "C3": "=IF(B3=0,0,A3/B3)"}),
        "",
    ),
    "web-follow-link": ({}, None, "The address is hello@spud.example."),
}


@pytest.mark.parametrize("task_id", sorted(GOOD))
def test_reference_solution_passes(task_id: str, tmp_path: Path):
    task, ws = fresh(task_id, tmp_path)
    files, cells, answer = GOOD[task_id]
    for rel, text in files.items():
        (ws / rel).write_text(text)
    if cells:
        _sheet(ws, *cells)
    assert verdict(task, ws, summary=answer) is None


def test_known_bad_solutions_fail(tmp_path: Path):
    """Known-bad output 2: plausible wrong work a small model produces."""
    # Fixing a failing test by editing the test.
    task, ws = fresh("fix-add", tmp_path)
    (ws / "test_calc.py").write_text("def test_add():\n    assert True\n")
    assert verdict(task, ws) == "test_calc.py was changed"
    # Copying the tool result's text instead of the value.
    task, ws = fresh("copy-version", tmp_path)
    (ws / "VERSION").write_text("version = 2.7.1\n")
    assert "expected '2.7.1'" in verdict(task, ws)
    # A formula that recalculates to the wrong value.
    task, ws = fresh("sheet-sum", tmp_path)
    _sheet(ws, "sales.xlsx", {"B5": "=SUM(B2:B3)"})
    assert "Sheet1!B5 is 300" in verdict(task, ws)
    # Breaking the JSON file.
    task, ws = fresh("json-field", tmp_path)
    (ws / "package.json").write_text('{"name": "spud-demo", "private": true,}')
    assert verdict(task, ws) is not None
    # A wrong answer.
    task, ws = fresh("web-price", tmp_path)
    assert "does not mention '12.50'" in verdict(task, ws, summary="It costs $13")


def test_trajectory_checkers(tmp_path: Path):
    msgs = [
        Message(role="assistant", tool_calls=[ToolCall(name="bash", arguments={"command": "ls"})])
    ]
    ctx = CheckContext(workspace=tmp_path, messages=msgs, status="repetition")
    assert CHECKERS["called"](ctx, tool="bash", args={"command": "ls"}) is None
    assert CHECKERS["called"](ctx, tool="bash", args={"command": "pwd"}) is not None
    assert CHECKERS["not_called"](ctx, tool="write_file") is None
    assert CHECKERS["not_called"](ctx, tool="bash") == "bash was called"
    assert "ended 'repetition'" in CHECKERS["status"](ctx)


def test_a_checker_that_crashes_fails_the_task(tmp_path: Path):
    ctx = CheckContext(workspace=tmp_path)
    problem = run_checks(
        ctx, [{"fn": "cell_value", "path": "none.xlsx", "cell": "A1", "value": 1}], CHECKERS
    )
    assert problem and "none.xlsx" in problem


USER_SUITE = """
[[task]]
id = "greeting"
prompt = "Write hi.txt"
checks = [{ fn = "has_word", path = "hi.txt", word = "hi" }]
[task.files]
"seed.txt" = "x"
"""

USER_CHECKS = """
def has_word(ctx, path, word):
    text = ctx.read(path) or ""
    return None if word in text.split() else f"{path} lacks the word {word}"
"""


def test_user_suite_with_its_own_checker(tmp_path: Path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "tasks.toml").write_text(USER_SUITE)
    (folder / "checks.py").write_text(USER_CHECKS)
    suite = load_suite(str(folder))
    assert suite.name == "mine" and [t.id for t in suite.tasks] == ["greeting"]
    task = suite.tasks[0]
    assert task.category == "tasks"
    ws = tmp_path / "ws"
    ws.mkdir()
    ctx = CheckContext(workspace=ws)
    assert run_checks(ctx, task.checks, suite.checkers) == "hi.txt lacks the word hi"
    (ws / "hi.txt").write_text("hi there")
    assert run_checks(ctx, task.checks, suite.checkers) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[[task]]\nid = 'a'\nprompt = 'p'\nchecks = [{ fn = 'nope' }]\n",
            "unknown checker 'nope'",
        ),
        ("[[task]]\nid = 'a'\nprompt = 'p'\n", "checks: Field required"),
        ("[[task\n", "cannot read suite file"),
        (
            "[[task]]\nid='a'\nprompt='p'\nchecks=[{fn='status'}]\n" * 2,
            "task id 'a' appears twice",
        ),
    ],
)
def test_bad_suites_are_clear_errors(tmp_path: Path, text: str, message: str):
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_suite(str(tmp_path))


def test_unknown_suite_and_subsets(tmp_path: Path):
    with pytest.raises(ConfigError, match="no suite 'nope'"):
        load_suite("nope")
    a, b = SUITE.subset(12, seed=0), SUITE.subset(12, seed=0)
    assert [t.id for t in a.tasks] == [t.id for t in b.tasks] and len(a.tasks) == 12
    with pytest.raises(ConfigError, match="no task"):
        SUITE.subset(None, only=["missing"])
