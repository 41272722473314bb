"""The web chat's controls through FastAPI's TestClient: files dropped in (to the workspace or
learned), the model picker, stop (the partial answer kept) and regenerate (the answer replaced)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_fixtures import csrf_token, replay_file

from spud.config import Settings
from spud.server.app import create_app
from spud.service.hub import Services
from spud.service.users import Principal

PASSWORD = "password-123"
FIRST = "One two three four five six."
OTHER = "The other model answers this."
KIWI = b"# Project Kiwi\n\nThe Kiwi release ships on the third Friday of March.\n"


class Site:
    """Organisation A (admin, member, viewer) and B (member); spud-agent's default model and
    another one the picker offers, both replay models that answer in plain text."""

    def __init__(self, tmp: Path, delay_s: float = 0.0) -> None:
        self.default = replay_file(tmp / "default.json", [{"answer": FIRST}] * 3)
        self.other = replay_file(tmp / "other.json", [{"answer": OTHER}] * 3)
        settings = Settings(home=tmp / "home", model=self.default)
        self.svc = Services(settings, extra_models=[self.other], model_delay_s=delay_s)
        self.app = create_app(self.svc)
        self.users: dict[str, Principal] = {}
        for org, role in (("A", "admin"), ("A", "member"), ("A", "viewer"), ("B", "member")):
            name = f"{role}-{org}"
            self.users[name] = self.svc.users.add_user(name, PASSWORD, f"org{org}", role)

    def client(self, username: str) -> TestClient:
        """A browser-like client signed in through the form, with the pages' CSRF token."""
        client = TestClient(self.app, follow_redirects=False)
        client.headers["x-csrf-token"] = csrf_token(client)
        r = client.post("/auth/login", data={"username": username, "password": PASSWORD})
        assert r.status_code == 303
        return client

    def workspace(self, who: str) -> Path:
        return self.svc.workspaces.root(self.users[who].org_id) / "default"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    s = Site(tmp_path_factory.mktemp("webchat"))
    with TestClient(s.app):  # the app's lifespan (and the services closed after)
        yield s


def ask(client: TestClient, text: str, **extra: Any) -> dict[str, Any]:
    body = {"model": "spud-agent", "messages": [{"role": "user", "content": text}], **extra}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def drop(client: TestClient, name: str, data: bytes, action: str = "workspace") -> Any:
    return client.post(
        "/api/chat/files", data={"action": action}, files={"file": (name, data, "text/plain")}
    )


# -- files dropped into the chat ----------------------------------------------------------


def test_a_dropped_file_lands_in_the_chat_workspace_and_replaces_nothing(site: Site) -> None:
    client = site.client("member-A")
    first = drop(client, "notes.txt", b"first notes\n")
    assert first.status_code == 200, first.text
    assert first.json() == {
        "name": "notes.txt",
        "action": "workspace",
        "path": "default/notes.txt",
        "bytes": 12,
    }
    second = drop(client, "notes.txt", b"second notes\n")
    assert second.json()["path"] == "default/notes (2).txt"  # a new name: nothing is lost
    assert (site.workspace("member-A") / "notes.txt").read_bytes() == b"first notes\n"
    download = client.get("/api/files/download", params={"path": "default/notes (2).txt"})
    assert download.status_code == 200 and download.text == "second notes\n"
    sneaky = drop(client, "../../escape.txt", b"x\n")  # only the name counts, never a path
    assert sneaky.json()["path"] == "default/escape.txt"
    assert not (site.workspace("member-A").parent.parent / "escape.txt").exists()


def test_a_dropped_file_is_learned_as_spud_learn_reads_it(site: Site) -> None:
    client = site.client("member-A")
    r = drop(client, "kiwi.md", KIWI, "learn")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "name": "kiwi.md",
        "action": "learn",
        "source": "upload:kiwi.md",
        "chunks": 1,
        "new": True,
    }
    assert drop(client, "kiwi.md", KIWI, "learn").json()["new"] is False  # known already
    member = site.users["member-A"]
    chunks = site.svc.sessions.memory.list(member.user_id, member.org_id, "chunk")
    assert [c.source for c in chunks] == ["upload:kiwi.md#1"]
    assert "third Friday of March" in chunks[0].text
    assert not (site.workspace("member-A") / "kiwi.md").exists()  # learned, not saved


