"""The web app's pages through FastAPI's TestClient: sign-in redirects, roles, tenants, paths."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_fixtures import csrf_token, replay_file

from spud.config import Settings
from spud.core.messages import Message, ToolCall
from spud.server.app import create_app
from spud.service.hub import Services
from spud.service.tasks import TaskInfo, TaskSpec
from spud.service.users import Principal

PASSWORD = "password-123"
ASK = {"rules": [], "default_action": "ask"}
PAGES = ["/", "/chat", "/tasks", "/tasks/abc", "/sessions", "/sessions/abc", "/files", "/admin"]


def wait(ready: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class Site:
    """Organisation A (admin, member, viewer) with a finished task, a waiting one and a file;
    organisation B with a member."""

    def __init__(self, tmp: Path) -> None:
        model = replay_file(
            tmp / "agent.json",
            [
                {
                    "calls": [
                        {"name": "write_file", "arguments": {"path": "a.txt", "content": "A\n"}}
                    ]
                },
                {"calls": [{"name": "bash", "arguments": {"command": "cat a.txt"}}]},
                {"calls": [{"name": "finish", "arguments": {"summary": "secret A summary"}}]},
            ],
        )
        self.svc = Services(Settings(home=tmp / "home", model=model))
        self.app = create_app(self.svc)
        self.users: dict[str, Principal] = {}
        for org, role in (("A", "admin"), ("A", "member"), ("A", "viewer"), ("B", "member")):
            name = f"{role}-{org}"
            self.users[name] = self.svc.users.add_user(name, PASSWORD, f"org{org}", role)

    def populate(self) -> None:
        """A's tasks, made once the app runs (its start expires approvals left waiting)."""
        member = self.users["member-A"]
        self.done = self.finished(TaskSpec(prompt="write the <b>secret</b> of A", workspace="wa"))
        self.waiting = self.svc.tasks.create(member, TaskSpec(prompt="waits", policy=ASK))
        wait(lambda: bool(self.svc.tasks.approvals(member, self.waiting.id)))
        self.approval = self.svc.tasks.approvals(member, self.waiting.id)[0].id

    def finished(self, spec: TaskSpec) -> TaskInfo:
        member = self.users["member-A"]
        task = self.svc.tasks.create(member, spec)
        wait(lambda: self.svc.tasks.get(member, task.id).status == "finished")
        return self.svc.tasks.get(member, task.id)

    def client(self, username: str | None = None) -> TestClient:
        """A browser-like client, signed in through the form when a username is given."""
        client = TestClient(self.app, follow_redirects=False)
        client.headers["x-csrf-token"] = csrf_token(client)  # what the pages' forms carry
        if username:
            r = client.post("/auth/login", data={"username": username, "password": PASSWORD})
            assert r.status_code == 303 and "spud_session" in client.cookies
        return client


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    s = Site(tmp_path_factory.mktemp("web"))
    with TestClient(s.app):  # runs the app's lifespan (and closes the services after)
        s.populate()
        yield s


@pytest.mark.parametrize("path", PAGES)
def test_pages_redirect_to_sign_in_and_come_back(site: Site, path: str) -> None:
    anonymous = site.client()
    r = anonymous.get(path)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")
    login = anonymous.get(r.headers["location"])
    assert login.status_code == 200
    assert '<label for="username">Username</label>' in login.text
    assert '<label for="password">Password</label>' in login.text
    back = anonymous.post(
        "/auth/login",
        data={"username": "admin-A", "password": PASSWORD, "next": path},
    )
    assert back.status_code == 303 and back.headers["location"] == path


def test_a_wrong_password_shows_an_alert_and_no_cookie(site: Site) -> None:
    client = site.client()
    r = client.post("/auth/login", data={"username": "admin-A", "password": "nope-nope"})
    assert r.status_code == 303 and r.headers["location"] == "/login?error=1&next=%2F"
    page = client.get("/login?error=1")
    assert 'role="alert">Wrong username or password.' in page.text
    assert "spud_session" not in client.cookies
    assert client.get("/tasks").status_code == 303


def test_a_signed_in_visit_to_login_goes_on_and_sign_out_ends_it(site: Site) -> None:
    client = site.client("member-A")
    assert client.get("/login?next=/files").headers["location"] == "/files"
    form = {"content-type": "application/x-www-form-urlencoded"}  # what the Sign out form sends
    out = client.post("/auth/logout", headers=form)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/tasks").status_code == 303


def test_static_files_are_served_without_sign_in(site: Site) -> None:
    client = site.client()
    js = client.get("/static/spud.js")
    assert js.status_code == 200 and "EventSource" in js.text
    assert client.get("/static/spud.css").status_code == 200
    assert client.get("/static/../web.py").status_code == 404


def test_every_page_renders_for_a_member(site: Site) -> None:
    client = site.client("member-A")
    for path, heading in [
        ("/chat", '<h1 id="chat-heading">Chat</h1>'),
        ("/tasks", "<h1>Tasks</h1>"),
        (f"/tasks/{site.done.id}", "<h1>Task</h1>"),
        ("/sessions", "<h1>Sessions</h1>"),
        (f"/sessions/{site.done.session_id}", "<h2>Trajectory</h2>"),
        ("/files", "<h1>Files</h1>"),
    ]:
        r = client.get(path)
        assert r.status_code == 200, (path, r.text)
        assert heading in r.text
        assert "default-src 'self'" in r.headers["content-security-policy"]


def test_a_task_page_escapes_the_prompt_and_streams_from_its_id(site: Site) -> None:
    r = site.client("member-A").get(f"/tasks/{site.done.id}")
    assert "write the &lt;b&gt;secret&lt;/b&gt; of A" in r.text
    assert "<b>secret</b>" not in r.text
    assert f'data-task="{site.done.id}"' in r.text and 'data-workspace="wa"' in r.text


def test_the_session_page_shows_the_trajectory_with_diff_and_output(site: Site) -> None:
    r = site.client("member-A").get(f"/sessions/{site.done.session_id}")
    assert '<span class="add">+A</span>' in r.text  # write_file's diff
    assert "$ cat a.txt" in r.text and "bash ok · allow · exit 0" in r.text
    assert "secret A summary" in r.text
    assert [f"Step {n}" in r.text for n in (1, 2, 3, 4)] == [True, True, True, False]


def test_sessions_search_finds_by_task_and_summary(site: Site) -> None:
    client = site.client("member-A")
    assert site.done.session_id in client.get("/sessions", params={"q": "secret A"}).text
    none = client.get("/sessions", params={"q": "no such words"})
    assert site.done.session_id not in none.text and "No sessions match" in none.text
    chats = client.get("/sessions", params={"kind": "chat"})
    assert site.done.session_id not in chats.text


