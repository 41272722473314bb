"""Sleep on a recorded day: facts, episodes and skills, idempotent, and skills reach new sessions."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from spud.config import Settings
from spud.core.messages import Message, ModelReply
from spud.memory import generate
from spud.memory.scheduler import Nightly, seconds_until
from spud.memory.sleep import last_report
from spud.models.replay import ReplayModel
from spud.service.sessions import SessionService

pytestmark = pytest.mark.databases  # on SQLite and on PostgreSQL (tests/conftest.py)


class Scripted:
    """A stand-in for the model in sleep: fixed replies per kind of request."""

    name = "scripted"
    context_window = 32768

    def __init__(self, session_facts: str) -> None:
        self.session_facts = session_facts
        self.asked: list[str] = []

    def count_tokens(self, messages: list[Message], tools: list) -> int:
        return 0

    def complete(self, messages: list[Message], tools: list, exclude=frozenset()) -> ModelReply:
        system, user = messages[0].content, messages[-1].content
        self.asked.append(system)
        if system == generate.SESSION_FACTS_PROMPT:
            reply = self.session_facts
        elif system == generate.FACTS_PROMPT:
            reply = "- The Falcon release ships on 3 March.\n- Nadia approves Falcon releases."
        elif system == generate.QUESTIONS_PROMPT:
            reply = (
                "Q: Who approves Falcon releases?\nA: Nadia\nQ: What colour is the sky?\nA: plaid"
            )
        else:  # answering: the name in the context that fits, as a model with the text would
            reply = "Nadia" if "Nadia" in user else "I do not know"
        return ModelReply(message=Message(role="assistant", content=reply))


def call(name: str, **arguments: object) -> dict:
    return {"calls": [{"name": name, "arguments": arguments}]}


def run_session(svc: SessionService, ws: Path, task: str, replies: list[dict]) -> str:
    agent = svc.agent(ReplayModel(replies), ws, auto_approve=True)
    sid = svc.start(agent, task, ws)
    svc.run(agent, sid)
    return sid


@pytest.fixture
def svc(tmp_path: Path) -> SessionService:
    return SessionService(Settings(home=tmp_path / "home"))


NOTES_TASK = "Create notes.md with the title Meeting notes. I edit with vim; the project is Falcon."


def record_day(svc: SessionService, ws: Path) -> None:
    run_session(
        svc,
        ws,
        NOTES_TASK,
        [
            call("read_file", path="notes.md"),  # fails: no such file yet (a pitfall)
            call("write_file", path="notes.md", content="# Meeting notes\n"),
            call("read_file", path="notes.md"),
            call("finish", summary="notes.md created with its title"),
        ],
    )
    run_session(svc, ws, "Look around", [call("list_files", path=".")] * 3)  # repetition


def test_sleep_on_a_recorded_day_makes_facts_an_episode_and_a_skill_once(
    svc: SessionService, workspace: Path
):
    record_day(svc, workspace)
    model = Scripted(
        "preferred editor: The user edits with vim.\nproject name: The project is called Falcon."
    )
    seen: list[tuple[str, int, int]] = []
    report = svc.memory.sleep("local", "local", model, progress=lambda *a: seen.append(a))

    assert report.sessions == 2
    assert sorted(f.split("] ", 1)[1] for f in report.facts) == [
        "The project is called Falcon.",
        "The user edits with vim.",
    ]
    assert len(report.episodes) == 2 and len(report.skills) == 1  # no skill from a failure
    skill = svc.memory.list("local", "local", kind="skill")[0]
    assert skill.data["when"] == NOTES_TASK
    assert skill.data["steps"] == ["write_file notes.md", "read_file notes.md"]
    assert "read_file notes.md failed" in skill.data["pitfalls"][0]
    episodes = svc.memory.list("local", "local", kind="episode")
    assert any("Outcome: repetition" in e.text for e in episodes)
    assert any("Files written: notes.md" in e.text for e in episodes)
    assert seen[-1] == ("done", 2, 2)
    assert last_report(svc.memory.memories, "local", "local").facts == report.facts

    before = {m.id for m in svc.memory.list("local", "local", history=True)}
    again = svc.memory.sleep("local", "local", model)
    assert again.sessions == 0 and not (again.facts or again.episodes or again.skills)
    assert {m.id for m in svc.memory.list("local", "local", history=True)} == before
    # Even told to re-read the same sessions, nothing is duplicated.
    ids = [s.id for s in svc.sessions()]
    svc.memory.sleep("local", "local", model, session_ids=ids)
    assert {m.id for m in svc.memory.list("local", "local", history=True)} == before


def test_newer_fact_wins_and_the_old_one_is_kept_as_history(svc: SessionService, workspace: Path):
    record_day(svc, workspace)
    svc.memory.sleep("local", "local", Scripted("preferred editor: The user edits with vim."))
    run_session(svc, workspace, "I switched to emacs.", [call("finish", summary="noted")])
    report = svc.memory.sleep(
        "local", "local", Scripted("preferred editor: The user edits with emacs.")
    )

    assert len(report.superseded) == 1 and "vim" in report.superseded[0]
    facts = svc.memory.list("local", "local", kind="fact")
    assert [f.text for f in facts] == ["The user edits with emacs."]
    history = svc.memory.list("local", "local", kind="fact", history=True)
    assert {f.text: bool(f.superseded_by) for f in history} == {
        "The user edits with emacs.": False,
        "The user edits with vim.": True,
    }


def test_a_second_session_of_the_same_kind_gets_the_skill(svc: SessionService, workspace: Path):
    record_day(svc, workspace)
    svc.memory.sleep("local", "local", Scripted("none"))
    skill = svc.memory.list("local", "local", kind="skill")[0]

    agent = svc.agent(ReplayModel([call("finish", summary="ok")]), workspace)
    sid = svc.start(agent, "Create todo.md with the title Todo list", workspace)
    system = svc.messages(sid)[0].content
    assert f"[{skill.cite}]" in system and "skill for: Create notes.md" in system
    assert "Steps: 1. write_file notes.md 2. read_file notes.md" in system

    other = svc.start(agent, "Create todo.md", workspace, user_id="someone-else")
    assert "skill for" not in svc.messages(other)[0].content  # another user's skills stay theirs


def test_sleep_turns_a_learned_document_into_checked_facts(svc: SessionService, tmp_path: Path):
    doc = tmp_path / "falcon.md"
    doc.write_text("Falcon release plan. Nadia approves every Falcon release before it ships.")
    svc.memory.learn("local", "local", str(doc))
    report = svc.memory.sleep("local", "local", Scripted("none"), session_ids=[])

    assert report.documents == 1 and len(report.facts) == 2
    assert [(t.question, t.after) for t in report.self_tests] == [
        ("Who approves Falcon releases?", 1.0),
        ("What colour is the sky?", 0.0),
    ]
    assert any("could not answer: What colour" in d for d in report.dropped)
    kept = svc.memory.list("local", "local", kind="selftest")
    assert [m.text for m in kept] == ["Q: Who approves Falcon releases? A: Nadia"]
    assert svc.memory.sleep("local", "local", Scripted("none"), session_ids=[]).documents == 0


def test_nightly_runs_the_job_at_the_set_time():
    now = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    assert seconds_until(time(3, 0), now) == 3.5 * 3600
    assert seconds_until(time(23, 30), now) == 24 * 3600

    ran = threading.Event()
    soon = datetime.now(UTC) + timedelta(seconds=1)
    nightly = Nightly(ran.set, at=soon.time(), clock=lambda: datetime.now(UTC)).start()
    assert ran.wait(10)
    nightly.stop()
    assert not nightly.thread.is_alive()


def test_a_checked_run_becomes_a_worked_example_for_the_next_task_of_its_kind(
    svc: SessionService, workspace: Path
):
    (workspace / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (workspace / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    fixed = "def add(a, b):\n    return a + b\n"
    task = "The tests in test_calc.py fail. Fix calc.py so that they pass."
    run_session(
        svc,
        workspace,
        task,
        [call("write_file", path="calc.py", content=fixed), call("finish", summary="fixed add")],
    )
    svc.memory.sleep("local", "local", Scripted("none"))
    skill = svc.memory.list("local", "local", kind="skill")[0]
    assert skill.data["checked"].startswith("`python -m pytest -q`")
    assert skill.data["example"] == f"calc.py:\n{fixed}"

    agent = svc.agent(ReplayModel([call("finish", summary="ok")]), workspace)
    sid = svc.start(agent, "The tests in test_shop.py fail. Fix shop.py so they pass.", workspace)
    system = svc.messages(sid)[0].content
    assert f"[{skill.cite}]" in system and "It passed: `python -m pytest -q`" in system
    assert "Worked example, calc.py:\ndef add(a, b):\n    return a + b" in system


class Drafting(ReplayModel):
    """A replay model that also drafts in plain text: its drafts fix shop.py."""

    drafts = True

    def __init__(self) -> None:
        super().__init__([call("finish", summary="ok")])
        self.systems: list[str] = []

    def chat(self, messages: list[Message], max_tokens=2048, temperature=None, until_block=False):
        self.systems.append(messages[0].content)
        code = "```python\ndef total(items):\n    return sum(items)\n```"
        return ModelReply(message=Message(role="assistant", content=f"Sum them.\n{code}"))


def test_the_drafts_of_the_next_task_see_the_worked_example(svc: SessionService, workspace: Path):
    (workspace / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (workspace / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    fixed = "def add(a, b):\n    return a + b\n"
    task = "The tests in test_calc.py fail. Fix calc.py so that they pass."
    run_session(
        svc,
        workspace,
        task,
        [call("write_file", path="calc.py", content=fixed), call("finish", summary="fixed add")],
    )
    svc.memory.sleep("local", "local", Scripted("none"))
    skill = svc.memory.list("local", "local", kind="skill")[0]

    (workspace / "shop.py").write_text("def total(items):\n    raise NotImplementedError\n")
    (workspace / "test_shop.py").write_text(
        "from shop import total\n\n\ndef test_total():\n    assert total([1, 2]) == 3\n"
    )
    model = Drafting()
    agent = svc.agent(model, workspace)
    sid = svc.start(agent, "The tests in test_shop.py fail. Fix shop.py so they pass.", workspace)
    result = agent.run(sid)
    assert result.status == "finished"
    assert model.systems and f"[{skill.cite}]" in model.systems[0]
    assert "Worked example, calc.py:\ndef add(a, b):\n    return a + b" in model.systems[0]


def test_a_script_draft_that_passed_is_the_worked_example_not_its_command():
    """A script draft runs as a bash heredoc; the example is the model's reply that ran it
    (a failed draft before it is not), and the step shows the command's first line only."""
    from spud.core.messages import ToolCall
    from spud.memory.sleep import DRAFT_LABEL, _step, worked_example

    def ran(reply: str, ok: bool) -> list[Message]:
        script = reply.split("```python\n")[1].split("```")[0]
        command = f"python3 hook.py <<'SPUD_SCRIPT'\n{script}SPUD_SCRIPT"
        call = ToolCall(name="bash", arguments={"command": command})
        meta = {"kind": "draft", "draft": reply}
        return [
            Message(role="assistant", tool_calls=[call], meta=meta),
            Message(role="tool", tool_call_id=call.id, content="", meta={"ok": ok}),
        ]

    failed = "Read it.\n```python\nopen('nope.csv')\n```"
    passed = "Count the levels.\n```python\nimport json\njson.dump({}, open('l.json', 'w'))\n```"
    messages = [Message(role="user", content="Count the levels"), *ran(failed, False)]
    messages += ran(passed, True)
    example = worked_example(messages)["example"]
    assert example == f"{DRAFT_LABEL}:\n{passed}"
    command = messages[-2].tool_calls[0].arguments
    assert _step("bash", command) == "bash python3 hook.py <<'SPUD_SCRIPT'"
