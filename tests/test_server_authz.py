"""Authorization matrix: each role × each endpoint × own or other organisation."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_fixtures import csrf_token, replay_file

from spud.config import Settings
from spud.server.app import create_app
from spud.server.auth import PageUser
from spud.server.settings import ServerSettings
from spud.service.hub import Services
from spud.service.tasks import TaskSpec
from spud.service.users import Principal

ROLES = ("admin", "member", "viewer")
ASK = {"rules": [], "default_action": "ask"}

pytestmark = pytest.mark.databases(scope="module")  # one world on SQLite, one on PostgreSQL


class World:
    """Two organisations, three users each, and organisation A's task, session and file."""

    def __init__(self, tmp: Path, db_url: str) -> None:
        model = replay_file(
            tmp / "agent.json",
            [
                {"calls": [{"name": "bash", "arguments": {"command": "echo a > a.txt"}}]},
                {"calls": [{"name": "finish", "arguments": {"summary": "secret A summary"}}]},
            ],
        )
        settings = Settings(home=tmp / "home", model=model, db_url=db_url)
        self.svc = Services(settings)
        self.app = create_app(self.svc, ServerSettings())
        self.users: dict[tuple[str, str], Principal] = {}
        self.keys: dict[tuple[str, str], str] = {}
        for org in ("A", "B"):
            for role in ROLES:
                who = self.svc.users.add_user(f"{role}-{org}", "password-123", f"org{org}", role)
                self.users[org, role] = who
                self.keys[org, role] = self.svc.users.create_key(who.user_id)[1]
        owner = self.users["A", "member"]
        self.task = self.svc.tasks.create(owner, TaskSpec(prompt="task of A"))
        self.wait(lambda: self.svc.tasks.get(owner, self.task.id).status == "finished")
        self.task = self.svc.tasks.get(owner, self.task.id)
        root = self.svc.workspaces.root(owner.org_id)
        (root / "default" / "secret.txt").write_text("A's secret")

    def waiting_task(self) -> tuple[str, str]:
        """A task of organisation A waiting for an approval: (task id, approval id)."""
        owner = self.users["A", "member"]
        task = self.svc.tasks.create(owner, TaskSpec(prompt="wait", policy=ASK))
        self.wait(lambda: bool(self.svc.tasks.approvals(owner, task.id)))
        return task.id, self.svc.tasks.approvals(owner, task.id)[0].id

    def state(self, task_id: str) -> tuple[str, list[str]]:
        owner = self.users["A", "member"]
        approvals = [a.status for a in self.svc.tasks.approvals(owner, task_id)]
        return self.svc.tasks.get(owner, task_id).status, approvals

    @staticmethod
    def wait(ready: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, module_db_url: str
) -> Iterator[tuple[World, TestClient]]:
    w = World(tmp_path_factory.mktemp("authz"), module_db_url)
    with TestClient(w.app) as client:
        yield w, client


def reads(w: World) -> list[tuple[str, str, dict[str, Any]]]:
    """Reads of organisation A's things: (name, path, params)."""
    t = w.task
    return [
        ("get task", f"/api/tasks/{t.id}", {}),
        ("task events", f"/api/tasks/{t.id}/events", {}),
        ("task approvals", f"/api/tasks/{t.id}/approvals", {}),
        ("get session", f"/api/sessions/{t.session_id}", {}),
        ("download file", "/api/files/download", {"path": "default/secret.txt"}),
    ]


