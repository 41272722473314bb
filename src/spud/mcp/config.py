"""MCP servers a user or an organisation configured, kept in the store (table mcp_servers)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import Index, String, Text, UniqueConstraint, create_engine, delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from spud.core.errors import ConfigError
from spud.store.models import Base, UtcDateTime, utcnow

NAME = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
ORG_WIDE = ""  # user_id of a server the whole organisation gets


class McpServer(BaseModel):
    """One MCP server: a stdio command (with args and env) or a streamable-HTTP URL.

    allow: the server's tools Spud offers (empty: all). timeout_s: how long one call may
    take before it counts as hung (the server is then restarted).
    """

    name: str
    command: str = ""
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    url: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    allow: list[str] = Field(default_factory=list)
    timeout_s: float = Field(60.0, gt=0, le=3600)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(
                f"{v!r} is not a server name: use 1-30 lowercase letters, digits and dashes, "
                "starting with a letter"
            )
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if bool(self.command) == bool(self.url):
            raise ValueError("give either a command (stdio) or a URL (streamable HTTP), not both")
        return self

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"

    @property
    def target(self) -> str:
        """What it runs or reaches, for lists (env and header values never shown)."""
        if self.command:
            return " ".join([self.command, *self.args])
        return self.url


class McpServerRow(Base):
    """A configured MCP server of an organisation (user_id "") or of one of its users."""

    __tablename__ = "mcp_servers"
    __table_args__ = (
        UniqueConstraint("org_id", "user_id", "name"),
        Index("ix_mcp_servers_owner", "org_id", "user_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(40))
    config: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class StoredServer(BaseModel):
    """A configured server and whom it belongs to."""

    id: str
    org_id: str
    user_id: str
    server: McpServer

    @property
    def scope(self) -> str:
        return "organisation" if self.user_id == ORG_WIDE else "personal"


class McpServers:
    """Add, list and remove configured servers; the ones a session of a user gets."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def at(cls, url: str) -> McpServers:
        """Over the store at this URL (migrated to the newest schema)."""
        from spud.store.sql import SqlStore

        return cls(SqlStore(url).engine)

    def add(self, org_id: str, user_id: str, server: McpServer) -> StoredServer:
        """Store a server for a user (or the organisation, user_id ""); names are unique."""
        row_id = uuid.uuid4().hex
        row = McpServerRow(
            id=row_id,
            org_id=org_id,
            user_id=user_id,
            name=server.name,
            config=server.model_dump_json(),
        )
        try:
            with Session(self.engine) as s, s.begin():
                s.add(row)
        except IntegrityError:
            raise ConfigError(
                f"an MCP server called {server.name!r} is already configured; remove it first"
            ) from None
        return StoredServer(id=row_id, org_id=org_id, user_id=user_id, server=server)

    def list(self, org_id: str, user_id: str | None = None) -> list[StoredServer]:
        """The organisation's servers, and this user's own when user_id is given."""
        owners = [ORG_WIDE] if user_id is None else [ORG_WIDE, user_id]
        with Session(self.engine) as s:
            rows = s.scalars(
                select(McpServerRow)
                .where(McpServerRow.org_id == org_id, McpServerRow.user_id.in_(owners))
                .order_by(McpServerRow.name, McpServerRow.user_id)
            ).all()
        return [_stored(r) for r in rows]

    def for_session(self, org_id: str, user_id: str) -> list[McpServer]:
        """What a session of this user gets: theirs, and the organisation's (theirs win)."""
        chosen: dict[str, McpServer] = {}
        for stored in self.list(org_id, user_id):
            if stored.user_id != ORG_WIDE or stored.server.name not in chosen:
                chosen[stored.server.name] = stored.server
        return list(chosen.values())

    def get(self, org_id: str, user_id: str, name: str) -> StoredServer:
        """The user's server of this name, else the organisation's; a clear error if none."""
        for stored in self.list(org_id, user_id):
            if stored.server.name == name and stored.user_id == user_id:
                return stored
        for stored in self.list(org_id):
            if stored.server.name == name:
                return stored
        raise ConfigError(f"no MCP server called {name!r} (see `spud mcp list`)")

    def remove(self, org_id: str, user_id: str, name: str) -> bool:
        """Remove the server of this name of this owner (user_id "" for the organisation)."""
        with Session(self.engine) as s, s.begin():
            done = s.execute(
                delete(McpServerRow).where(
                    McpServerRow.org_id == org_id,
                    McpServerRow.user_id == user_id,
                    McpServerRow.name == name,
                )
            )
        return bool(done.rowcount)

    def remove_id(self, org_id: str, server_id: str) -> bool:
        """Remove one of the organisation's rows by id (the web page's remove button)."""
        with Session(self.engine) as s, s.begin():
            done = s.execute(
                delete(McpServerRow).where(
                    McpServerRow.org_id == org_id, McpServerRow.id == server_id
                )
            )
        return bool(done.rowcount)


def _stored(row: McpServerRow) -> StoredServer:
    return StoredServer(
        id=row.id,
        org_id=row.org_id,
        user_id=row.user_id,
        server=McpServer.model_validate_json(row.config),
    )


def configured(url: str, org_id: str, user_id: str) -> list[McpServer]:
    """The servers a session gets, read without migrating; none when the table is missing."""
    engine = create_engine(url)
    try:
        return McpServers(engine).for_session(org_id, user_id)
    except SQLAlchemyError:  # a store from before this table, or an in-memory one
        return []
    finally:
        engine.dispose()


def parse_pairs(items: list[str], what: str) -> dict[str, Any]:
    """K=V strings (from --env or --header) as a dict; a clear error for one without '='."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} {item!r} must look like NAME=VALUE")
        out[key.strip()] = value
    return out


__all__ = ["ORG_WIDE", "McpServer", "McpServerRow", "McpServers", "StoredServer"]
