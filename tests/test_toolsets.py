"""Tool sets as plugins and tools that declare their risk: every surface, every built-in tool."""

from __future__ import annotations

import csv
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from server_fixtures import replay_file
from typer.testing import CliRunner

from spud import toolsets
from spud.cli import cli
from spud.config import Settings
from spud.core.errors import ConfigError
from spud.core.messages import ToolCall, ToolResult
from spud.models.replay import ReplayModel
from spud.sandbox.policy import Policy, PolicyApprover
from spud.server.app import create_app
from spud.service.hub import Services
from spud.service.sessions import Run, RunSpec, SessionService
from spud.service.tasks import TaskSpec
from spud.toolsets import registry

PASSWORD = "password-123"


def call(name: str, **arguments: object) -> dict:
    return {"calls": [{"name": name, "arguments": arguments}]}


@pytest.fixture
def chat_site(tmp_path: Path) -> Iterator[tuple[Services, TestClient]]:
    """A server whose model remembers a fact, writes a CSV, then answers; office switched on."""
    model = replay_file(
        tmp_path / "chat.json",
        [
            {
                "calls": [
                    {"name": "remember", "arguments": {"text": "Ann drinks tea", "key": "Ann"}}
                ]
            },
            {
                "calls": [
                    {
                        "name": "csv_write",
                        "arguments": {
                            "path": "drinks.csv",
                            "rows": [["name", "drink"], ["Ann", "tea"]],
                        },
                    }
                ]
            },
            {"calls": [{"name": "finish", "arguments": {"summary": "Noted: Ann drinks tea."}}]},
        ],
    )
    svc = Services(Settings(home=tmp_path / "home", model=model, tools=["office"]))
    ann = svc.users.add_user("ann", PASSWORD, "acme", "member")
    _, key = svc.users.create_key(ann.user_id)
    app = create_app(svc)
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        yield svc, client


