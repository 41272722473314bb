"""The memory store: add, dedupe, supersede, edit and forget memories of one user in one org."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import BaseModel
from sqlalchemy import delete, func, select, text, update

from spud.core.errors import SpudError
from spud.memory.embed import Embedder, to_blob
from spud.memory.tables import KINDS, DocumentRow, MemoryRow
from spud.memory.vectors import VectorIndex, open_index
from spud.store.models import utcnow
from spud.store.sql import SqlStore

LOCAL_USER = LOCAL_ORG = "local"
MAX_TEXT = 20_000


class Memory(BaseModel):
    """A memory as the service hands it out."""

    id: int
    user_id: str
    org_id: str
    kind: str
    text: str
    key: str = ""
    source: str = ""
    data: dict[str, Any] = {}
    document_id: int | None = None
    superseded_by: int | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def cite(self) -> str:
        return f"m{self.id}"

    @property
    def untrusted(self) -> bool:
        """Learned from content from outside (a web page): data, never instructions."""
        return bool(self.data.get("untrusted"))


@dataclass
class NewMemory:
    """A memory to add: what it says, and where it came from."""

    kind: str
    text: str
    key: str = ""
    source: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    document_id: int | None = None


def normalize(text: str) -> str:
    """Lower case, punctuation dropped, spaces collapsed: for comparing texts and keys."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def from_web(source: str) -> bool:
    """Whether a memory's source is a web address (its text came from a page)."""
    return source.lower().startswith(("http://", "https://"))


def content_hash(kind: str, text: str) -> str:
    return hashlib.sha256(f"{kind}\n{normalize(text)}".encode()).hexdigest()


_FIELDS = [column for column in MemoryRow.__table__.c if column.name != "vector"]


def _memory(row: Any) -> Memory:
    """A Memory from a MemoryRow or a row of its columns."""
    return Memory(
        id=row.id,
        user_id=row.user_id,
        org_id=row.org_id,
        kind=row.kind,
        text=row.text,
        key=row.key,
        source=row.source,
        data=json.loads(row.data or "{}"),
        document_id=row.document_id,
        superseded_by=row.superseded_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _owner(user_id: str, org_id: str) -> tuple[str, str]:
    if not user_id or not org_id:
        raise SpudError("memories belong to a user and an organisation: both must be given")
    return user_id, org_id


class MemoryStore:
    """Memories in the Spud database, per user and organisation, never mixed."""

    def __init__(
        self, store: SqlStore, embedder: Embedder | None = None, index: VectorIndex | None = None
    ) -> None:
        self.sql = store
        self.embedder = embedder or Embedder()
        self.session = store._session
        self.lexical = store.is_sqlite  # FTS5 on SQLite; other databases recall by vectors
        self.index: VectorIndex = index or open_index(store, self.embedder.threads)

    # -- writing --------------------------------------------------------------------------

    def add(self, user_id: str, org_id: str, item: NewMemory) -> Memory:
        """Add one memory (see add_many)."""
        return self.add_many(user_id, org_id, [item])[0]

    def add_many(
        self,
        user_id: str,
        org_id: str,
        items: list[NewMemory],
        vectors: np.ndarray | None = None,
    ) -> list[Memory]:
        """Add memories; an identical current memory is returned instead of a copy.

        vectors (one row per item) may be given when they were embedded already.

        A fact or preference with a key replaces the current one with the same key: the old
        row stays as history, pointing at the new one.
        """
        _owner(user_id, org_id)
        for item in items:
            if item.kind not in KINDS:
                raise SpudError(f"unknown memory kind {item.kind!r}; use one of {KINDS}")
            if not item.text.strip():
                raise SpudError("a memory needs some text")
            if len(item.text) > MAX_TEXT:
                raise SpudError(f"a memory holds at most {MAX_TEXT} characters; split the text")
        hashes = [content_hash(i.kind, i.text) for i in items]
        existing: dict[str, MemoryRow] = {}
        wanted = sorted(set(hashes))
        with self.session() as db:
            for start in range(0, len(wanted), 500):  # stay under SQL's parameter limits
                existing |= {
                    row.content_hash: row
                    for row in db.scalars(
                        select(MemoryRow).where(
                            MemoryRow.user_id == user_id,
                            MemoryRow.org_id == org_id,
                            MemoryRow.superseded_by.is_(None),
                            MemoryRow.content_hash.in_(wanted[start : start + 500]),
                        )
                    )
                }
        first: dict[str, int] = {}
        for n, digest in enumerate(hashes):
            if digest not in existing:
                first.setdefault(digest, n)
        todo = sorted(first.values())
        if vectors is None:
            new_vectors = self.embedder.embed([items[n].text for n in todo])
        else:
            new_vectors = np.asarray(vectors, dtype=np.float32)[todo]
        made: dict[str, MemoryRow] = {}
        with self.session.begin() as db:
            now = utcnow()
            for n, vector in zip(todo, new_vectors, strict=True):
                item, digest = items[n], hashes[n]
                made[digest] = MemoryRow(
                    user_id=user_id,
                    org_id=org_id,
                    kind=item.kind,
                    text=item.text.strip(),
                    key=normalize(item.key)[:200],
                    source=item.source,
                    data=json.dumps(
                        {**item.data, "untrusted": True} if from_web(item.source) else item.data
                    ),
                    content_hash=digest,
                    document_id=item.document_id,
                    vector=to_blob(vector),
                    created_at=now,
                    updated_at=now,
                )
            db.add_all(made.values())
            db.flush()
            for row in made.values():  # in order: of two with one key, the later one wins
                if row.key and row.kind in ("fact", "preference"):
                    db.execute(
                        update(MemoryRow)
                        .where(
                            MemoryRow.user_id == user_id,
                            MemoryRow.org_id == org_id,
                            MemoryRow.kind == row.kind,
                            MemoryRow.key == row.key,
                            MemoryRow.superseded_by.is_(None),
                            MemoryRow.id < row.id,
                        )
                        .values(superseded_by=row.id, updated_at=now)
                    )
        rows = {**existing, **made}
        return [_memory(rows[h]) for h in hashes]

    def edit(self, user_id: str, org_id: str, memory_id: int, text: str) -> Memory:
        """Change what a memory says (its vector and text index follow)."""
        if not text.strip():
            raise SpudError("a memory needs some text; to remove it, forget it")
        row = self._row(user_id, org_id, memory_id)
        vector = self.embedder.embed([text])[0]
        with self.session.begin() as db:
            db.execute(
                update(MemoryRow)
                .where(MemoryRow.id == row.id)
                .values(
                    text=text.strip(),
                    content_hash=content_hash(row.kind, text),
                    vector=to_blob(vector),
                    updated_at=utcnow(),
                )
            )
        return self.get(user_id, org_id, memory_id)

    def forget(self, user_id: str, org_id: str, memory_id: int) -> list[int]:
        """Delete a memory and the history it superseded: rows, vectors and text index.

        On SQLite the freed pages are zeroed, the text index is merged and the write-ahead
        log is checkpointed, so the words are gone from the files too, not just unlinked;
        the vector index overwrites their vectors and rewrites its files that held them.
        """
        self._row(user_id, org_id, memory_id)
        gone = [memory_id]
        with self.session.begin() as db:
            if self.lexical:
                db.execute(text("PRAGMA secure_delete=ON"))
            frontier = [memory_id]
            while frontier:
                older = db.scalars(
                    select(MemoryRow.id).where(
                        MemoryRow.user_id == user_id,
                        MemoryRow.org_id == org_id,
                        MemoryRow.superseded_by.in_(frontier),
                    )
                ).all()
                gone += older
                frontier = list(older)
            db.execute(delete(MemoryRow).where(MemoryRow.id.in_(gone)))
            if self.lexical:
                db.execute(text("INSERT INTO memory_fts(memory_fts) VALUES('optimize')"))
        if self.lexical:
            with self.sql.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        self.index.forgotten(user_id, org_id, gone)
        return gone

    # -- reading --------------------------------------------------------------------------

    def _row(self, user_id: str, org_id: str, memory_id: int) -> MemoryRow:
        _owner(user_id, org_id)
        with self.session() as db:
            row = db.get(MemoryRow, memory_id)
        if row is None or (row.user_id, row.org_id) != (user_id, org_id):
            raise SpudError(f"no memory m{memory_id}")  # another owner's memory does not exist
        return row

    def get(self, user_id: str, org_id: str, memory_id: int) -> Memory:
        return _memory(self._row(user_id, org_id, memory_id))

    def get_many(self, ids: list[int]) -> dict[int, Memory]:
        """These memories by id (read without their vectors: recall asks for them per query)."""
        if not ids:
            return {}
        with self.sql.engine.connect() as conn:
            rows = conn.execute(select(*_FIELDS).where(MemoryRow.id.in_(ids)))
            return {row.id: _memory(row) for row in rows}

    def list(
        self,
        user_id: str,
        org_id: str,
        kind: str | None = None,
        history: bool = False,
        limit: int = 100,
    ) -> list[Memory]:
        """Newest first; superseded facts only with history=True."""
        _owner(user_id, org_id)
        query = select(MemoryRow).where(MemoryRow.user_id == user_id, MemoryRow.org_id == org_id)
        if kind:
            query = query.where(MemoryRow.kind == kind)
        if not history:
            query = query.where(MemoryRow.superseded_by.is_(None))
        query = query.order_by(MemoryRow.id.desc()).limit(limit)
        with self.session() as db:
            return [_memory(row) for row in db.scalars(query)]

    def history(self, user_id: str, org_id: str, memory_id: int) -> list[Memory]:
        """The versions this memory replaced, newest first."""
        chain, current = [], memory_id
        with self.session() as db:
            while True:
                row = db.scalar(
                    select(MemoryRow).where(
                        MemoryRow.user_id == user_id,
                        MemoryRow.org_id == org_id,
                        MemoryRow.superseded_by == current,
                    )
                )
                if row is None:
                    return chain
                chain.append(_memory(row))
                current = row.id

    def count(self, user_id: str, org_id: str) -> int:
        with self.session() as db:
            return db.scalar(
                select(func.count()).where(
                    MemoryRow.user_id == user_id,
                    MemoryRow.org_id == org_id,
                    MemoryRow.superseded_by.is_(None),
                )
            )

    # -- documents ------------------------------------------------------------------------

    def add_document(
        self, user_id: str, org_id: str, source: str, title: str, sha256: str, chunks: list[str]
    ) -> tuple[int, bool]:
        """Store a learned document as chunk memories; (id, False) if it was already learned."""
        _owner(user_id, org_id)
        with self.session() as db:
            known = db.scalar(
                select(DocumentRow.id).where(
                    DocumentRow.user_id == user_id,
                    DocumentRow.org_id == org_id,
                    DocumentRow.sha256 == sha256,
                )
            )
        if known is not None:
            return known, False
        with self.session.begin() as db:
            doc = DocumentRow(
                user_id=user_id,
                org_id=org_id,
                source=source,
                title=title,
                sha256=sha256,
                chunks=len(chunks),
            )
            db.add(doc)
        self.add_many(
            user_id,
            org_id,
            [
                NewMemory(
                    kind="chunk",
                    text=chunk,
                    source=f"{source}#{i + 1}",
                    data={"title": title, "chunk": i + 1, "of": len(chunks)},
                    document_id=doc.id,
                )
                for i, chunk in enumerate(chunks)
            ],
        )
        return doc.id, True

    def documents(self, user_id: str, org_id: str, unslept: bool = False) -> list[DocumentRow]:
        query = select(DocumentRow).where(
            DocumentRow.user_id == user_id, DocumentRow.org_id == org_id
        )
        if unslept:
            query = query.where(DocumentRow.slept_at.is_(None))
        with self.session() as db:
            return list(db.scalars(query.order_by(DocumentRow.id)))

    def chunks(self, document_id: int) -> list[Memory]:
        with self.session() as db:
            rows = db.scalars(
                select(MemoryRow)
                .where(MemoryRow.document_id == document_id, MemoryRow.kind == "chunk")
                .order_by(MemoryRow.id)
            )
            return [_memory(r) for r in rows]

    def mark_document_slept(self, document_id: int) -> None:
        with self.session.begin() as db:
            db.execute(
                update(DocumentRow).where(DocumentRow.id == document_id).values(slept_at=utcnow())
            )
