"""`spud eval` as a user runs it, on replay models: tables, JSON, charts, the store, compare."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spud.core.messages import Message, ToolCall
from spud.eval.bfcl import (
    CATEGORIES,
    TAKEN,
    BfclCase,
    grounded,
    load_cases,
    run_case,
    score,
    tool_specs,
)
from spud.eval.records import EvalStore
from spud.eval.runner import call_counts
from spud.models.replay import ReplayModel
from spud.store.sql import SqlStore

SUITE = """
[[task]]
id = "hello"
prompt = "Write hello.txt saying hi"
max_steps = 5
checks = [{ fn = "file_equals", path = "hello.txt", text = "hi" }]

[[task]]
id = "version"
prompt = "Copy the version from v.cfg into VERSION"
max_steps = 5
checks = [{ fn = "file_equals", path = "VERSION", text = "1.2" }]
[task.files]
"v.cfg" = "version = 1.2\\n"
"""


def spud(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPUD_HOME": str(home), "SPUD_CONFIG": str(home / "none.toml")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "spud", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def call(name: str, **arguments: object) -> dict:
    return {"calls": [{"name": name, "arguments": arguments}]}


def recordings(folder: Path, replies: dict[str, list[dict]]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for task_id, rs in replies.items():
        (folder / f"{task_id}.json").write_text(json.dumps(rs))
    return f"replay:{folder}"


HELLO_OK = [call("write_file", path="hello.txt", content="hi"), call("finish", summary="done")]
# The small-model failure: the tool result's text copied into the file.
VERSION_BAD = [
    call("read_file", path="v.cfg"),
    call("write_file", path="VERSION", content="version = 1.2"),
    call("finish", summary="done"),
]
VERSION_OK = [
    call("read_file", path="v.cfg"),
    call("write_file", path="VERSION", content="1.2"),
    call("finish", summary="done"),
]


def run_ids(home: Path) -> list[str]:
    evals = EvalStore(SqlStore(f"sqlite:///{home / 'spud.db'}"))
    return [r.id for r in evals.list_runs()]


def test_eval_runs_a_user_suite_stores_charts_and_compares(tmp_path: Path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "basics.toml").write_text(SUITE)
    home = tmp_path / "home"
    bad = recordings(tmp_path / "bad", {"hello": HELLO_OK, "version": VERSION_BAD})
    out = tmp_path / "out1"
    r = spud(home, "eval", str(suite), "--model", bad, "--workers", "2", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed 1/2 (50%)" in r.stdout and "schema-valid calls 100%" in r.stdout
    assert "VERSION is 'version = 1.2', expected '1.2'" in r.stdout
    data = json.loads((out / "results.json").read_text())
    assert (data["passed"], data["total"]) == (1, 2)
    by_id = {x["task_id"]: x for x in data["results"]}
    assert by_id["hello"]["passed"] and not by_id["version"]["passed"]
    assert by_id["version"]["steps"] == 3 and by_id["version"]["tokens"] > 0
    assert (out / "chart.png").read_bytes()[:4] == b"\x89PNG"
    # Each task ran in its own fresh workspace, and its trajectory is a stored session.
    assert (out / "workspaces" / "hello" / "hello.txt").read_text() == "hi"
    shown = spud(home, "sessions", "show", by_id["version"]["session_id"][:8])
    assert "version = 1.2" in shown.stdout

    good = recordings(tmp_path / "good", {"hello": HELLO_OK, "version": VERSION_OK})
    r = spud(home, "eval", str(suite), "--model", good, "--out", str(tmp_path / "out2"))
    assert "passed 2/2 (100%)" in r.stdout
    first, second = run_ids(home)[::-1]
    r = spud(home, "eval", "compare", first[:8], second[:8])
    assert r.returncode == 0 and "1 fixed, 0 broken" in r.stdout and "version" in r.stdout
    r = spud(home, "eval", "list")
    assert first[:8] in r.stdout and "2/2" in r.stdout and "1/2" in r.stdout


def test_eval_runs_the_builtin_suite_on_a_replay(tmp_path: Path):
    rec = recordings(
        tmp_path / "rec",
        {
            "fix-add": [
                call("read_file", path="calc.py"),
                call("edit_file", path="calc.py", old="a - b", new="a + b"),
                call("bash", command="python -m pytest -q"),
                call("finish", summary="fixed add"),
            ],
            # Reruns the tests instead of editing: stopped as a repetition, and failed.
            "fix-off-by-one": [call("bash", command="python -m pytest -q")] * 4,
        },
    )
    out = tmp_path / "out"
    r = spud(
        tmp_path / "home",
        *("eval", "spud", "--model", rec, "-t", "fix-add", "-t", "fix-off-by-one"),
        *("--out", str(out)),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    results = {x["task_id"]: x for x in json.loads((out / "results.json").read_text())["results"]}
    assert results["fix-add"]["passed"] and results["fix-add"]["status"] == "finished"
    assert not results["fix-off-by-one"]["passed"]
    assert results["fix-off-by-one"]["status"] == "repetition"


def _first(options: list) -> object:
    """The first accepted value; nested dicts hold lists of accepted values too."""
    value = options[0]
    if isinstance(value, dict):
        return {k: _first(v) for k, v in value.items() if v and v[0] != ""}
    return value


def _good_calls(case) -> list[dict]:
    """The first accepted value of each argument (BFCL's '' means: may be left out)."""
    calls = []
    for answer in case.answer:
        ((name, params),) = answer.items()
        calls.append({name: {k: _first(v) for k, v in params.items() if v and v[0] != ""}})
    return calls


@pytest.mark.parametrize("category", [c for c in CATEGORIES if c != "irrelevance"])
def test_bfcl_checker_on_known_good_and_bad_calls(category: str):
    for case in load_cases(category, 3, seed=1):
        good = _good_calls(case)
        assert score(case, good) == (True, ""), case.id
        assert score(case, [])[0] is False
        name = next(iter(good[0]))
        wrong = [{name: {k: "?wrong?" for k in good[0][name]} or {"x": 1}}, *good[1:]]
        assert score(case, wrong)[0] is False, case.id
        assert score(case, [{"not_a_function": {}}])[0] is False


def test_bfcl_irrelevance_wants_no_call_and_specs_are_json_schema():
    case = load_cases("irrelevance", 1)[0]
    assert score(case, []) == (True, "")
    fn = case.functions[0]
    assert score(case, [{fn["name"]: {}}])[0] is False
    spec = tool_specs(case.functions)[0]
    assert spec.parameters["type"] == "object"
    types = {p["type"] for p in spec.parameters["properties"].values()}
    assert types <= {"string", "number", "integer", "boolean", "array", "object"}


def test_eval_bfcl_through_the_cli_on_a_replay(tmp_path: Path):
    simple = load_cases("simple_python", 1)[0]
    irrelevant = load_cases("irrelevance", 1)[0]
    ((name, args),) = _good_calls(simple)[0].items()
    rec = recordings(
        tmp_path / "rec",
        {
            simple.id: [{"calls": [{"name": name, "arguments": args}]}],
            irrelevant.id: [{"answer": "None of these functions can do that."}],
        },
    )
    out = tmp_path / "out"
    r = spud(
        tmp_path / "home",
        *("eval", "bfcl", "--model", rec, "--categories", "simple_python,irrelevance"),
        *("--per-category", "1", "--out", str(out)),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads((out / "results.json").read_text())
    assert data["categories"] == {
        "simple_python": {"passed": 1, "total": 1},
        "irrelevance": {"passed": 1, "total": 1},
    }
    assert data["schema_valid_rate"] == 1.0


AREAS = BfclCase(
    id="parallel_x",
    category="parallel",
    question=[
        {"role": "user", "content": "Areas of triangles: base 10, height 5; base 15, height 7."}
    ],
    functions=[
        {
            "name": "area",
            "description": "A triangle's area.",
            "parameters": {
                "type": "dict",
                "properties": {"base": {"type": "integer"}, "height": {"type": "integer"}},
                "required": ["base", "height"],
            },
        }
    ],
    answer=[{"area": {"base": [10], "height": [5]}}, {"area": {"base": [15], "height": [7]}}],
)


def _area(base: int, height: int) -> dict:
    return {"calls": [{"name": "area", "arguments": {"base": base, "height": height}}]}


def test_bfcl_follow_ups_add_grounded_calls_and_stop_at_an_invented_one():
    model = ReplayModel([_area(10, 5), _area(15, 7), _area(20, 9), _area(15, 5)])
    once = run_case(model, AREAS)
    assert (once.passed, once.error) == (False, "Wrong number of functions.")
    out = run_case(model, AREAS, follow_ups=3)
    assert out.passed, out.error
    assert out.calls == [{"area": {"base": 10, "height": 5}}, {"area": {"base": 15, "height": 7}}]
    # each reply's call got a result, and the invented third call ended the loop
    assert [m.role for m in out.turns] == ["tool", "assistant", "tool", "assistant"]
    assert out.turns[0].content == TAKEN


def test_bfcl_follow_ups_stop_at_a_repeat_or_a_text_answer():
    again = run_case(ReplayModel([_area(10, 5), _area(10, 5), _area(15, 7)]), AREAS, 3)
    assert again.calls == [{"area": {"base": 10, "height": 5}}]
    done = run_case(ReplayModel([_area(10, 5), {"answer": "Done."}, _area(15, 7)]), AREAS, 3)
    assert len(done.calls) == 1 and len(done.turns) == 2


def test_a_later_call_is_grounded_only_in_the_request_and_new():
    words = "delete the email column from the employees database; 5 rows"
    first = [{"modify": {"db": "employees", "columns": ["email"]}}]
    assert grounded({"modify": {"db": "employees", "columns": ["rows"]}}, words, first)
    # a value nobody named (a backup path), or only values an earlier call used
    assert not grounded({"backup": {"db": "employees", "path": "bk_2023"}}, words, first)
    assert not grounded({"describe": {"db": "employees", "dry_run": True}}, words, first)
    # numbers match whole: 5 is said, 15 and 0.5 are not
    assert grounded({"count": {"n": 5.0}}, words, first)
    assert not grounded({"count": {"n": 15}}, words, first)
    assert not grounded({"count": {"n": 0.5}}, words, first)


def test_schema_valid_rate_counts_invalid_and_text_replies():
    msgs = [
        Message(role="assistant", tool_calls=[ToolCall(name="bash", arguments={})]),
        Message(role="assistant", meta={"kind": "format_error", "raw": "{"}),
        Message(role="assistant", content="<tool_call>{", meta={"invalid_call": "not JSON"}),
        Message(
            role="assistant",
            content="All done.",
            tool_calls=[ToolCall(name="finish", arguments={"summary": "All done."})],
            meta={"text_answer": True},
        ),
    ]
    assert call_counts(msgs) == (3, 1)


def test_bad_input_is_a_clear_error(tmp_path: Path):
    home = tmp_path / "home"
    r = spud(home, "eval", "nope")
    assert r.returncode == 1 and "no suite 'nope'" in r.stdout
    r = spud(home, "eval", "spud", "--model", f"replay:{tmp_path}", "-t", "fix-add")
    assert r.returncode == 1 and "no recording for: fix-add" in r.stdout
    r = spud(home, "eval", "spud", "--harness", "magic", "-t", "fix-add")
    assert r.returncode == 1 and "unknown harness 'magic'" in r.stdout
    r = spud(home, "eval", "bfcl", "--categories", "java_only")
    assert r.returncode == 1 and "unknown BFCL category 'java_only'" in r.stdout
    r = spud(home, "eval", "compare", "abc", "def")
    assert r.returncode == 1 and "no eval run 'abc'" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr
