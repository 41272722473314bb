"""One entry point for a run: a RunSpec in, a RunResult out, on the replay model."""

from __future__ import annotations

from pathlib import Path

import pytest

from spud.config import Settings
from spud.core.agent import Harness, Limits
from spud.core.errors import ConfigError
from spud.core.messages import Message, ToolCall
from spud.models.replay import ReplayModel
from spud.sandbox.policy import Policy, Rule
from spud.service.sessions import RunSpec, SessionService


def call(tool: str, **arguments: object) -> dict:
    return {"calls": [{"name": tool, "arguments": arguments}]}


@pytest.fixture
def svc(tmp_path: Path) -> SessionService:
    return SessionService(Settings(home=tmp_path / "home"))


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


def results(svc: SessionService, session_id: str) -> list[tuple[str | None, str]]:
    return [(m.name, m.content) for m in svc.messages(session_id) if m.role == "tool"]


def test_execute_builds_starts_runs_and_records(svc: SessionService, ws: Path):
    seen: list[Message] = []
    started: list[tuple[str, int]] = []
    model = ReplayModel(
        [call("write_file", path="a.txt", content="A\n"), call("finish", summary="wrote a.txt")]
    )
    spec = RunSpec(
        workspace=ws,
        task="Write a.txt",
        model=model,
        on_message=seen.append,
        on_session=lambda sid: started.append((sid, len(svc.messages(sid)))),
    )
    result = svc.execute(spec)
    assert (result.status, result.summary, result.steps) == ("finished", "wrote a.txt", 2)
    assert (ws / "a.txt").read_text() == "A\n"
    assert started == [(result.session_id, 2)]  # system prompt and task, before any step
    assert [m.role for m in seen] == ["system", "user", "assistant", "tool", "assistant", "tool"]
    info = svc.session(result.session_id)
    assert (info.status, info.toolsets, info.task) == ("finished", ["coding"], "Write a.txt")


def test_a_model_can_be_named(svc: SessionService, ws: Path, tmp_path: Path):
    replay = tmp_path / "r.json"
    replay.write_text('[{"calls": [{"name": "list_files", "arguments": {}}]}]')
    result = svc.execute(RunSpec(workspace=ws, task="Look", model=f"replay:{replay}"))
    assert result.status == "finished" and result.summary == "replay ended"
    assert svc.session(result.session_id).model == f"replay:{replay}"


def test_limits_harness_and_require_action_come_from_the_spec(svc: SessionService, ws: Path):
    looping = [call("list_files", path=str(i)) for i in range(5)]
    one_step = RunSpec(
        workspace=ws, task="Look around", model=ReplayModel(looping), limits=Limits(max_steps=1)
    )
    result = svc.execute(one_step)
    assert result.status == "limit:step" and result.steps == 1

    at_once = ReplayModel([call("finish", summary="nothing to do")])
    strict = svc.execute(RunSpec(workspace=ws, task="Do it", model=at_once))
    assert strict.status != "finished"  # finishing with nothing done is refused
    plain = svc.execute(RunSpec(workspace=ws, task="Do it", model=at_once, require_action=False))
    assert (plain.status, plain.summary) == ("finished", "nothing to do")

    failing = [call("bash", command="exit 3")] * 2 + [call("finish", summary="gave up")]
    guarded = RunSpec(
        workspace=ws, task="Run it", model=ReplayModel(failing), harness=Harness(rerun_guard=True)
    )
    outputs = [text for name, text in results(svc, svc.execute(guarded).session_id)]
    assert outputs[1].startswith("Not run again: this exact call just failed")


def test_policy_and_asker_come_from_the_spec(svc: SessionService, ws: Path):
    (ws / "old.txt").write_text("x")
    asked: list[str] = []
    deny_writes = Policy(
        rules=[Rule(tool="write_file", action="deny"), *Policy.default().rules], by_risk=True
    )
    model = ReplayModel(
        [
            call("write_file", path="a.txt", content="A"),
            call("bash", command="rm old.txt"),
            call("finish", summary="done"),
        ]
    )
    spec = RunSpec(
        workspace=ws,
        task="Tidy up",
        model=model,
        policy=deny_writes,
        ask=lambda c, why: asked.append(c.arguments["command"]) or False,
    )
    sid = svc.execute(spec).session_id
    out = results(svc, sid)
    assert out[0][1].startswith("Not run: denied by policy (rule write_file -> deny)")
    assert out[1][1].startswith("Not run: declined by the user")
    assert asked == ["rm old.txt"] and (ws / "old.txt").exists() and not (ws / "a.txt").exists()


def test_resume_keeps_the_recorded_tool_sets_and_takes_new_limits(svc: SessionService, ws: Path):
    replies = [
        call("sheet_write", path="q3.xlsx", cells={"A1": 1}),
        call("sheet_add", path="q3.xlsx", name="Notes"),
        call("finish", summary="made q3.xlsx"),
    ]
    first = svc.execute(
        RunSpec(
            workspace=ws,
            task="Make q3.xlsx",
            model=ReplayModel(replies),
            limits=Limits(max_steps=1),
            playbook="none",  # the office playbook would flag the empty sheet (its own test)
        )
    )
    assert first.status == "limit:step"
    assert svc.session(first.session_id).toolsets == ["coding", "office"]
    # the resume spec names no task: the office set comes from the session's record
    again = RunSpec(
        workspace=ws, model=ReplayModel(replies), limits=Limits(max_steps=5), playbook="none"
    )
    result = svc.resume(first.session_id, again)
    assert (result.status, result.summary) == ("finished", "made q3.xlsx")
    assert [name for name, _ in results(svc, first.session_id)] == [
        "sheet_write",
        "sheet_add",
        "finish",
    ]
    assert all(not text.startswith("Unknown tool") for _, text in results(svc, result.session_id))


def test_a_chat_goes_on_with_a_new_turn_and_switches_sets_on(svc: SessionService, ws: Path):
    model = ReplayModel(
        [
            {"answer": "Hello!"},
            call("csv_write", path="t.csv", rows=[["a"], [1]]),
            call("finish", summary="Wrote t.csv."),
        ]
    )
    spec = RunSpec(workspace=ws, task="hi", model=model, chat=True)
    first = svc.execute(spec)
    assert (first.status, first.summary) == ("finished", "Hello!")
    assert svc.session(first.session_id).toolsets == ["coding", "memory"]
    turn = RunSpec(workspace=ws, task="Put a into t.csv", model=model, chat=True)
    second = svc.resume(first.session_id, turn, message="Put a into t.csv")
    assert (second.session_id, second.summary) == (first.session_id, "Wrote t.csv.")
    users = [m.content for m in svc.messages(first.session_id) if m.role == "user"]
    assert users == ["hi", "Put a into t.csv"]
    assert svc.session(first.session_id).toolsets == ["coding", "office", "memory"]
    assert (ws / "t.csv").read_text() == "a\n1\n"


def test_an_open_run_takes_several_turns_then_closes(svc: SessionService, ws: Path):
    model = ReplayModel([{"answer": "one"}, {"answer": "two"}])
    with svc.open(RunSpec(workspace=ws, model=model, chat=True)) as run:
        assert run.reply("first").summary == "one"
        assert run.reply("second").summary == "two"
        sid = run.session_id
    assert [m.content for m in svc.messages(sid) if m.role == "user"] == ["first", "second"]


def test_bad_specs_are_clear_errors_and_store_nothing(svc: SessionService, ws: Path):
    with pytest.raises(ConfigError, match=r"unknown tool set\(s\) \['spreadsheets'\]"):
        svc.execute(
            RunSpec(workspace=ws, task="x", model=ReplayModel([]), toolsets=["spreadsheets"])
        )
    with pytest.raises(ConfigError, match="the task is empty"):
        svc.execute(RunSpec(workspace=ws, task="  ", model=ReplayModel([])))
    assert svc.sessions() == []


def test_the_agent_is_not_patched_after_it_is_built(svc: SessionService, ws: Path):
    """What a surface asks for is what the agent gets: spec in, agent built once."""
    limits, harness = Limits(max_steps=7), Harness(self_check=True)
    spec = RunSpec(
        workspace=ws,
        model=ReplayModel([]),
        limits=limits,
        harness=harness,
        require_action=False,
        auto_approve=True,
    )
    with svc.open(spec) as run:
        agent = run.agent
        # the limits asked for, plus the owner's budgets checked with them (service/budgets.py)
        assert agent.limits.model_dump() == limits.model_dump()
        assert (agent.harness, agent.require_action) == (harness, False)
        approval = agent.approver.decide(
            ToolCall(name="bash", arguments={"command": "rm x"}), False
        )
        assert approval.decision == "allow" and "--yes" in approval.reason
