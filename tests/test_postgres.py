"""PostgreSQL as the team store: every migration branch, concurrent writers, claims, search."""

from __future__ import annotations

import random
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pg_server import PostgresServer
from server_fixtures import replay_file
from sqlalchemy import func, inspect, select, text

from spud.config import Settings
from spud.core.messages import Message
from spud.memory import retrieve
from spud.memory.embed import Embedder
from spud.memory.store import MemoryStore, NewMemory
from spud.service.claims import ACTIVE, TaskClaims, gone, worker_id
from spud.service.hub import Services
from spud.service.tables import OrgRow, TaskRow, UserRow
from spud.store.models import Base, SessionRow
from spud.store.sql import SqlStore, alembic_config


def _heads(url: str) -> list[str]:
    return sorted(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def _versions(store: SqlStore) -> list[str]:
    with store.engine.connect() as conn:
        return sorted(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _modelled(obj: object, name: str | None, type_: str, *_: object) -> bool:
    """Leave out the full-text column and index (not models) and tables of modules not imported."""
    if name is not None and "_fts" in name:
        return False
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table is None or table in Base.metadata.tables


def test_every_branch_migrates_an_empty_postgresql_database(postgres: PostgresServer) -> None:
    import spud.eval.records  # noqa: F401  (each branch's tables join Base.metadata)
    import spud.mcp.config  # noqa: F401
    import spud.memory.tables  # noqa: F401
    import spud.service.tables  # noqa: F401

    url = postgres.create_database()  # empty, not the migrated template
    with SqlStore(url) as store:
        assert _versions(store) == _heads(url)
        columns = {c["name"] for c in inspect(store.engine).get_columns("memories")}
        assert "text_fts" in columns
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": _modelled})
            assert compare_metadata(context, Base.metadata) == []
    with SqlStore(url) as store:  # opening again changes nothing
        assert _versions(store) == _heads(url)


def test_a_plain_postgresql_url_uses_psycopg(postgres: PostgresServer) -> None:
    url = postgres.create_database(postgres.template).replace("postgresql+psycopg", "postgresql")
    with SqlStore(url) as store:
        assert store.engine.dialect.driver == "psycopg"
        sid = store.create_session("t", "/w", "m")
        assert store.get_session(sid).task == "t"


def test_stores_opening_a_fresh_database_at_once_migrate_it_once(
    postgres: PostgresServer,
) -> None:
    url = postgres.create_database()
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_store() -> None:
        start.wait()
        try:
            SqlStore(url).close()
        except BaseException as e:  # reported below with the others
            errors.append(e)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with SqlStore(url) as store:
        assert _versions(store) == _heads(url)


def test_concurrent_appends_keep_each_writers_order_and_never_share_an_index(
    postgres: PostgresServer,
) -> None:
    """On SQLite, tests/test_store.py has two writer processes append at once."""
    db_url = postgres.create_database(postgres.template)
    with SqlStore(db_url) as store:
        sid = store.create_session("shared", "/w", "m")
    writers, each = "abcd", 25
    start = threading.Barrier(len(writers))
    indexes: dict[str, list[int]] = {}

    def write(name: str) -> None:
        with SqlStore(db_url) as mine:
            start.wait()
            indexes[name] = [
                mine.append(sid, Message(role="user", content=f"{name}{i}")) for i in range(each)
            ]

    threads = [threading.Thread(target=write, args=(name,)) for name in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with SqlStore(db_url) as store:
        contents = [m.content for m in store.messages(sid)]
    assert len(contents) == len(writers) * each
    assert sorted(i for got in indexes.values() for i in got) == list(range(len(contents)))
    for name in writers:
        assert [c for c in contents if c[0] == name] == [f"{name}{i}" for i in range(each)]
        assert [contents[i] for i in indexes[name]] == [f"{name}{i}" for i in range(each)]


def _tasks(store: SqlStore, n: int) -> list[str]:
    with store._session.begin() as db:
        org = OrgRow(name="acme")
        db.add(org)
        db.flush()
        user = UserRow(org_id=org.id, username="ann", password_hash="-", role="member")
        db.add(user)
        db.flush()
        rows = [
            TaskRow(
                org_id=org.id,
                user_id=user.id,
                prompt=f"task {i}",
                workspace="/w",
                model="m",
                policy="{}",
            )
            for i in range(n)
        ]
        db.add_all(rows)
    return [row.id for row in rows]


@pytest.mark.databases
def test_workers_claiming_at_once_never_claim_the_same_task(store: SqlStore) -> None:
    ids = _tasks(store, 30)
    workers = [TaskClaims(store.engine) for _ in range(4)]
    won: dict[str, list[str]] = {w.worker: [] for w in workers}
    start = threading.Barrier(len(workers))

    def claim_all(claims: TaskClaims) -> None:
        order = random.Random(claims.worker).sample(ids, len(ids))
        start.wait()
        for task_id in order:
            if claims.claim(task_id):
                won[claims.worker].append(task_id)

    threads = [threading.Thread(target=claim_all, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = Counter(task_id for got in won.values() for task_id in got)
    assert set(claimed) <= set(ids) and max(claimed.values()) == 1
    with store._session() as db:
        holders = {row.id: row.worker for row in db.execute(text("SELECT id, worker FROM tasks"))}
    for worker, got in won.items():
        assert all(holders[task_id] == worker for task_id in got)
    unclaimed = set(ids) - set(claimed)  # skipped while another was claiming it: still free
    assert all(holders[task_id] is None for task_id in unclaimed)


@pytest.mark.databases
def test_a_claim_is_freed_by_its_worker_or_when_its_process_died(store: SqlStore) -> None:
    first, second, third = _tasks(store, 3)
    mine, other = TaskClaims(store.engine), TaskClaims(store.engine)
    assert mine.claim(first) and mine.claim(first)  # claiming again is harmless
    assert not other.claim(first)
    mine.release(first)
    assert other.claim(first)

    ended = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    dead = TaskClaims(store.engine, f"{socket.gethostname()}:{ended.stdout.strip()}:1:x")
    remote = TaskClaims(store.engine, "another-host:1:1:x")
    assert gone(dead.worker) and not gone(remote.worker) and not gone(worker_id())
    assert dead.claim(second) and remote.claim(third)
    assert mine.release_dead() == [dead.worker]  # a worker elsewhere is never presumed dead
    assert mine.claim(second) and not mine.claim(third)


def test_memory_recall_uses_postgresql_full_text_search(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    with SqlStore(postgres.create_database(postgres.template)) as sql:
        memories = MemoryStore(sql, Embedder())
        kept = memories.add("u", "o", NewMemory("fact", "The invoices are approved by Zoltan"))
        memories.add("u", "o", NewMemory("fact", "Lunch is served at noon"))
        memories.add("other", "o", NewMemory("fact", "Zoltan approves nothing for this user"))
        old = memories.add("u", "o", NewMemory("preference", "Reports by Zoltan", key="reports"))
        memories.add("u", "o", NewMemory("preference", "Reports in PDF", key="reports"))
        with caplog.at_level("WARNING", logger="spud.memory.pg_search"):
            found = retrieve.lexical(memories, "u", "o", "who approved the invoices?", 10)
        assert found == [kept.id]  # stemmed (approved/approves), one owner, current only
        assert retrieve.lexical(memories, "u", "o", "zoltan", 10) == [kept.id]
        assert old.id not in retrieve.lexical(memories, "u", "o", "reports zoltan", 10)
        assert "pgvector" in caplog.text
        hits = retrieve.recall(memories, "u", "o", "Who approves invoices?", k=1)
        assert [h.memory.id for h in hits] == [kept.id] and hits[0].lexical_rank == 0


def test_two_servers_resuming_the_same_tasks_run_each_once(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    db_url = postgres.create_database(postgres.template)
    model = replay_file(
        tmp_path / "model.json",
        [
            {"calls": [{"name": "bash", "arguments": {"command": "echo ran >> log.txt"}}]},
            {"calls": [{"name": "finish", "arguments": {"summary": "done"}}]},
        ],
    )
    settings = Settings(home=tmp_path / "home", model=model, db_url=db_url)
    servers = [Services(settings, workers=3) for _ in range(2)]
    try:
        who = servers[0].users.add_user("ann", "password-123", "acme", "member")
        folders, rows = [], []
        for i in range(6):  # stored but not started, as after a restart
            folder, pin = servers[0].workspaces.pin(who.org_id, f"w{i}")
            folders.append(folder)
            rows.append(
                TaskRow(
                    org_id=who.org_id,
                    user_id=who.user_id,
                    prompt="log that you ran",
                    workspace=str(folder),
                    workspace_pin=pin,
                    model=model,
                    policy=servers[0].sessions.default_policy().model_dump_json(),
                    tools='{"sets": [], "auto_approve": true, "max_steps": null}',
                )
            )
        with servers[0].tasks._db.begin() as db:
            db.add_all(rows)
        start = threading.Barrier(2)

        def resume(services: Services) -> None:
            start.wait()
            services.tasks.resume_unfinished()

        threads = [threading.Thread(target=resume, args=(s,)) for s in servers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        busy = TaskRow.status.in_(ACTIVE) | TaskRow.worker.is_not(None)  # running or claimed
        deadline = time.monotonic() + 300
        while True:
            with servers[0].tasks._db() as db:
                if db.scalar(select(func.count()).where(busy)) == 0:
                    break
            assert time.monotonic() < deadline, "the tasks did not finish"
            time.sleep(0.05)
        ended = Counter(e.target for e in servers[0].audit.entries(who.org_id))
        assert [ended[r.id] for r in rows] == [1] * 6  # each recorded its end once
        assert all(
            not (f / "log.txt").exists() or (f / "log.txt").read_text() == "ran\n" for f in folders
        )
        with servers[0].tasks._db() as db:
            assert db.scalar(select(func.count()).select_from(SessionRow)) == 6
    finally:
        for services in servers:
            services.close()
