"""The server's nightly sleep reads each user's own sessions into that user's memory only."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_memory_sleep import Scripted, call

from spud.config import Settings
from spud.models.replay import ReplayModel
from spud.service.hub import Services


@pytest.mark.databases
def test_nightly_sleep_keeps_each_users_memories_their_own(
    tmp_path: Path, db_url: str, monkeypatch
) -> None:
    services = Services(Settings(home=tmp_path / "home", db_url=db_url))
    alice = services.users.add_user("alice", "alice-password-1", "acme", "member")
    bob = services.users.add_user("bob", "bob-password-12", "globex", "member")
    ws = tmp_path / "ws"
    ws.mkdir()
    replies = [
        call("write_file", path="notes.md", content="# Falcon\n"),
        call("finish", summary="notes.md written"),
    ]
    svc = services.sessions
    agent = svc.agent(ReplayModel(replies), ws, user_id=alice.user_id, org_id=alice.org_id)
    sid = svc.start(agent, "Write notes.md for Falcon", ws, False, alice.user_id, alice.org_id)
    svc.run(agent, sid)
    services.owned.own(sid, alice.org_id, alice.user_id, "task")
    model = Scripted("project name: The project is called Falcon.")
    monkeypatch.setattr(services.pool, "get", lambda name: model)

    services.sleep_night()

    facts = [m.text for m in svc.memory.list(alice.user_id, alice.org_id, kind="fact")]
    assert facts == ["The project is called Falcon."]
    assert len(svc.memory.list(alice.user_id, alice.org_id, kind="skill")) == 1
    assert svc.memory.list(bob.user_id, bob.org_id) == []
    assert svc.memory.list(alice.user_id, bob.org_id) == []
    # `spud sleep` for the local user (no session ids) leaves the server users' sessions alone.
    assert svc.memory.sleep("local", "local", model).sessions == 0
    assert svc.memory.list("local", "local") == []
    kept = {m.id for m in svc.memory.list(alice.user_id, alice.org_id, history=True)}
    services.sleep_night()  # a second night with nothing new adds nothing
    assert {m.id for m in svc.memory.list(alice.user_id, alice.org_id, history=True)} == kept
    services.close()
