"""Issue 12, finding 1: a task's workspace is pinned when the task is made; the organisation
root, nesting and links are refused, and a swapped workspace never runs."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_fixtures import replay_file, sse_events, start_server

from spud.config import Settings
from spud.server.app import create_app
from spud.server.settings import ServerSettings
from spud.service.hub import Services
from spud.service.tables import TaskRow

ASK = {"rules": [], "default_action": "ask"}
DONE = ("finished", "error", "cancelled")
# What the victim task runs: harmless in its own folder, a write into Spud's home otherwise.
PWN = [
    {"calls": [{"name": "bash", "arguments": {"command": "echo pwned > pwned.txt"}}]},
    {"calls": [{"name": "finish", "arguments": {"summary": "wrote pwned.txt"}}]},
]


def wait(ready: Callable[[], Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def pwned_files(home: Path) -> list[str]:
    """Every pwned.txt under the home, links not followed."""
    return [
        os.path.join(root, "pwned.txt") for root, _, files in os.walk(home) if "pwned.txt" in files
    ]


class Org:
    """An in-process server with one worker, a member and a second model that holds the worker."""

    def __init__(self, tmp: Path) -> None:
        self.home = tmp / "home"
        victim = replay_file(tmp / "victim.json", PWN)
        self.blocker = replay_file(
            tmp / "blocker.json",
            [
                {"calls": [{"name": "bash", "arguments": {"command": "true"}}]},
                {"calls": [{"name": "finish", "arguments": {"summary": "blocker done"}}]},
            ],
        )
        self.quick = replay_file(
            tmp / "quick.json", [{"calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]
        )
        settings = Settings(home=self.home, model=victim)
        self.svc = Services(settings, extra_models=[self.blocker, self.quick], workers=1)
        self.app = create_app(self.svc, ServerSettings())
        self.who = self.svc.users.add_user("member", "password-123", "acme", "member")
        key = self.svc.users.create_key(self.who.user_id)[1]
        self.headers = {"Authorization": f"Bearer {key}"}
        self.root = self.svc.workspaces.root(self.who.org_id)
        other = self.svc.users.add_user("other", "password-123", "other-org", "member")
        self.other_root = self.svc.workspaces.root(other.org_id)


@pytest.fixture
def org(tmp_path: Path) -> Iterator[tuple[Org, TestClient]]:
    o = Org(tmp_path)
    with TestClient(o.app) as client:
        client.headers.update(o.headers)
        yield o, client
    o.svc.close()


def task(client: TestClient, workspace: str, **extra: Any) -> Any:
    return client.post("/api/tasks", json={"prompt": "do it", "workspace": workspace, **extra})


def finished(client: TestClient, task_id: str) -> dict[str, Any]:
    wait(lambda: client.get(f"/api/tasks/{task_id}").json()["status"] in DONE)
    return client.get(f"/api/tasks/{task_id}").json()


@pytest.mark.parametrize("name", [".", "./", " ", "./.", "x/.."])
def test_the_organisation_root_is_not_a_workspace(org: tuple[Org, TestClient], name: str) -> None:
    o, client = org
    r = task(client, name)
    assert r.status_code == 400, r.text
    assert "workspace" in r.json()["error"]["message"]
    assert client.get("/api/tasks").json() == []


def test_a_workspace_inside_or_around_another_is_refused(org: tuple[Org, TestClient]) -> None:
    o, client = org
    assert task(client, "proj").is_success
    assert task(client, "a/b").is_success
    inside = task(client, "proj/sub")
    around = task(client, "a")
    in_chat = task(client, "default/x")  # the chat agent works in 'default'
    for r, other in ((inside, "proj"), (around, "a/b"), (in_chat, "default")):
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert "overlap" in message and repr(other) in message
    assert task(client, "proj").is_success  # the same workspace again is fine
    assert not (o.root / "proj" / "sub").exists() and not (o.root / "default" / "x").exists()


def test_two_overlapping_workspaces_made_at_once_are_never_both_kept(
    org: tuple[Org, TestClient],
) -> None:
    """Nesting is checked again once the task is stored, so a race between two requests
    cannot get 'r' and 'r/x' both accepted."""
    o, client = org
    both = []
    for n in range(20):
        names = [f"r{n}", f"r{n}/x"][:: 1 if n % 2 else -1]
        barrier = threading.Barrier(2)
        codes: dict[str, int] = {}

        def make(name: str, barrier: threading.Barrier, codes: dict[str, int]) -> None:
            barrier.wait()
            codes[name] = task(client, name, model=o.quick).status_code

        threads = [threading.Thread(target=make, args=(name, barrier, codes)) for name in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if all(code < 300 for code in codes.values()):
            both.append(names)
        assert all(code < 300 or code == 400 for code in codes.values()), codes
    assert both == [], f"both overlapping workspaces kept in {len(both)} of 20 rounds"
    kept = {t["workspace"] for t in client.get("/api/tasks", params={"limit": 100}).json()}
    assert not any(f"{w}/x" in kept for w in kept)


def test_a_workspace_name_that_is_a_link_is_refused(org: tuple[Org, TestClient]) -> None:
    o, client = org
    (o.root / "real").mkdir()
    (o.root / "alias").symlink_to("real")
    (o.root / "theirs").symlink_to(o.other_root)
    (o.root / "up").symlink_to("../..")
    for name in ("alias", "theirs", "up/spud-home", "alias/sub"):
        r = task(client, name)
        assert r.status_code == 400, (name, r.text)
        assert "link" in r.json()["error"]["message"] or "outside" in r.json()["error"]["message"]
    assert client.get("/api/tasks").json() == []
    assert not (o.root / "real" / "sub").exists()


@pytest.mark.parametrize("swap", ["link to ../..", "another folder"])
def test_a_queued_task_whose_folder_was_swapped_refuses_to_run(
    org: tuple[Org, TestClient], swap: str
) -> None:
    """The finding: a task in '.' replaced a queued task's folder with a link to ../..; when
    the queued task ran, its sandbox bound Spud's home (spud.db, every tenant) read-write."""
    o, client = org
    hold = task(client, "hold", model=o.blocker, policy=ASK).json()  # holds the only worker
    wait(lambda: client.get(f"/api/tasks/{hold['id']}/approvals").json())
    victim = task(client, "victim").json()
    assert client.get(f"/api/tasks/{victim['id']}").json()["status"] == "queued"
    db_before = (o.home / "spud.db").stat().st_ino

    # what the task in '.' did on main; here done from outside, as '.' is now refused
    (o.root / "victim").rename(o.root / "victim-moved")
    if swap == "link to ../..":
        (o.root / "victim").symlink_to("../..")
    else:
        (o.root / "victim").mkdir()

    approval = client.get(f"/api/tasks/{hold['id']}/approvals").json()[0]
    client.post(f"/api/approvals/{approval['id']}", json={"decision": "deny"})
    info = finished(client, victim["id"])
    assert info["status"] == "error"
    assert info["summary"].startswith("refused to run")
    assert ("link" if swap.startswith("link") else "another folder") in info["summary"]
    assert info["session_id"] is None  # no agent started, no command ran
    assert pwned_files(o.home) == []
    assert (o.home / "spud.db").stat().st_ino == db_before

    def refusal() -> list[Any]:  # recorded just after the status
        return [e for e in o.svc.audit.entries(o.who.org_id) if e.target == victim["id"]]

    wait(refusal)
    assert [e.action for e in refusal()] == ["task.error"]
    assert refusal()[0].detail.startswith("refused to run")  # the admin sees why