@pytest.mark.parametrize(
    ("name", "data", "action", "words"),
    [
        ("big.txt", b"x" * 3_000_001, "workspace", "big.txt is over 3 MB: nothing of it was kept"),
        ("big.md", b"x" * 3_000_001, "learn", "big.md is over 3 MB"),
        ("photo.bin", bytes(range(256)) * 4, "learn", "cannot learn photo.bin: it is neither"),
        ("broken.pdf", b"%PDF-1.7 not really a pdf", "learn", "cannot read broken.pdf"),
        ("empty.txt", b"", "workspace", "empty.txt is empty"),
    ],
)
def test_a_bad_file_gets_a_clear_error_and_changes_nothing(
    site: Site, name: str, data: bytes, action: str, words: str
) -> None:
    client = site.client("admin-A")
    admin = site.users["admin-A"]
    documents = len(site.svc.sessions.memory.documents(admin.user_id, admin.org_id))
    r = drop(client, name, data, action)
    assert r.status_code in (400, 413), r.text
    assert words in r.json()["error"]["message"]
    assert not (site.workspace("admin-A") / name).exists()
    assert len(site.svc.sessions.memory.documents(admin.user_id, admin.org_id)) == documents


# -- the model picker ---------------------------------------------------------------------


def test_the_picker_lists_the_offered_models_and_its_choice_answers(site: Site) -> None:
    client = site.client("member-A")
    page = client.get("/chat").text
    assert '<label for="chat-model">Model</label>' in page
    assert f'<option value="{site.default}" selected>{site.default} (default)</option>' in page
    assert f'<option value="{site.other}">{site.other}</option>' in page
    assert ask(client, "Who answers?")["choices"][0]["message"]["content"] == FIRST
    chosen = ask(client, "Who answers now?", spud_model=site.other)
    assert chosen["choices"][0]["message"]["content"] == OTHER
    body = {"model": "spud-agent", "messages": [{"role": "user", "content": "hi"}]}
    unknown = client.post("/v1/chat/completions", json={**body, "spud_model": "no-such-model"})
    assert unknown.status_code == 404 and "no-such-model" in unknown.json()["error"]["message"]


# -- stop and regenerate ------------------------------------------------------------------


def test_stop_keeps_the_answer_so_far_marked_stopped(site: Site) -> None:
    member = site.users["member-A"]
    chat = site.svc.chat
    seen: dict[str, Any] = {"pieces": []}

    def on_event(event: dict[str, Any]) -> None:  # on the turn's worker thread
        if "session" in event:
            seen["session"] = event["session"]
        if "text" in event:
            seen["pieces"].append(event["text"])
            if len(seen["pieces"]) == 3:
                chat.stop(member, seen["session"])  # the next piece is not generated

    turn = chat.turn(member, "Count for me", on_event=on_event).result(timeout=60)
    assert turn.status == "stopped" and turn.answer == "One two three"
    assert seen["pieces"] == ["One", " two", " three"]
    last = site.svc.sessions.messages(turn.session_id)[-1]
    assert (last.role, last.content, last.kind) == ("assistant", "One two three", "stopped")
    assert site.svc.sessions.session(turn.session_id).status == "stopped"
    page = site.client("member-A").get("/chat", params={"session": turn.session_id}).text
    assert '<li class="turn assistant stopped">' in page
    assert '<div class="text">One two three</div>' in page
    assert '<p class="badge stopped">Stopped</p>' in page
    again = ask(site.client("member-A"), "Go on", session_id=turn.session_id)  # it continues
    assert again["spud_status"] == "finished"


def test_stop_is_for_a_running_turn_of_ones_own_chat(site: Site) -> None:
    member = site.client("member-A")
    done = ask(member, "Hello")
    sid = done["spud_session_id"]
    idle = member.post(f"/api/chat/{sid}/stop", json={})
    assert idle.status_code == 409 and "no turn is running" in idle.json()["error"]["message"]
    assert site.client("member-B").post(f"/api/chat/{sid}/stop", json={}).status_code == 404
    assert site.client("admin-A").post(f"/api/chat/{sid}/stop", json={}).status_code == 404


def test_regenerate_replaces_the_last_answer(site: Site) -> None:
    client = site.client("member-A")
    first = ask(client, "Say something")
    sid = first["spud_session_id"]
    assert first["choices"][0]["message"]["content"] == FIRST
    again = ask(client, "ignored", session_id=sid, regenerate=True, spud_model=site.other)
    assert again["choices"][0]["message"]["content"] == OTHER and again["spud_session_id"] == sid
    messages = site.svc.sessions.messages(sid)
    users = [m.content for m in messages if m.role == "user"]
    answers = [m.content for m in messages if m.role == "assistant"]
    assert users == ["Say something"] and answers == [OTHER]  # the first answer is gone
    page = client.get("/chat", params={"session": sid}).text
    assert OTHER in page and FIRST not in page


