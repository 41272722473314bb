"""Tests for SqlStore on real SQLite files: round trips, durability, migrations, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from spud.core.errors import SpudError
from spud.core.messages import Message, ToolCall
from spud.core.protocols import Store
from spud.store.models import Base
from spud.store.sql import SqlStore, alembic_config

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "spud.db"


@pytest.fixture
def store(db_url: str, db_path: Path):
    """A store in db_path, or in a fresh PostgreSQL database for tests marked `databases`."""
    with SqlStore(db_url if db_url.startswith("postgresql") else f"sqlite:///{db_path}") as store:
        yield store


@pytest.mark.databases
def test_is_a_store(store: SqlStore) -> None:
    assert isinstance(store, Store)


def test_creates_parent_directory_and_session(store: SqlStore, db_path: Path) -> None:
    assert db_path.is_file()
    sid = store.create_session("fix the test", "/work/repo", "qwen")
    info = store.get_session(sid)
    assert (info.id, info.task, info.workspace, info.model) == (
        sid,
        "fix the test",
        "/work/repo",
        "qwen",
    )
    assert info.status == "running" and info.steps == 0 and info.summary == ""
    assert info.created_at.tzinfo is not None and info.created_at.utcoffset().total_seconds() == 0


@pytest.mark.databases
def test_text_with_a_nul_character_is_stored_not_refused(store: SqlStore) -> None:
    """PostgreSQL's text cannot hold NUL (SQLite's can): there it is stored as U+FFFD."""
    sid = store.create_session("read\x00me", "/w", "m")
    store.append(sid, Message(role="tool", tool_call_id="c", content="bin\x00ary"))
    store.update_session(sid, summary="done\x00")
    nul = "\x00" if store.is_sqlite else "\ufffd"
    info = store.get_session(sid)
    assert (info.task, info.summary) == (f"read{nul}me", f"done{nul}")
    assert store.messages(sid)[0].content == "bin\x00ary"  # inside the message's JSON: kept


@pytest.mark.databases
def test_messages_round_trip_in_order(store: SqlStore) -> None:
    sid = store.create_session("task", "/w", "m")
    call = ToolCall(name="write_file", arguments={"path": "a.txt", "lines": [1, 2], "x": None})
    sent = [
        Message(role="system", content="be brief"),
        Message(role="user", content="héllo ✓\nwith 'quotes'"),
        Message(role="assistant", tool_calls=[call], meta={"kind": "step", "usage": {"n": 3}}),
        Message(role="tool", content="ok", tool_call_id=call.id, name=call.name, untrusted=True),
    ]
    assert [store.append(sid, m) for m in sent] == [0, 1, 2, 3]
    got = store.messages(sid)
    assert got == sent
    assert got[2].tool_calls[0].arguments == call.arguments and got[2].kind == "step"


@pytest.mark.databases
def test_sessions_do_not_share_messages(store: SqlStore) -> None:
    a = store.create_session("a", "/w", "m")
    b = store.create_session("b", "/w", "m")
    for i in range(3):
        store.append(a, Message(role="user", content=f"a{i}"))
    assert store.append(b, Message(role="user", content="b0")) == 0
    assert [m.content for m in store.messages(a)] == ["a0", "a1", "a2"]
    assert [m.content for m in store.messages(b)] == ["b0"]
    assert store.messages(store.create_session("c", "/w", "m")) == []


@pytest.mark.databases
def test_list_sessions_newest_first(store: SqlStore) -> None:
    ids = [store.create_session(f"task {i}", "/w", "m") for i in range(4)]
    assert [s.id for s in store.list_sessions()] == ids[::-1]
    assert [s.id for s in store.list_sessions(limit=2)] == ids[:1:-1]


@pytest.mark.databases
def test_update_session(store: SqlStore) -> None:
    sid = store.create_session("task", "/w", "m")
    before = store.get_session(sid)
    store.update_session(sid, status="done", summary="fixed it", steps=4, prompt_tokens=900)
    after = store.get_session(sid)
    assert (after.status, after.summary, after.steps, after.prompt_tokens) == (
        "done",
        "fixed it",
        4,
        900,
    )
    assert after.updated_at > before.updated_at and after.created_at == before.created_at


@pytest.mark.databases
def test_update_session_rejects_unknown_fields(store: SqlStore) -> None:
    sid = store.create_session("task", "/w", "m")
    with pytest.raises(ValueError, match="task"):
        store.update_session(sid, task="something else")
    with pytest.raises(ValueError, match="colour"):
        store.update_session(sid, status="done", colour="red")
    assert store.get_session(sid).status == "running"


@pytest.mark.databases
def test_unknown_session_is_a_clear_error(store: SqlStore) -> None:
    with pytest.raises(SpudError, match="no session 'nope'"):
        store.get_session("nope")
    with pytest.raises(SpudError, match="no session 'nope'"):
        store.append("nope", Message(role="user"))
    with pytest.raises(SpudError, match="no session 'nope'"):
        store.messages("nope")
    with pytest.raises(SpudError, match="no session 'nope'"):
        store.update_session("nope", status="done")


@pytest.mark.databases
def test_short_id_prefix(store: SqlStore) -> None:
    ids = [store.create_session(f"t{i}", "/w", "m") for i in range(20)]
    sid = ids[0]
    prefix = next(sid[:n] for n in range(1, 33) if sum(i.startswith(sid[:n]) for i in ids) == 1)
    assert store.get_session(prefix).id == sid
    assert store.get_session(sid[:12]).id == sid
    shared = next(c for c in "0123456789abcdef" if sum(i.startswith(c) for i in ids) > 1)
    with pytest.raises(SpudError, match="ambiguous"):  # 20 ids share some first hex digit
        store.get_session(shared)
    with pytest.raises(SpudError, match="no session"):
        store.get_session("%")


def test_wal_mode_and_pragmas(store: SqlStore, db_path: Path) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    raw = create_engine(f"sqlite:///{db_path}")  # WAL is persistent in the file itself
    with raw.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    raw.dispose()


def _alembic_version(db_path: Path) -> list[str]:
    engine = create_engine(f"sqlite:///{db_path}")
    with engine.connect() as conn:
        versions = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    engine.dispose()
    return versions


def test_migrations_reach_head_and_are_idempotent(db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    heads = sorted(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    assert len(heads) >= 1
    SqlStore(url).close()
    assert sorted(_alembic_version(db_path)) == heads
    with SqlStore(url) as store:
        sid = store.create_session("kept", "/w", "m")
        store.append(sid, Message(role="user", content="still here"))
    with SqlStore(url) as store:
        assert sorted(_alembic_version(db_path)) == heads
        assert [m.content for m in store.messages(sid)] == ["still here"]


RAW_SQLITE_TABLES = {"memory_vector_log"}  # fed by triggers for the vector index (0010)


def _not_fts(obj: object, name: str | None, type_: str, *_: object) -> bool:
    """FTS5 virtual tables (and their shadow tables) and the trigger-fed vector log live
    outside the ORM metadata."""
    raw = name is not None and ("_fts" in name or name in RAW_SQLITE_TABLES)
    return not (type_ == "table" and raw)


def test_migrated_schema_matches_models(store: SqlStore) -> None:
    import spud.eval.records  # noqa: F401  (each branch's tables join Base.metadata)
    import spud.mcp.config  # noqa: F401
    import spud.memory.tables  # noqa: F401
    import spud.service.ledger  # noqa: F401
    import spud.service.tables  # noqa: F401

    options = {"include_object": _not_fts}
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts=options)
        assert compare_metadata(context, Base.metadata) == []


def test_corrupt_database_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"this is not a database at all\n" * 200)
    with pytest.raises(SpudError, match="broken.db") as caught:
        SqlStore(f"sqlite:///{path}")
    assert "not a database" in str(caught.value)


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen([sys.executable, "-c", code, *args], text=True, env=env)


def test_concurrent_first_open_and_appends(db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    opener = "import sys; from spud.store.sql import SqlStore; SqlStore(sys.argv[1]).close()"
    openers = [_python(opener, url) for _ in range(4)]  # all migrate a fresh file at once
    assert [p.wait(timeout=60) for p in openers] == [0, 0, 0, 0]
    with SqlStore(url) as store:
        sid = store.create_session("shared", "/w", "m")
    writer = textwrap.dedent(
        """
        import sys
        from spud.core.messages import Message
        from spud.store.sql import SqlStore

        with SqlStore(sys.argv[1]) as store:
            for i in range(40):
                store.append(sys.argv[2], Message(role="user", content=f"{sys.argv[3]}{i}"))
        """
    )
    writers = [_python(writer, url, sid, name) for name in "ab"]
    assert [p.wait(timeout=60) for p in writers] == [0, 0]
    with SqlStore(url) as store:
        contents = [m.content for m in store.messages(sid)]
    assert len(contents) == 80
    for name in "ab":
        assert [c for c in contents if c[0] == name] == [f"{name}{i}" for i in range(40)]


def test_schema_from_a_newer_version(db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    SqlStore(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('9999')"))
    engine.dispose()
    with pytest.raises(SpudError, match="newer version"):
        SqlStore(url)


CHILD = textwrap.dedent(
    """
    import sys, time
    from spud.core.messages import Message
    from spud.store.sql import SqlStore

    store = SqlStore(sys.argv[1])
    for i in range(100_000):
        store.append(sys.argv[2], Message(role="user", content=f"m{i}", meta={"i": i}))
        print(f"appended {i + 1}", flush=True)
    time.sleep(60)
    """
)


def test_appends_survive_kill_9(db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    with SqlStore(url) as store:
        sid = store.create_session("durable", "/w", "m")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    command = [sys.executable, "-c", CHILD, url, sid]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as child:
        try:
            assert child.stdout is not None
            acknowledged = 0
            while acknowledged < 25:
                line = child.stdout.readline()
                assert line, "the child exited before appending"
                acknowledged = int(line.split()[1])
            os.kill(child.pid, signal.SIGKILL)  # mid-stream: it keeps appending until killed
        finally:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    with SqlStore(url) as store:
        got = store.messages(sid)
        assert len(got) >= acknowledged
        assert [m.content for m in got] == [f"m{i}" for i in range(len(got))]
        assert store.append(sid, Message(role="user", content="after")) == len(got)
