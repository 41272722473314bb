"""The server's fast paths keep their promises: a revoked key is refused at once despite the
key cache, and the request trail queued for batched writes reaches the log on its own within
moments, and all of it by shutdown."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_fixtures import replay_file
from sqlalchemy import create_engine, text

from spud.config import Settings
from spud.server.app import create_app
from spud.server.settings import ServerSettings
from spud.service.hub import Services

pytestmark = pytest.mark.databases  # on SQLite and on PostgreSQL (tests/conftest.py)


def _services(tmp_path: Path, db_url: str) -> Services:
    model = replay_file(tmp_path / "fake.json", [{"answer": "hello"}])
    return Services(Settings(home=tmp_path / "home", model=model, db_url=db_url))


def _ask(client: TestClient, key: str) -> int:
    body = {
        "model": client.app.state.spud.settings.model,
        "messages": [{"role": "user", "content": "hi"}],
    }
    return client.post(
        "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    ).status_code


def test_a_revoked_key_is_refused_at_once_despite_the_cache(tmp_path: Path, db_url: str) -> None:
    svc = _services(tmp_path, db_url)
    who = svc.users.add_user("member", "password-123", "org", "member")
    info, key = svc.users.create_key(who.user_id)
    _, other = svc.users.create_key(who.user_id)
    with TestClient(create_app(svc, ServerSettings(nightly_sleep=False))) as client:
        assert _ask(client, key) == 200
        assert svc.users.cached_key(key) == who  # the next request skips the database
        assert _ask(client, other) == 200
        revoked = client.delete(
            f"/api/keys/{info.id}", headers={"Authorization": f"Bearer {other}"}
        )
        assert revoked.status_code == 200, revoked.text
        assert _ask(client, key) == 401
        assert _ask(client, other) == 200  # the user's other key still works


def test_the_request_trail_is_all_in_the_log_after_shutdown(tmp_path: Path, db_url: str) -> None:
    svc = _services(tmp_path, db_url)
    who = svc.users.add_user("member", "password-123", "org", "member")
    _, key = svc.users.create_key(who.user_id)
    with TestClient(create_app(svc, ServerSettings(nightly_sleep=False))) as client:
        for _ in range(40):
            assert _ask(client, key) == 200
        assert _ask(client, "spud_not-a-key") == 401
    # the app shut down (services closed): a fresh reader of the same database sees every entry
    reader = Services(Settings(home=tmp_path / "home", model=svc.settings.model, db_url=db_url))
    try:
        actions = [(e.actor, e.action, e.outcome) for e in reader.audit.entries(limit=100)]
    finally:
        reader.close()
    assert actions.count(("member", "POST /v1/chat/completions", "200")) == 40
    assert ("anonymous", "POST /v1/chat/completions", "401") in actions


def test_a_queued_trail_entry_is_committed_soon_without_a_reader_or_shutdown(
    tmp_path: Path, db_url: str
) -> None:
    svc = _services(tmp_path, db_url)
    other = create_engine(db_url)  # another connection, as after a kill -9
    try:
        svc.audit.record("member", "POST /v1/chat/completions", outcome="200", soon=True)
        deadline = time.monotonic() + 30  # GATHER_S plus a commit; generous for a busy machine
        seen = 0
        while not seen and time.monotonic() < deadline:
            with other.connect() as db:
                query = text("SELECT count(*) FROM audit_log WHERE actor = 'member'")
                seen = db.execute(query).scalar_one()
            time.sleep(0.05)
        assert seen == 1
    finally:
        other.dispose()
        svc.close()