def test_regenerate_streams_the_new_answer_in_the_same_chat(site: Site) -> None:
    client = site.client("member-A")
    sid = ask(client, "First question")["spud_session_id"]
    ask(client, "Second question", session_id=sid)
    body = {
        "model": "spud-agent",
        "stream": True,
        "messages": [{"role": "user", "content": "Second question"}],
        "session_id": sid,
        "regenerate": True,
    }
    r = client.post("/v1/chat/completions", json=body)
    chunks = [json.loads(line[5:]) for line in r.text.splitlines() if line[5:].startswith(" {")]
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert "".join(p for p in pieces if p) == FIRST and len([p for p in pieces if p]) > 1
    assert chunks[1]["spud_session_id"] == sid  # the session comes first, before any piece
    assert chunks[-1]["spud_status"] == "finished"
    users = [m.content for m in site.svc.sessions.messages(sid) if m.role == "user"]
    assert users == ["First question", "Second question"]


def test_regenerate_needs_a_chat_of_ones_own(site: Site) -> None:
    sid = ask(site.client("member-A"), "Mine")["spud_session_id"]
    body = {"model": "spud-agent", "messages": [{"role": "user", "content": "x"}]}
    other = site.client("member-B").post(
        "/v1/chat/completions", json={**body, "session_id": sid, "regenerate": True}
    )
    assert other.status_code == 404
    none = site.client("member-A").post("/v1/chat/completions", json={**body, "regenerate": True})
    assert none.status_code == 400 and "session_id" in none.json()["error"]["message"]


# -- roles ---------------------------------------------------------------------------------


def test_a_viewer_can_read_chats_but_not_drop_files_stop_or_regenerate(site: Site) -> None:
    sid = ask(site.client("member-A"), "For the viewer to read")["spud_session_id"]
    viewer = site.client("viewer-A")
    page = viewer.get("/chat").text
    for control in ('id="chat-form"', 'id="chat-files"', 'id="chat-model"', 'id="stop-turn"'):
        assert control not in page
    assert drop(viewer, "v.txt", b"v\n").status_code == 403
    assert drop(viewer, "v.md", KIWI, "learn").status_code == 403
    assert not (site.workspace("viewer-A") / "v.txt").exists()
    assert viewer.post(f"/api/chat/{sid}/stop", json={}).status_code == 403
    body = {"model": "spud-agent", "messages": [{"role": "user", "content": "x"}]}
    regen = viewer.post(
        "/v1/chat/completions", json={**body, "session_id": sid, "regenerate": True}
    )
    assert regen.status_code == 403


def test_the_member_chat_page_has_every_control_labelled(site: Site) -> None:
    page = site.client("member-A").get("/chat").text
    assert '<label for="chat-files">Files (or drop them on the chat)</label>' in page
    assert '<input id="chat-files" name="files" type="file" multiple>' in page
    assert '<button type="button" id="add-to-workspace">Add to workspace</button>' in page
    assert '<button type="button" id="learn-files" class="secondary">Learn</button>' in page
    assert '<button type="button" id="stop-turn" class="secondary" disabled>Stop</button>' in page
    assert 'data-max-file-bytes="3000000"' in page


# -- stop through the API, on a slow model ----------------------------------------------------


def test_stop_through_the_api_ends_the_running_turn(tmp_path: Path) -> None:
    slow = Site(tmp_path, delay_s=5)  # each model call waits first: time to press stop
    with TestClient(slow.app):
        member = slow.users["member-A"]
        client = slow.client("member-A")
        sent: dict[str, Any] = {}
        body = {
            "model": "spud-agent",
            "stream": True,
            "messages": [{"role": "user", "content": "Slowly"}],
        }
        worker = threading.Thread(
            target=lambda: sent.update(r=client.post("/v1/chat/completions", json=body))
        )
        worker.start()
        deadline = time.monotonic() + 120
        while not (chats := slow.svc.owned.of_user(member.user_id, member.org_id)):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        stopped = slow.client("member-A").post(f"/api/chat/{chats[0]}/stop", json={})
        assert stopped.status_code == 200 and stopped.json()["stopping"] is True
        worker.join(timeout=300)
        lines = sent["r"].text.splitlines()
        chunks = [json.loads(line[5:]) for line in lines if line[5:].startswith(" {")]
        said = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert chunks[-1]["spud_status"] == "stopped", chunks[-1]
        assert said == "[stopped] stopped before an answer"
        assert slow.svc.sessions.session(chats[0]).status == "stopped"