def test_memory_and_office_calls_run_in_server_chat(chat_site: tuple[Services, TestClient]):
    """The bug: in web chat and through spud-agent no one can approve, and memory and office
    calls were answered "needs approval … no one is here to approve it"."""
    svc, client = chat_site
    r = client.post(
        "/v1/chat/completions",
        json={"model": "spud-agent", "messages": [{"role": "user", "content": "Ann drinks tea"}]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "Noted: Ann drinks tea."
    results = [m for m in svc.sessions.messages(body["spud_session_id"]) if m.role == "tool"]
    assert [(m.name, m.meta.get("ok")) for m in results] == [
        ("remember", True),
        ("csv_write", True),
        ("finish", True),
    ], [m.content for m in results]
    ann = svc.users.by_name("ann")
    assert [m.text for m in svc.sessions.memory.list(ann.user_id, ann.org_id)] == ["Ann drinks tea"]
    written = svc.workspaces.workspace(ann.org_id, "default") / "drinks.csv"
    assert list(csv.reader(written.open())) == [["name", "drink"], ["Ann", "tea"]]


# -- the registry ---------------------------------------------------------------------------


def test_the_built_in_sets_are_registered_and_switch_on_by_themselves():
    assert list(toolsets.toolsets()) == ["browser", "coding", "office", "memory", "mcp"]
    assert [s.name for s in toolsets.optional()] == ["browser", "office", "memory", "mcp"]
    assert toolsets.resolve("fix the bug", []) == ["coding"]
    assert toolsets.resolve("add a margin column to Q3.XLSX", []) == ["coding", "office"]
    assert toolsets.resolve("summarise report.pdf and notes.csv", []) == ["coding", "office"]
    assert toolsets.resolve("get the price from https://shop.example/p/1", []) == [
        "browser",
        "coding",
    ]
    assert toolsets.resolve("hello", [], chat=True) == ["coding", "memory"]
    assert toolsets.resolve("hello", ["browser"]) == ["browser", "coding"]
    assert "browser" not in toolsets.resolve("see www.example.com or ftp://x", [])
    with pytest.raises(ConfigError, match=r"unknown tool set\(s\) \['ofice'\].*office"):
        toolsets.resolve("x", ["ofice"])


class Stamp:
    """stamp: writes STAMPED into a file (the tool of the test's own tool set)."""

    name = "stamp"
    risk = "write"
    description = "Stamp a file."

    class Args(BaseModel):
        path: str

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace

    def run(self, args: Args) -> ToolResult:
        (self.workspace / args.path).write_text("STAMPED\n")
        return ToolResult(output=f"stamped {args.path}")


@pytest.fixture
def stamp_set() -> Iterator[list[int]]:
    """A tool set added the way a plugin adds one: one class, registered; removed after."""
    closed: list[int] = []

    @toolsets.register
    class Stamping(toolsets.ToolSet):
        name = "stamping"
        title = "Stamps"
        summary = "stamp files (on anyway when the task says stamp)"
        prompt = "You can stamp files with the stamp tool."
        order = 40

        def tools(self, ctx: toolsets.ToolContext) -> list:
            return [Stamp(ctx.workspace)]

        def switches_on(self, task: str, chat: bool) -> bool:
            return "stamp" in task.lower()

        def close(self, tools: list) -> None:
            closed.append(sum(1 for t in tools if isinstance(t, Stamp)))

    yield closed
    registry._SETS.pop("stamping")


def test_a_new_tool_set_is_one_registered_class(tmp_path: Path, stamp_set: list[int]):
    svc = SessionService(Settings(home=tmp_path / "home"))
    ws = tmp_path / "ws"
    ws.mkdir()
    model = ReplayModel([call("stamp", path="a.txt"), call("finish", summary="stamped")])
    result = svc.execute(RunSpec(workspace=ws, task="Stamp a.txt", model=model))
    assert result.status == "finished"
    assert (ws / "a.txt").read_text() == "STAMPED\n"
    assert svc.session(result.session_id).toolsets == ["coding", "stamping"]
    system = svc.messages(result.session_id)[0]
    assert system.content.endswith("\nYou can stamp files with the stamp tool.")
    assert stamp_set == [1]  # its close() ran once the run ended
    assert "stamping: stamp files" in toolsets.help_text()
    assert toolsets.resolve("plain task", ["stamping"]) == ["coding", "stamping"]


# -- risks and the default policy on every surface ------------------------------------------


def every_tool(svc: SessionService, spec: RunSpec) -> Iterator[tuple[Run, str]]:
    """Every tool of every registered set, built the way the spec's surface builds them."""
    names = [s.name for s in toolsets.optional()]
    # the captured task spec's pinned fd was closed when that task ended: bind by path here
    with svc.open(dataclasses.replace(spec, toolsets=names, workspace_fd=None)) as run:
        for name in run.agent.tools:
            if name != "finish":  # ends the run; never goes through the approver
                yield run, name


def test_every_built_in_tool_declares_its_risk(tmp_path: Path):
    svc = SessionService(Settings(home=tmp_path / "home"))
    seen = {}
    for run, name in every_tool(svc, RunSpec(workspace=tmp_path, model=ReplayModel([]))):
        tool = run.agent.tools[name]
        assert "risk" in type(tool).__dict__, f"{type(tool).__name__} declares no risk"
        seen[name] = toolsets.risk_of(tool)
    assert None not in seen.values()
    assert len(seen) >= 36  # coding 6, office 13, browser 14, memory 3
    assert seen["read_file"] == seen["browser_snapshot"] == seen["recall"] == "read"
    assert seen["write_file"] == seen["sheet_write"] == seen["remember"] == "write"
    assert seen["bash"] == "execute" and seen["browser_submit"] == "send"


def outcome(run: Run, call: ToolCall, asked: list[str]) -> str:
    """allow; asked (a person was asked); nobody (an ask with no one to answer); deny."""
    before = len(asked)
    approval = run.agent.approver.decide(call, False)
    if len(asked) > before:
        return "asked"
    if approval.decision == "allow":
        return "allow"
    return "nobody" if "no one is here to approve it" in approval.reason else "deny"


def expected(risk: str | None, command: str, someone_answers: bool) -> str:
    if risk in ("read", "write") or command == "ls":
        return "allow"
    return "asked" if someone_answers else "nobody"  # send, and risky shell commands


@pytest.fixture
def surfaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, RunSpec]:
    """The spec each surface hands to the service, caught on its way in."""
    specs: list[RunSpec] = []
    real_open = SessionService.open

    def spy(self: SessionService, spec: RunSpec, session_id: str | None = None):  # noqa: ANN202
        specs.append(spec)
        return real_open(self, spec, session_id)

    monkeypatch.setattr(SessionService, "open", spy)
    model = replay_file(
        tmp_path / "replay.json", [call("list_files"), call("finish", summary="ok")]
    )
    home, ws = tmp_path / "home", tmp_path / "ws"
    ws.mkdir()
    env = {"SPUD_HOME": str(home), "SPUD_CONFIG": str(tmp_path / "none.toml")}
    found: dict[str, RunSpec] = {}
    runner = CliRunner()
    r = runner.invoke(cli, ["run", "List the files", "-w", str(ws), "-m", model], env=env)
    assert r.exit_code == 0, r.output
    found["cli run"] = specs.pop()
    r = runner.invoke(cli, ["chat", "-w", str(ws), "-m", model], input="hello\n", env=env)
    assert r.exit_code == 0 and "spud> ok" in r.output, r.output
    found["cli chat"] = specs.pop()
    svc = Services(Settings(home=home, model=model))
    member = svc.users.add_user("member", PASSWORD, "acme", "member")
    task = svc.tasks.create(member, TaskSpec(prompt="List the files"))
    deadline = time.monotonic() + 60
    while svc.tasks.get(member, task.id).status != "finished":
        assert time.monotonic() < deadline, svc.tasks.get(member, task.id)
        time.sleep(0.05)
    found["task"] = specs.pop()
    _, key = svc.users.create_key(member.user_id)
    with TestClient(create_app(svc), headers={"Authorization": f"Bearer {key}"}) as client:
        body = {"model": "spud-agent", "messages": [{"role": "user", "content": "hello"}]}
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
    found["spud-agent (web chat, /v1)"] = specs.pop()
    monkeypatch.undo()
    return found


def test_every_tool_on_every_surface_is_decided_by_its_risk(
    tmp_path: Path, surfaces: dict[str, RunSpec]
):
    """No tool is silently denied (asks no one can answer) or silently allowed (send)."""
    svc = SessionService(Settings(home=tmp_path / "walk"))
    for surface, spec in surfaces.items():
        asked: list[str] = []
        someone = spec.ask is not None  # the CLI under test has no terminal: no one to ask
        if someone:  # the task's questions go to the API; here they are answered "no"
            spec = dataclasses.replace(
                spec, ask=lambda c, why, to=asked: to.append(c.name) or False
            )
        assert spec.auto_approve is False, surface
        got, want = {}, {}
        for run, name in every_tool(svc, spec):
            risk = toolsets.risk_of(run.agent.tools[name])
            commands = ["ls", "rm -r build"] if risk == "execute" else [""]
            for command in commands:
                args = {"command": command} if command else {}
                key = f"{name} {command}".strip()
                got[key] = outcome(run, ToolCall(name=name, arguments=args), asked)
                want[key] = expected(risk, command, someone)
        assert got == want, surface
        assert got["remember"] == got["sheet_write"] == got["browser_open"] == "allow"
        assert got["browser_submit"] == ("asked" if someone else "nobody"), surface
    assert surfaces["task"].ask is not None and surfaces["cli run"].ask is None


def test_the_task_form_offers_every_optional_set_and_passes_the_ticked_ones(
    chat_site: tuple[Services, TestClient],
):
    svc, client = chat_site
    page = client.get("/tasks")
    assert page.status_code == 200
    for s in toolsets.optional():
        assert f'name="toolset" value="{s.name}"> {s.title}' in page.text
    assert 'value="coding"' not in page.text  # always on: no box
    form = {"prompt": "Note what Ann drinks", "toolset": ["memory", "browser"]}
    r = client.post("/tasks", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    ann = svc.users.by_name("ann")
    task = svc.tasks.get(ann, r.headers["location"].rsplit("/", 1)[1])
    deadline = time.monotonic() + 60
    while svc.tasks.get(ann, task.id).status in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    session = svc.tasks.get(ann, task.id).session_id
    assert svc.sessions.session(session).toolsets == ["browser", "coding", "office", "memory"]


def test_a_tool_from_outside_is_judged_by_the_risk_it_declares():
    """A tool Spud has no rule for (an MCP server's, a plugin's) gets its risk's default."""
    policy = Policy.default()

    def run(command: str) -> ToolCall:
        return ToolCall(name="remote_exec", arguments={"command": command})

    assert policy.decide(ToolCall(name="lookup"), risk="read")[0] == "auto"
    assert policy.decide(ToolCall(name="save_note"), risk="write")[0] == "auto"
    assert policy.decide(ToolCall(name="send_mail"), risk="send")[0] == "ask"
    assert policy.decide(run("make test"), risk="execute")[0] == "auto"  # as bash would
    assert policy.decide(run("rm -r build"), risk="execute")[0] == "ask"
    assert policy.decide(run("sudo reboot"), risk="execute")[0] == "deny"
    assert policy.decide(ToolCall(name="mystery"))[0] == "ask"  # no risk declared
    approver = PolicyApprover(policy, risks={"send_mail": "send"})
    denied = approver.decide(ToolCall(name="send_mail"), False)
    assert denied.decision == "deny" and "send risk -> ask" in denied.reason
    assert "no one is here to approve it" in denied.reason
    strict = Policy(rules=[], default_action="ask")  # a policy file without by_risk
    assert strict.decide(ToolCall(name="lookup"), risk="read")[0] == "ask"