@pytest.mark.parametrize("org", ["A", "B"])
@pytest.mark.parametrize("role", ROLES)
def test_authorization_matrix(world: tuple[World, TestClient], role: str, org: str) -> None:
    w, client = world
    own = org == "A"
    headers = {"Authorization": f"Bearer {w.keys[org, role]}"}
    problems: list[str] = []

    def check(name: str, status: int, expected: int) -> None:
        if status != expected:
            problems.append(f"{role}-{org} {name}: {status}, expected {expected}")

    # reads of A's things: own organisation 200, other organisation 404 (not even "exists")
    for name, path, params in reads(w):
        r = client.get(path, params=params, headers=headers)
        check(name, r.status_code, 200 if own else 404)
        if not own and ("A's secret" in r.text or "secret A summary" in r.text):
            problems.append(f"{role}-{org} {name}: leaked A's data")

    # lists only ever show the caller's organisation
    tasks = client.get("/api/tasks", headers=headers).json()
    sessions = client.get("/api/sessions", headers=headers).json()
    check("list tasks has A's task", int(w.task.id in {t["id"] for t in tasks}), int(own))
    check(
        "list sessions has A's session",
        int(w.task.session_id in {s["id"] for s in sessions}),
        int(own),
    )
    # a workspace path names the caller's own workspaces: B never sees A's file
    files = client.get("/api/files", params={"path": "default"}, headers=headers)
    names = {f["name"] for f in files.json()} if files.status_code == 200 else set()
    check("A's file listed", int("secret.txt" in names), int(own))

    # writes to A's things: viewers 403, other org 404, own member and admin 200; state checked
    writer = role != "viewer"
    for name, action in (("cancel", "cancel"), ("approve", "approve")):
        task_id, approval_id = w.waiting_task()
        state = lambda task_id=task_id: w.state(task_id)  # noqa: E731
        if action == "cancel":
            r = client.post(f"/api/tasks/{task_id}/cancel", headers=headers)
        else:
            r = client.post(
                f"/api/approvals/{approval_id}", json={"decision": "deny"}, headers=headers
            )
        expected = 403 if not writer else (200 if own else 404)  # a viewer is refused first
        check(name, r.status_code, expected)
        if expected != 200:
            check(f"{name} changed nothing", int(state() == ("waiting", ["pending"])), 1)
            w.svc.tasks.cancel(w.users["A", "admin"], task_id)
        w.wait(lambda state=state: state()[0] not in ("waiting", "running"))

    # writes in the caller's own organisation
    created = client.post("/api/tasks", json={"prompt": "mine"}, headers=headers)
    check("create task", created.status_code, 201 if writer else 403)
    if created.status_code == 201:
        check(
            "task lands in own org",
            int(created.json()["id"] in {t.id for t in w.svc.tasks.list(w.users[org, "member"])}),
            1,
        )
    chat = client.post(
        "/v1/chat/completions",
        json={"model": w.svc.settings.model, "messages": [{"role": "user", "content": "hi"}]},
        headers=headers,
    )
    check("chat completion", chat.status_code, 200 if writer else 403)
    check("list models", client.get("/v1/models", headers=headers).status_code, 200)
    me = client.get("/api/me", headers=headers).json()
    check("me is me", int(me["username"] == f"{role}-{org}"), 1)

    # admin-only: users and audit of the caller's own organisation
    admin = role == "admin"
    users = client.get("/api/users", headers=headers)
    check("list users", users.status_code, 200 if admin else 403)
    if admin:
        names = {u["username"] for u in users.json()}
        check(
            "users are own org",
            int(names == {f"{r}-{org}" for r in ROLES} | names & {f"new-{org}"}),
            1,
        )
    added = client.post(
        "/api/users",
        json={"username": f"new-{org}-{role}", "password": "password-123"},
        headers=headers,
    )
    check("add user", added.status_code, 201 if admin else 403)
    if admin:
        check("user added to own org", int(added.json()["org"] == f"org{org}"), 1)
    audit = client.get("/api/audit", headers=headers)
    check("audit", audit.status_code, 200 if admin else 403)
    if admin:
        actors = {e["actor"] for e in audit.json()}
        other = "B" if own else "A"
        check("audit is own org", int(not any(a.endswith(f"-{other}") for a in actors)), 1)

    # keys are personal: another user's key cannot be revoked
    theirs = w.svc.users.keys(w.users["A", "admin"].user_id)[0].id
    if (org, role) != ("A", "admin"):
        r = client.delete(f"/api/keys/{theirs}", headers=headers)
        check("revoke someone else's key", r.status_code, 404)

    assert not problems, "\n".join(problems)


def test_refused_requests_are_in_the_audit_log(world: tuple[World, TestClient]) -> None:
    w, client = world
    viewer = {"Authorization": f"Bearer {w.keys['A', 'viewer']}"}
    client.post("/api/tasks", json={"prompt": "x"}, headers=viewer)
    client.get("/api/tasks", headers={"Authorization": "Bearer spud_nope"})
    entries = w.svc.audit.entries(limit=500)
    assert any(
        e.actor == "viewer-A" and e.action == "POST /api/tasks" and e.outcome == "403"
        for e in entries
    )
    assert any(e.actor == "anonymous" and e.outcome == "401" for e in entries)


def test_sign_in_cookie_works_and_sign_out_ends_it(world: tuple[World, TestClient]) -> None:
    w, client = world
    wrong = client.post("/auth/login", json={"username": "member-A", "password": "nope-nope"})
    assert wrong.status_code == 401
    nul = client.post("/auth/login", json={"username": "member-A\x00", "password": "password-123"})
    assert nul.status_code == 401  # not a 500 from PostgreSQL, whose text cannot hold NUL
    ok = client.post("/auth/login", json={"username": "member-A", "password": "password-123"})
    assert ok.status_code == 200 and "spud_session" in ok.cookies
    cookie = ok.cookies["spud_session"]
    assert "httponly" in ok.headers["set-cookie"].lower()
    assert client.get("/api/me").json()["username"] == "member-A"  # the client kept the cookie
    client.post("/auth/logout", json={})
    client.cookies.set("spud_session", cookie)  # the old cookie, replayed after sign-out
    assert client.get("/api/me").status_code == 401
    client.cookies.clear()
    form = client.post(
        "/auth/login",
        data={"username": "member-A", "password": "password-123", "next": "/tasks"},
        headers={"x-csrf-token": csrf_token(client)},
        follow_redirects=False,
    )
    assert form.status_code == 303 and form.headers["location"] == "/tasks"
    client.cookies.clear()
    assert json.loads(client.post("/auth/login", content=b"{").text)["error"]["code"]


def test_pages_redirect_to_sign_in_and_back(world: tuple[World, TestClient]) -> None:
    w, client = world

    @w.app.get("/test-page")
    def page(who: PageUser) -> dict[str, str]:
        return {"user": who.username}

    client.cookies.clear()
    r = client.get("/test-page?tab=2", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Ftest-page%3Ftab%3D2"
    client.post("/auth/login", json={"username": "viewer-B", "password": "password-123"})
    assert client.get("/test-page").json() == {"user": "viewer-B"}
    client.cookies.clear()
