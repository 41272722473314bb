"""Memory search on PostgreSQL: its own full-text search (tsvector, GIN) as the lexical leg."""

from __future__ import annotations

import logging

from sqlalchemy import Engine, text

from spud.memory.store import MemoryStore

log = logging.getLogger(__name__)
_told: set[str] = set()  # the databases whose vector search was reported once

SEARCH = text(
    "SELECT m.id FROM memories m, to_tsquery('english', :query) q "
    "WHERE m.text_fts @@ q AND m.user_id = :user AND m.org_id = :org "
    "AND m.superseded_by IS NULL ORDER BY ts_rank_cd(m.text_fts, q) DESC, m.id LIMIT :limit"
)


def lexical(
    store: MemoryStore, user_id: str, org_id: str, words: list[str], limit: int
) -> list[int]:
    """Memory ids ranked by PostgreSQL's full-text rank; any of the words may match."""
    report_vectors(store.sql.engine)
    if not words:
        return []
    query = " | ".join("'" + w.replace("'", "") + "'" for w in words)  # each word as one term
    params = {"query": query, "user": user_id, "org": org_id, "limit": limit}
    with store.session() as db:
        return [row[0] for row in db.execute(SEARCH, params)]


def has_pgvector(engine: Engine) -> bool:
    """Whether the server offers the pgvector extension."""
    with engine.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"))
        return found.first() is not None


def report_vectors(engine: Engine) -> None:
    """Say once per database how its memories are searched by meaning."""
    where = engine.url.render_as_string()
    if where in _told:
        return
    _told.add(where)
    if has_pgvector(engine):
        log.warning(
            "memory: %s offers pgvector, but Spud does not use it yet; vectors are searched "
            "in this process (numpy), words by PostgreSQL's full-text search",
            where,
        )
    else:
        log.warning(
            "memory: %s has no pgvector extension (Debian 12 does not package it); vectors "
            "are searched in this process (numpy), words by PostgreSQL's full-text search",
            where,
        )
