"""Vector search over an owner's current memories: the interface, and an exact in-process index."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from spud.memory.embed import DIM, from_blobs
from spud.memory.tables import MemoryRow
from spud.store.sql import SqlStore


class VectorIndex(Protocol):
    """The nearest current memories of one owner by cosine, in step with the memories table.

    Writes need no call: an index follows the table by itself. Forgetting does, so that no
    copy of a deleted memory's vector stays in memory or in a file.
    """

    def search(
        self, user_id: str, org_id: str, vector: np.ndarray, limit: int
    ) -> list[tuple[int, float]]:
        """(memory id, cosine) of the nearest current memories, nearest first."""
        ...

    def cosines(
        self, user_id: str, org_id: str, ids: list[int], vector: np.ndarray
    ) -> dict[int, float]:
        """The cosine of each of these current memories (those the index has) to vector."""
        ...

    def forgotten(self, user_id: str, org_id: str, ids: list[int]) -> None:
        """These memories were deleted: wipe their vectors from the index and its files."""
        ...


def current(user_id: str, org_id: str) -> tuple[Any, ...]:
    """The SQL conditions for an owner's current memories."""
    return (
        MemoryRow.user_id == user_id,
        MemoryRow.org_id == org_id,
        MemoryRow.superseded_by.is_(None),
    )


class _Matrix:
    """One owner's vectors and the table signature they were read at."""

    def __init__(self) -> None:
        self.signature: tuple[Any, ...] = ()
        self.ids = np.zeros(0, dtype=np.int64)
        self.rows: dict[int, int] = {}
        self.matrix = np.zeros((0, DIM), dtype=np.float32)


class ExactIndex:
    """Every vector of an owner in a numpy matrix, scanned per query; reread when the table's
    signature (count, last id, last change) moves. For databases without the change log."""

    def __init__(self, session: sessionmaker) -> None:
        self.session = session
        self._owners: dict[tuple[str, str], _Matrix] = {}
        self._lock = threading.Lock()

    def _matrix(self, user_id: str, org_id: str) -> _Matrix:
        where = current(user_id, org_id)
        with self.session() as db:
            signature = tuple(
                db.execute(
                    select(
                        func.count(), func.max(MemoryRow.id), func.max(MemoryRow.updated_at)
                    ).where(*where)
                ).one()
            )
            with self._lock:
                owned = self._owners.setdefault((user_id, org_id), _Matrix())
                if owned.signature != signature:
                    rows = db.execute(select(MemoryRow.id, MemoryRow.vector).where(*where)).all()
                    rows = [r for r in rows if r.vector]
                    owned.ids = np.array([r.id for r in rows], dtype=np.int64)
                    owned.rows = {int(i): n for n, i in enumerate(owned.ids)}
                    owned.matrix = from_blobs([r.vector for r in rows])
                    owned.signature = signature
                return owned

    def search(
        self, user_id: str, org_id: str, vector: np.ndarray, limit: int
    ) -> list[tuple[int, float]]:
        owned = self._matrix(user_id, org_id)
        if not len(owned.ids) or limit <= 0:
            return []
        scores = owned.matrix @ vector
        top = np.argpartition(-scores, min(limit, len(scores)) - 1)[:limit]
        top = top[np.argsort(-scores[top])]
        return [(int(owned.ids[i]), float(scores[i])) for i in top]

    def cosines(
        self, user_id: str, org_id: str, ids: list[int], vector: np.ndarray
    ) -> dict[int, float]:
        owned = self._matrix(user_id, org_id)
        rows = {i: owned.rows[i] for i in ids if i in owned.rows}
        return {i: float(owned.matrix[n] @ vector) for i, n in rows.items()}

    def forgotten(self, user_id: str, org_id: str, ids: list[int]) -> None:
        with self._lock:  # rebuilt without them on the next query
            self._owners.pop((user_id, org_id), None)


def open_index(sql: SqlStore, threads: int = 0) -> VectorIndex:
    """HNSW graphs (files beside a SQLite database, kept in step by its change log); an exact
    scan elsewhere, until a database-side index (pgvector) sits beside them."""
    if not sql.is_sqlite:
        return ExactIndex(sql._session)
    from spud.memory.hnsw import HnswIndex

    database = sql.engine.url.database or ""
    in_memory = database in ("", ":memory:")
    return HnswIndex(
        sql.engine, None if in_memory else Path(database).with_suffix(".vectors"), threads
    )
