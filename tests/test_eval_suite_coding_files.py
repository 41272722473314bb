"""Coding and file tasks of both splits: reference solutions pass, doing nothing or cheating fails."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spud.core.errors import ConfigError
from spud.eval.checks import CheckContext, run_checks
from spud.eval.records import EvalRun, TaskResult
from spud.eval.report import results_table, summary
from spud.eval.runner import prepare
from spud.eval.suite import Suite, Task, load_split, load_suite

SOLUTIONS = Path(__file__).parent / "eval_solutions"
DEV = load_suite("spud")
HELDOUT = load_suite("spud-heldout")
OURS = ("coding", "files")
TASKS: dict[str, tuple[Suite, Task]] = {
    t.id: (suite, t) for suite in (DEV, HELDOUT) for t in suite.tasks if t.category in OURS
}
# Small tasks kept from the first suite; their known-good outputs live in test_eval_checks.py.
KEPT = {"fix-add", "fix-average-empty", "write-hello", "copy-version", "json-field"}


def fresh(task_id: str, tmp_path: Path) -> tuple[Suite, Task, Path]:
    suite, task = TASKS[task_id]
    ws = tmp_path / task_id
    ws.mkdir(parents=True)
    prepare(task, ws)
    return suite, task, ws


def verdict(suite: Suite, task: Task, ws: Path, summary: str = "") -> str | None:
    ctx = CheckContext(workspace=ws, status="finished", summary=summary, original=dict(task.files))
    return run_checks(ctx, task.checks, suite.checkers)


def solve(task_id: str, ws: Path) -> str:
    """Lay the reference solution over the workspace: its files, then its _solve.py if any."""
    folder = SOLUTIONS / task_id
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not rel.name.startswith("_"):
            (ws / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, ws / rel)
    script = folder / "_solve.py"
    if script.is_file():
        subprocess.run([sys.executable, str(script)], cwd=ws, check=True, capture_output=True)
    answer = folder / "_answer.txt"
    return answer.read_text().strip() if answer.is_file() else ""


def test_dev_split_has_ten_coding_and_ten_file_tasks():
    counts = {c: sum(t.category == c for t in DEV.tasks) for c in OURS}
    assert counts == {"coding": 10, "files": 10}
    kinds = {t.id.split("-")[0] for t in DEV.tasks if t.category == "coding"}
    assert {"fix", "impl", "refactor"} <= kinds


def test_heldout_split_is_new_tasks_of_the_same_kinds():
    held = [t for t in HELDOUT.tasks if t.category in OURS]
    assert sum(t.category == "coding" for t in held) >= 4
    assert sum(t.category == "files" for t in held) >= 4
    assert not {t.id for t in held} & {t.id for t in DEV.tasks}


def test_every_new_task_has_a_reference_solution():
    folders = {p.name for p in SOLUTIONS.iterdir() if p.is_dir() and "-" in p.name}
    assert set(TASKS) - KEPT <= folders
    assert not {f for f in folders if f.split("-")[0] in ("fix", "impl", "refactor")} - set(TASKS)


@pytest.mark.parametrize("task_id", sorted(TASKS))
def test_doing_nothing_fails(task_id: str, tmp_path: Path):
    suite, task, ws = fresh(task_id, tmp_path)
    assert verdict(suite, task, ws) is not None


@pytest.mark.parametrize("task_id", sorted(set(TASKS) - KEPT))
def test_reference_solution_passes(task_id: str, tmp_path: Path):
    suite, task, ws = fresh(task_id, tmp_path)
    answer = solve(task_id, ws)
    assert verdict(suite, task, ws, summary=answer) is None


CODING = sorted(t for t, (_, task) in TASKS.items() if task.category == "coding")


def _test_files(task: Task) -> list[str]:
    return [p for p in task.files if Path(p).name.startswith("test_")]


@pytest.mark.parametrize("task_id", CODING)
def test_coding_checks_pin_the_tests(task_id: str):
    """Every test file must stay as given, and pytest must report all its tests passed."""
    _, task = TASKS[task_id]
    unchanged = {c["path"] for c in task.checks if c["fn"] == "file_unchanged"}
    assert set(_test_files(task)) <= unchanged and _test_files(task)
    runs = [c for c in task.checks if c["fn"] == "command" and "pytest" in c["run"]]
    assert runs and all(re.fullmatch(r"\d+ passed", c.get("output", "")) for c in runs)


@pytest.mark.parametrize("task_id", ["fix-add", "impl-inventory"])
def test_editing_or_skipping_the_tests_fails(task_id: str, tmp_path: Path):
    """A coding task is not passed by rewriting its tests or by skipping them."""
    suite, task, ws = fresh(task_id, tmp_path / "edit")
    solve(task_id, ws) if (SOLUTIONS / task_id).is_dir() else None
    for rel in _test_files(task):
        (ws / rel).write_text("def test_nothing():\n    pass\n")
    assert verdict(suite, task, ws) is not None
    suite, task, ws = fresh(task_id, tmp_path / "skip")
    (ws / "conftest.py").write_text(
        "import pytest\n\n\ndef pytest_collection_modifyitems(items):\n"
        "    for item in items:\n        item.add_marker(pytest.mark.skip)\n"
    )
    problem = verdict(suite, task, ws)
    assert problem and "passed" in problem


def _known_bad(task_id: str, tmp_path: Path, change) -> str | None:
    suite, task, ws = fresh(task_id, tmp_path)
    solve(task_id, ws)
    change(ws)
    return verdict(suite, task, ws)


def _edit(ws: Path, rel: str, old: str, new: str) -> None:
    text = (ws / rel).read_text()
    assert old in text
    (ws / rel).write_text(text.replace(old, new, 1))


def test_known_bad_outputs_fail(tmp_path: Path):
    """Plausible half-done work fails: checks are exact, not 'something was written'."""
    # One of the five ledger bugs left in place.
    problem = _known_bad(
        "fix-ledger", tmp_path / "a", lambda ws: _edit(ws, "ledger.py", "t[0] <= end", "t[0] < end")
    )
    assert problem and "exited 1" in problem
    # Numbers written as strings in the JSON.
    problem = _known_bad(
        "csv-to-json",
        tmp_path / "b",
        lambda ws: _edit(ws, "products.json", '"stock": 120', '"stock": "120"'),
    )
    assert problem and "object 1 is" in problem

    # Photos copied instead of moved.
    def copy_back(ws: Path) -> None:
        (ws / "inbox" / "IMG_20231225_080000.jpg").write_text("data of IMG_20231225_080000.jpg\n")

    problem = _known_bad("organise-photos", tmp_path / "c", copy_back)
    assert problem and "is still there" in problem
    # The rename also applied to the changelog.
    problem = _known_bad(
        "rename-package",
        tmp_path / "d",
        lambda ws: _edit(ws, "project/CHANGELOG.md", "fastcart", "quickcart"),
    )
    assert problem == "project/CHANGELOG.md was changed"
    # A report with one number off by a cent.
    problem = _known_bad(
        "sales-report", tmp_path / "e", lambda ws: _edit(ws, "report.txt", "7755.10", "7755.09")
    )
    assert problem and "report.txt is" in problem


def test_a_script_that_only_copies_its_answer_fails(tmp_path: Path):
    """script-dedupe reruns dedupe.py on new input: a script that prints a fixed file fails."""
    suite, task, ws = fresh("script-dedupe", tmp_path)
    solve("script-dedupe", ws)
    fixed = (ws / "contacts_clean.csv").read_text()
    (ws / "dedupe.py").write_text(
        f"from pathlib import Path\nPath('contacts_clean.csv').write_text({fixed!r})\n"
        "print('kept 6 of 10 contacts')\n"
    )
    problem = verdict(suite, task, ws)
    assert problem and "on a new contacts.csv" in problem


def test_splits_load_apart_and_together(tmp_path: Path):
    assert [t.id for t in load_split("spud").tasks] == [t.id for t in DEV.tasks]
    assert [t.id for t in load_split("spud", "heldout").tasks] == [t.id for t in HELDOUT.tasks]
    both = load_split("spud", "all")
    assert [t.id for t in both.tasks] == [t.id for t in DEV.tasks + HELDOUT.tasks]
    cats = {t.category for t in both.tasks}
    assert {"coding", "files", "coding (held-out)", "files (held-out)"} <= cats
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.toml").write_text(
        "[[task]]\nid='a'\nprompt='p'\nchecks=[{fn='status'}]\n"
    )
    assert [t.id for t in load_split(str(tmp_path / "mine")).tasks] == ["a"]
    with pytest.raises(ConfigError, match="has no held-out split"):
        load_split(str(tmp_path / "mine"), "all")
    with pytest.raises(ConfigError, match="unknown split 'test'"):
        load_split("spud", "test")


def test_report_shows_dev_and_heldout_apart():
    def result(task_id: str, category: str, passed: bool) -> TaskResult:
        return TaskResult(task_id=task_id, category=category, passed=passed, status="finished")

    run = EvalRun(
        id="r1",
        suite="spud+heldout",
        model="m",
        harness="spud",
        results=[
            result("a", "coding", True),
            result("b", "files", False),
            result("c", "coding (held-out)", True),
        ],
    )
    s = summary(run)
    assert s["splits"] == {"dev": {"passed": 1, "total": 2}, "held-out": {"passed": 1, "total": 1}}
    assert "dev 1/2; held-out 1/1; coding 1/1, files 0/1, coding (held-out) 1/1" in str(
        results_table(run).caption
    )
    assert summary(run.model_copy(update={"results": run.results[:2]}))["splits"] == {}


def test_eval_split_all_on_a_replay(tmp_path: Path):
    """`spud eval spud --split all` runs both splits and reports them apart."""
    rec = tmp_path / "rec"
    rec.mkdir()
    fixed = [
        {
            "calls": [
                {
                    "name": "edit_file",
                    "arguments": {"path": "calc.py", "old": "a - b", "new": "a + b"},
                }
            ]
        },
        {"calls": [{"name": "finish", "arguments": {"summary": "fixed add"}}]},
    ]
    (rec / "fix-add.json").write_text(json.dumps(fixed))
    looked = [{"calls": [{"name": "read_file", "arguments": {"path": "timesheet.py"}}]}]
    (rec / "fix-timesheet.json").write_text(json.dumps(looked))
    home, out = tmp_path / "home", tmp_path / "out"
    env = {**os.environ, "SPUD_HOME": str(home), "SPUD_CONFIG": str(home / "none.toml")}
    args = ["eval", "spud", "--split", "all", "--model", f"replay:{rec}", "--out", str(out)]
    r = subprocess.run(
        [sys.executable, "-m", "spud", *args, "-t", "fix-add", "-t", "fix-timesheet"],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "dev 1/1; held-out 0/1" in r.stdout
    data = json.loads((out / "results.json").read_text())
    assert data["suite"] == "spud+heldout"
    assert data["splits"] == {
        "dev": {"passed": 1, "total": 1},
        "held-out": {"passed": 0, "total": 1},
    }
    assert {x["task_id"]: x["category"] for x in data["results"]} == {
        "fix-add": "coding",
        "fix-timesheet": "coding (held-out)",
    }
