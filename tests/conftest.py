"""Shared fixtures: a store and a workspace per test, on SQLite or on a PostgreSQL the tests start.

A test module or test marked `databases` runs once per backend: `db_url` is then a fresh SQLite
file or a fresh PostgreSQL database, and SPUD_DB_URL points a `spud serve` it starts at the same.
A module marked `databases(scope="module")` runs once per backend with one database for the
module, `module_db_url`, for its module-scoped fixtures (a server its tests share).
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
    marker = metafunc.definition.get_closest_marker("databases")
    if marker is None:
        return
    if os.environ.get("SPUD_TEST_POSTGRES") == "0":  # asked for SQLite only
        backends: tuple[str, ...] = ("sqlite",)
    else:
        backends = BACKENDS
    scope = marker.kwargs.get("scope", "function")
    name = "module_db_url" if scope == "module" else "db_url"
    if name not in metafunc.fixturenames:
        metafunc.fixturenames.append(name)
    metafunc.parametrize(name, backends, indirect=True, scope=scope)


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


def _database(request: pytest.FixtureRequest, folder: Path) -> Iterator[str]:
    """SQLite in folder, or a fresh PostgreSQL database when the backend asked for is that."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{folder / 'spud.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create_database(server.template)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SPUD_DB_URL", url)  # for the servers and services a test starts
        yield url


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database for this test: SQLite unless the test runs on both backends."""
    yield from _database(request, tmp_path)


@pytest.fixture(scope="module")
def module_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One fresh database for a module marked databases(scope="module"), on each backend."""
    yield from _database(request, tmp_path_factory.mktemp("db"))


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
