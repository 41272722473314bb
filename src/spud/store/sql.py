"""The Store on SQLAlchemy: SQLite (WAL) on one machine, PostgreSQL for teams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import Engine, bindparam, create_engine, event, func, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import StaticPool

from spud.core.errors import SpudError
from spud.core.messages import Message
from spud.core.protocols import SessionInfo
from spud.store.models import MessageRow, SessionRow, utcnow
from spud.store.steps import StepEnds

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x5350_5544  # "SPUD": the PostgreSQL advisory lock held while migrating
UPDATABLE = frozenset(
    {"status", "summary", "steps", "prompt_tokens", "completion_tokens", "toolsets"}
)
# The statements of an append, built once.
TOUCH = (
    update(SessionRow).where(SessionRow.id == bindparam("sid")).values(updated_at=bindparam("now"))
)
NEXT_INDEX = select(func.coalesce(func.max(MessageRow.idx) + 1, 0)).where(
    MessageRow.session_id == bindparam("sid")
)
ADD_MESSAGE = insert(MessageRow.__table__)
SQLITE_PRAGMAS = (
    "PRAGMA busy_timeout=5000",  # first, so the others wait for a lock instead of failing
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
)


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _within_step_pragmas(dbapi_connection: Any, record: Any) -> None:
    """The store's pragmas, but commits do not wait for the disk (they survive a crash)."""
    _set_sqlite_pragmas(dbapi_connection, record)
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _without_nul(value: Any) -> Any:
    """value with each NUL character in its strings made U+FFFD (PostgreSQL's text holds none)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {k: _without_nul(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_without_nul(v) for v in value)
    return value


def _postgres_text(
    _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
) -> tuple[str, Any]:
    """Text with a NUL (a pasted binary, a sign-in name) is stored instead of failing the
    statement: NUL becomes U+FFFD on PostgreSQL, as SQLite would keep the text whole."""
    return statement, _without_nul(parameters)


def alembic_config(url: str) -> Config:
    """An Alembic configuration for the store's migrations, without an alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


