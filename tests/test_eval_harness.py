"""The opt-in harness helps on real file and shell tools: self-check before finish, rerun guard."""

from __future__ import annotations

from pathlib import Path

from spud.core.agent import Agent, Harness, Limits
from spud.models.replay import ReplayModel
from spud.sandbox.bubblewrap import Sandbox, SandboxConfig
from spud.tools.shell import coding_tools


def call(name: str, **arguments: object) -> dict:
    return {"calls": [{"name": name, "arguments": arguments}]}


def agent(replies: list[dict], store, ws: Path, harness: Harness) -> tuple[Agent, str]:
    tools = coding_tools(ws, Sandbox(SandboxConfig(workspace=ws)))
    a = Agent(ReplayModel(replies), tools, store, limits=Limits(max_steps=8), harness=harness)
    return a, a.start("Write just the version number from setup.cfg into VERSION.", str(ws))


COPY_AND_FINISH = [
    call("read_file", path="setup.cfg"),
    call("write_file", path="VERSION", content="version = 2.7.1"),
    call("finish", summary="done"),
    call("write_file", path="VERSION", content="2.7.1"),
    call("finish", summary="wrote 2.7.1"),
]


def test_self_check_shows_the_change_next_to_the_task(store, workspace: Path):
    (workspace / "setup.cfg").write_text("[metadata]\nversion = 2.7.1\n")
    a, sid = agent(COPY_AND_FINISH, store, workspace, Harness(self_check=True))
    result = a.run(sid)
    review = next(m for m in store.messages(sid) if m.kind == "self_check")
    assert "Task: Write just the version number" in review.content
    assert "write_file VERSION: 'version = 2.7.1'" in review.content
    # The model got a second look, fixed the file, and the second finish was accepted.
    assert result.status == "finished" and result.summary == "wrote 2.7.1"
    assert (workspace / "VERSION").read_text() == "2.7.1"


def test_without_self_check_the_first_finish_ends_the_run(store, workspace: Path):
    (workspace / "setup.cfg").write_text("[metadata]\nversion = 2.7.1\n")
    a, sid = agent(COPY_AND_FINISH, store, workspace, Harness())
    assert a.run(sid).status == "finished"
    assert (workspace / "VERSION").read_text() == "version = 2.7.1"


def test_self_check_only_once_and_only_after_changes(store, workspace: Path):
    (workspace / "a.txt").write_text("x")
    replies = [call("read_file", path="a.txt"), call("finish", summary="it says x")]
    a, sid = agent(replies, store, workspace, Harness(self_check=True))
    assert a.run(sid).status == "finished"  # nothing changed: nothing to review
    replies = [
        call("write_file", path="b.txt", content="y"),
        call("finish", summary="one"),
        call("finish", summary="two"),
    ]
    a, sid = agent(replies, store, workspace, Harness(self_check=True))
    result = a.run(sid)
    assert (result.status, result.summary) == ("finished", "two")


def test_rerun_guard_stops_rerunning_a_failing_command(store, workspace: Path):
    replies = [
        call("bash", command="exit 3"),
        call("bash", command="exit 3"),
        call("write_file", path="fix.txt", content="fixed"),
        call("bash", command="exit 3"),
        call("finish", summary="gave up"),
    ]
    a, sid = agent(replies, store, workspace, Harness(rerun_guard=True))
    a.run(sid)
    results = [m for m in store.messages(sid) if m.role == "tool" and m.name == "bash"]
    assert "exited" in results[0].content or "exit" in results[0].content
    assert results[1].content.startswith("Not run again: this exact call just failed")
    assert not results[2].content.startswith("Not run again")  # a file changed in between


def test_grammar_covers_every_tool_set(workspace: Path):
    """Office tools nest $defs (document blocks, slides); the grammar must still compile."""
    from llama_cpp import LlamaGrammar

    from spud.browser_policy import BrowserPolicy
    from spud.core.tooling import tool_spec
    from spud.models.local import calls_gbnf
    from spud.tools.browser.tools import browser_tools
    from spud.tools.office.tools import office_tools

    tools = coding_tools(workspace, Sandbox(SandboxConfig(workspace=workspace)))
    tools += office_tools(workspace) + browser_tools(workspace, BrowserPolicy())
    specs = [tool_spec(t) for t in tools]
    assert any("$defs" in s.parameters for s in specs)
    gbnf = calls_gbnf(specs)
    assert "$ref" not in gbnf and LlamaGrammar.from_string(gbnf, verbose=False) is not None