def test_a_stored_task_in_the_organisation_root_refuses_to_run(
    org: tuple[Org, TestClient],
) -> None:
    """A task stored before this fix with '.' as its workspace must not run there."""
    o, client = org
    with o.svc.tasks._db.begin() as db:
        row = TaskRow(
            org_id=o.who.org_id,
            user_id=o.who.user_id,
            prompt="legacy",
            workspace=str(o.root),
            model=o.svc.settings.model,
            policy='{"rules": [], "default_action": "auto"}',
            tools='{"sets": [], "auto_approve": false, "max_steps": null}',
        )
        db.add(row)
    o.svc.tasks.resume_unfinished()
    info = finished(client, row.id)
    assert info["status"] == "error" and "refused to run" in info["summary"]
    assert pwned_files(o.home) == []


def test_a_task_resumed_after_kill_9_refuses_a_swapped_workspace(tmp_path: Path) -> None:
    """Kill -9 mid-task, swap the workspace for a link to Spud's home, restart: the resumed
    task refuses instead of running its next command there."""
    replies = [
        {"calls": [{"name": "bash", "arguments": {"command": "echo one >> log.txt"}}]},
        {"calls": [{"name": "bash", "arguments": {"command": "echo pwned > pwned.txt"}}]},
        {"calls": [{"name": "finish", "arguments": {"summary": "done"}}]},
    ]
    env = {
        "SPUD_MODEL": replay_file(tmp_path / "slow.json", replies),
        "SPUD_SERVER_MODEL_DELAY_S": "1.0",
    }
    home = tmp_path / "home"
    first = start_server(home, env)
    try:
        with first.client() as http:
            made = http.post("/api/tasks", json={"prompt": "go", "workspace": "w"}).json()
            with http.stream("GET", f"/api/tasks/{made['id']}/events") as events:
                for e in sse_events(events):
                    if e["event"] == "result":
                        break
            first.kill()  # the worker now waits 1 s for the model's second reply
    finally:
        first.stop()
    folder = next(home.glob("workspaces/*/w"))
    assert (folder / "log.txt").read_text() == "one\n"
    folder.rename(folder.with_name("w-moved"))
    folder.symlink_to("../..")

    second = start_server(home, env, key=first.key, port=first.port)
    try:
        with second.client() as http:
            wait(lambda: http.get(f"/api/tasks/{made['id']}").json()["status"] in DONE)
            info = http.get(f"/api/tasks/{made['id']}").json()
    finally:
        second.stop()
    assert info["status"] == "error" and info["summary"].startswith("refused to run")
    assert pwned_files(home) == []
