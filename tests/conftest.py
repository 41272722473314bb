"""Shared fixtures: a store and a workspace per test, on SQLite or on a PostgreSQL the tests start.

A test module or test marked `databases` runs once per backend: `db_url` is then a fresh SQLite
file or a fresh PostgreSQL database, and SPUD_DB_URL points a `spud serve` it starts at the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import PostgresServer, missing

from spud.store.sql import SqlStore

BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("databases") is None:
        return
    if os.environ.get("SPUD_TEST_POSTGRES") == "0":  # asked for SQLite only
        backends: tuple[str, ...] = ("sqlite",)
    else:
        backends = BACKENDS
    if "db_url" not in metafunc.fixturenames:
        metafunc.fixturenames.append("db_url")
    metafunc.parametrize("db_url", backends, indirect=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole run, with a migrated template database."""
    why = missing()
    if why:
        pytest.fail(f"{why}; or set SPUD_TEST_POSTGRES=0 to run on SQLite only")
    server = PostgresServer().start()
    try:
        template = server.create_database()
        SqlStore(template).close()  # migrate once; each test copies it
        server.template = template.rsplit("/", 1)[1]
        yield server
    finally:
        server.stop()


@pytest.fixture
def db_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database for this test: SQLite unless the test runs on both backends."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        return f"sqlite:///{request.getfixturevalue('tmp_path') / 'spud.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create_database(server.template)
    monkeypatch.setenv("SPUD_DB_URL", url)  # for the servers and services a test starts
    return url


@pytest.fixture(autouse=True)
def _database_first(request: pytest.FixtureRequest) -> None:
    """Make a two-backend test's database before its other fixtures start servers on it."""
    if "db_url" in request.fixturenames and request.node.get_closest_marker("databases"):
        request.getfixturevalue("db_url")


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    with SqlStore(db_url) as store:
        yield store


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws
