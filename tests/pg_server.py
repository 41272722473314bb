"""A throwaway PostgreSQL server for tests: initdb into a temporary folder, a database per test."""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, text

BIN = Path(os.environ.get("SPUD_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
# Speed over durability: the data folder is thrown away when the tests end.
FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"


def missing() -> str:
    """Why the server cannot start here ('' when it can)."""
    if not (BIN / "initdb").is_file():
        return f"no PostgreSQL at {BIN} (scripts/setup.sh installs Debian's postgresql-15)"
    return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """initdb, start on a free port (unix socket in the folder), hand out fresh databases, stop.

    initdb refuses to run as root, so as root the server runs as the `postgres` user.
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="spud-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "spud"
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._run_as = ["runuser", "-u", "postgres", "--"]
        self._names = itertools.count(1)
        self.template = ""  # a migrated database that tests copy

    def _pg(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._run_as, str(BIN / tool), *args],
            check=True,
            capture_output=True,
            text=True,
        )

    def start(self) -> PostgresServer:
        try:
            self._pg(
                "initdb", "-D", str(self.data), "-A", "trust", "-U", self.user,
                "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
            )  # fmt: skip
            options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 {FAST}"
            log = str(self.root / "log")
            self._pg("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")
        except subprocess.CalledProcessError as e:
            log = self.root / "log"
            tail = log.read_text()[-2000:] if log.is_file() else ""
            self.stop()
            raise RuntimeError(f"PostgreSQL did not start: {e.stderr}{tail}") from e
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, template: str = "") -> str:
        """A new empty database (a copy of `template` if given); returns its URL."""
        name = f"t{next(self._names)}"
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                copy = f" TEMPLATE {template}" if template else ""
                conn.execute(text(f"CREATE DATABASE {name}{copy}"))
        finally:
            engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").is_file():
            self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