class SqlStore:
    """Sessions and messages in a SQL database; every write is committed before returning."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            parsed = make_url(url)
        except ArgumentError as e:
            raise SpudError(f"not a database URL: {url!r}") from e
        if parsed.drivername == "postgresql":  # SQLAlchemy's default there is psycopg2
            parsed = parsed.set(drivername="postgresql+psycopg")
            self.url = parsed.render_as_string(hide_password=False)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        database = parsed.database or ""
        in_memory = self.is_sqlite and database in ("", ":memory:")
        self.where = database if self.is_sqlite and not in_memory else parsed.render_as_string()
        if self.is_sqlite and not in_memory:
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise SpudError(f"cannot create the directory for {database}: {e}") from e
        # One shared connection for an in-memory database, or each would see its own.
        options: dict[str, Any] = (
            {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
            if in_memory
            else {}
        )
        try:
            self.engine: Engine = create_engine(parsed, **options)
        except ImportError as e:
            raise SpudError(f"no database driver for {self.where}: {e}") from e
        if self.is_sqlite:
            event.listen(self.engine, "connect", _set_sqlite_pragmas)
        elif parsed.get_backend_name() == "postgresql":
            event.listen(self.engine, "before_cursor_execute", _postgres_text, retval=True)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self._step_ends = StepEnds()
        # Appends inside a step commit on connections that do not wait for the disk.
        self._within_step = self.engine
        if self.is_sqlite and not in_memory:
            self._within_step = create_engine(parsed)
            event.listen(self._within_step, "connect", _within_step_pragmas)
        try:
            self._migrate()
        except DBAPIError as e:
            self.engine.dispose()
            raise SpudError(f"cannot open the store at {self.where}: {e.orig}") from e
        except CommandError as e:
            self.engine.dispose()
            raise SpudError(
                f"the store at {self.where} has a schema this Spud does not know "
                f"(written by a newer version?): {e}"
            ) from e

    def _migrate(self) -> None:
        """Bring the schema to the newest revision (creates it in a fresh database)."""
        config = alembic_config(self.url)
        with self.engine.begin() as connection:
            # Hold a lock for the migration so two processes don't migrate at once.
            if self.is_sqlite:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            elif self.engine.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            config.attributes["connection"] = connection
            command.upgrade(config, "heads")  # issue work may add parallel branches

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()
        self._within_step.dispose()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def create_session(self, task: str, workspace: str, model: str) -> str:
        """Create a running session and return its id."""
        with self._session.begin() as db:
            row = SessionRow(task=task, workspace=workspace, model=model)
            db.add(row)
        return row.id

    def append(self, session_id: str, message: Message) -> int:
        """Persist one message (committed before returning); return its 0-based index.

        Only the append that ends a step waits for the disk, carrying the step's earlier
        commits with it: one fsync a step (see spud.store.steps).
        """
        now = utcnow()
        durable = self._step_ends.ends_step(session_id, message)
        with (self.engine if durable else self._within_step).begin() as db:
            if not durable and db.dialect.name == "postgresql":
                db.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            # Touching the session row first takes the write lock (SQLite) or the row lock
            # (PostgreSQL), so the next index below cannot race with another writer.
            if db.execute(TOUCH, {"sid": session_id, "now": now}).rowcount == 0:
                raise SpudError(f"no session {session_id!r}")
            idx: int = db.scalar(NEXT_INDEX, {"sid": session_id})
            row = {
                "session_id": session_id,
                "idx": idx,
                "role": message.role,
                "data": message.model_dump_json(),
                "created_at": now,
            }
            db.execute(ADD_MESSAGE, row)
        return idx

    def messages(self, session_id: str) -> list[Message]:
        """The session's messages in order."""
        with self._session() as db:
            query = (
                select(MessageRow.data)
                .where(MessageRow.session_id == session_id)
                .order_by(MessageRow.idx)
            )
            rows = db.scalars(query).all()
            if not rows and db.get(SessionRow, session_id) is None:
                raise SpudError(f"no session {session_id!r}")
        return [Message.model_validate_json(data) for data in rows]

    def get_session(self, session_id: str) -> SessionInfo:
        """The session with this id, or with the one id that starts with it."""
        with self._session() as db:
            row = db.get(SessionRow, session_id)
            if row is None and session_id:
                query = select(SessionRow).where(
                    SessionRow.id.startswith(session_id, autoescape=True)
                )
                matches = db.scalars(query.limit(2)).all()
                if len(matches) > 1:
                    raise SpudError(f"session id {session_id!r} is ambiguous: give more characters")
                row = matches[0] if matches else None
            if row is None:
                raise SpudError(f"no session {session_id!r}")
            return _info(row)

    def list_sessions(self, limit: int = 50) -> list[SessionInfo]:
        """The newest sessions first."""
        query = (
            select(SessionRow)
            .order_by(SessionRow.created_at.desc(), SessionRow.id.desc())
            .limit(limit)
        )
        with self._session() as db:
            return [_info(row) for row in db.scalars(query)]

    def update_session(self, session_id: str, **fields: Any) -> None:
        """Set status, summary, steps or token totals; other fields are a ValueError."""
        unknown = sorted(set(fields) - UPDATABLE)
        if unknown:
            raise ValueError(
                f"cannot update session field(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(UPDATABLE))}"
            )
        change = (
            update(SessionRow)
            .where(SessionRow.id == session_id)
            .values(**fields, updated_at=utcnow())
        )
        with self._session.begin() as db:
            if db.execute(change).rowcount == 0:
                raise SpudError(f"no session {session_id!r}")


def _info(row: SessionRow) -> SessionInfo:
    return SessionInfo(
        id=row.id,
        task=row.task,
        workspace=row.workspace,
        model=row.model,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        steps=row.steps,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        summary=row.summary,
        toolsets=[name for name in row.toolsets.split(",") if name],
    )