def test_starting_a_task_from_the_form_redirects_to_its_page(site: Site) -> None:
    client = site.client("member-A")
    r = client.post(
        "/tasks", data={"prompt": "from the form", "workspace": "wf", "approvals": "auto"}
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/tasks/")
    task_id = r.headers["location"].rsplit("/", 1)[1]
    member = site.users["member-A"]
    wait(lambda: site.svc.tasks.get(member, task_id).status == "finished")
    assert site.svc.tasks.get(member, task_id).workspace == "wf"
    assert "from the form" in client.get("/tasks").text


def test_the_ask_choice_asks_before_a_shell_command(site: Site) -> None:
    client = site.client("member-A")
    r = client.post("/tasks", data={"prompt": "ask me", "approvals": "commands"})
    task_id = r.headers["location"].rsplit("/", 1)[1]
    member = site.users["member-A"]
    wait(lambda: bool(site.svc.tasks.approvals(member, task_id)))
    assert [a.tool for a in site.svc.tasks.approvals(member, task_id)] == ["bash"]
    site.svc.tasks.cancel(member, task_id)


def test_bad_task_input_keeps_the_prompt_and_says_why(site: Site) -> None:
    client = site.client("member-A")
    r = client.post("/tasks", data={"prompt": "keep this text", "workspace": "../escape"})
    assert r.status_code == 400
    assert 'role="alert"' in r.text and "without &#39;..&#39;" in r.text
    assert ">keep this text</textarea>" in r.text
    empty = client.post("/tasks", data={"prompt": "   "})
    assert empty.status_code == 400 and "prompt is empty" in empty.text


def test_a_form_post_from_another_site_is_refused(site: Site) -> None:
    client = site.client("member-A")
    before = len(site.svc.tasks.list(site.users["member-A"], 500))
    r = client.post("/tasks", data={"prompt": "forged"}, headers={"origin": "https://evil.example"})
    assert r.status_code == 403
    assert len(site.svc.tasks.list(site.users["member-A"], 500)) == before


def test_a_viewer_cannot_approve_start_or_chat(site: Site) -> None:
    viewer = site.client("viewer-A")
    page = viewer.get(f"/tasks/{site.waiting.id}")
    assert page.status_code == 200 and 'data-can-write="false"' in page.text
    assert "Cancel task" not in page.text
    decided = viewer.post(f"/api/approvals/{site.approval}", json={"decision": "allow"})
    assert decided.status_code == 403
    member = site.users["member-A"]
    assert [a.status for a in site.svc.tasks.approvals(member, site.waiting.id)] == ["pending"]
    assert 'id="prompt"' not in viewer.get("/tasks").text
    started = viewer.post("/tasks", data={"prompt": "viewer task"})
    assert started.status_code == 403 and "viewer" in started.text
    assert 'id="chat-form"' not in viewer.get("/chat").text
    assert viewer.get("/admin").status_code == 403
    members = site.client("member-A").get(f"/tasks/{site.waiting.id}")
    assert 'data-can-write="true"' in members.text and "Cancel task" in members.text


def test_another_organisation_sees_nothing_of_A(site: Site) -> None:
    other = site.client("member-B")
    assert other.get(f"/tasks/{site.done.id}").status_code == 404
    assert other.get(f"/sessions/{site.done.session_id}").status_code == 404
    assert other.get(f"/chat?session={site.done.session_id}").status_code == 404
    for path in ("/tasks", "/sessions", "/sessions?q=secret", "/chat", "/files"):
        text = other.get(path).text
        assert site.done.id not in text and str(site.done.session_id) not in text, path
        assert "secret A summary" not in text and "of A" not in text, path
    assert other.get("/files", params={"path": "wa"}).status_code == 404
    download = other.get("/api/files/download", params={"path": "wa/a.txt"})
    assert download.status_code == 404
    decided = other.post(f"/api/approvals/{site.approval}", json={"decision": "allow"})
    assert decided.status_code == 404
    own = site.client("member-A").get("/api/files/download", params={"path": "wa/a.txt"})
    assert own.status_code == 200 and own.text == "A\n"


def test_the_file_browser_lists_folders_and_links_downloads(site: Site) -> None:
    client = site.client("member-A")
    top = client.get("/files")
    assert '<a href="/files?path=wa">wa/</a>' in top.text
    folder = client.get("/files", params={"path": "wa"})
    assert "a.txt" in folder.text and "2 bytes" in folder.text
    assert 'href="/api/files/download?path=wa/a.txt"' in folder.text
    assert 'aria-label="Download a.txt"' in folder.text


@pytest.mark.parametrize(
    "path", ["..", "../orgB", "wa/../../x", "/etc", "/etc/passwd", "wa/\x00", "link"]
)
def test_path_traversal_in_the_file_browser_is_refused(site: Site, path: str) -> None:
    root = site.svc.workspaces.root(site.users["member-A"].org_id)
    link = root / "link"
    if not link.is_symlink():
        link.symlink_to(site.svc.workspaces.root(site.users["member-B"].org_id))
    client = site.client("member-A")
    page = client.get("/files", params={"path": path})
    assert page.status_code == 400 and 'role="alert"' in page.text
    assert "workspace" in page.text
    download = client.get("/api/files/download", params={"path": f"{path}/secret.txt"})
    assert download.status_code == 400


def test_the_admin_page_shows_the_audit_log_to_admins_only(site: Site) -> None:
    site.client("member-A").post("/tasks", data={"prompt": "audited", "approvals": "auto"})
    admin = site.client("admin-A")
    page = admin.get("/admin")
    assert page.status_code == 200 and '<h2 id="audit-heading">Audit log</h2>' in page.text
    assert "<td>member-A</td><td>POST /tasks</td>" in page.text
    assert "viewer-A" in page.text  # the users table
    assert 'href="/admin"' in page.text  # in the navigation for admins
    member = site.client("member-A")
    refused = member.get("/admin")
    assert refused.status_code == 403 and "for admins" in refused.text
    assert 'href="/admin"' not in member.get("/tasks").text
    assert "member-B" not in page.text  # another organisation's actions


def test_a_chat_turn_appears_in_the_history_with_its_answer(site: Site) -> None:
    client = site.client("member-A")
    r = client.post(
        "/v1/chat/completions",
        json={"model": "spud-agent", "messages": [{"role": "user", "content": "hello chat"}]},
    )
    assert r.status_code == 200, r.text
    session = r.json()["spud_session_id"]
    page = client.get("/chat")
    assert f'href="/chat?session={session}"' in page.text and "hello chat" in page.text
    chat = client.get("/chat", params={"session": session})
    assert f'data-session="{session}"' in chat.text
    assert '<div class="text">hello chat</div>' in chat.text
    assert '<div class="text">secret A summary</div>' in chat.text
    assert "used write_file, bash" in chat.text


def test_a_chat_that_stopped_says_why_in_its_history(site: Site) -> None:
    member = site.users["member-A"]
    store = site.svc.sessions.store
    sid = store.create_session("loop forever", "default", "replay")
    store.append(sid, Message(role="user", content="loop forever"))
    store.append(sid, Message(role="assistant", tool_calls=[ToolCall(name="search")]))
    store.update_session(sid, status="repetition", summary="search repeated 3 times")
    site.svc.owned.own(sid, member.org_id, member.user_id, "chat")
    page = site.client("member-A").get("/chat", params={"session": sid})
    assert '<div class="text">[repetition] search repeated 3 times</div>' in page.text
    assert "used search" in page.text
