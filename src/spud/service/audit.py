"""The audit log: every action written with who did it, in which organisation, and the outcome."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import insert, select
from sqlalchemy.orm import sessionmaker

from spud.service.tables import AuditRow
from spud.store.models import utcnow
from spud.store.sql import SqlStore

log = logging.getLogger(__name__)
GATHER_S = 0.05  # a queued entry is committed at most this long (plus the commit) after it


class AuditEntry(BaseModel):
    """One line of the audit log."""

    id: int
    at: datetime
    org_id: str | None
    actor: str
    action: str
    target: str
    outcome: str
    detail: str


class AuditLog:
    """Append-only record of actions; read newest first, per organisation or all.

    record() commits before it returns; with soon=True (the server's request trail) it hands
    the entry to a writer thread, which gathers what arrives over GATHER_S and commits it in
    one transaction (one wake-up and one commit per batch, not per request). Reading the log
    and close() commit the queue at once, so a clean shutdown loses nothing and a killed
    process at most the last GATHER_S of the trail.
    """

    def __init__(self, store: SqlStore) -> None:
        self._db = sessionmaker(store.engine, expire_on_commit=False)
        self._engine = store.engine
        self._queued: list[dict[str, Any]] = []
        self._writing = False
        self._hurry = 0  # readers waiting for the queue: commit without gathering
        self._closed = False
        self._changed = threading.Condition()
        self._writer: threading.Thread | None = None

    def record(
        self,
        actor: str,
        action: str,
        *,
        org_id: str | None = None,
        target: str = "",
        outcome: str = "ok",
        detail: str = "",
        soon: bool = False,
    ) -> None:
        """Write one entry, stamped now: committed before returning, or with soon=True
        queued for the writer thread, which commits it with the others queued."""
        row = {
            "at": utcnow(),
            "actor": actor,
            "action": action[:200],
            "org_id": org_id,
            "target": target,
            "outcome": outcome,
            "detail": detail,
        }
        with self._changed:
            if soon and not self._closed:
                self._queued.append(row)
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=self._write_batches, name="audit-writer", daemon=True
                    )
                    self._writer.start()
                if len(self._queued) == 1:  # the writer sleeps only while the queue is empty
                    self._changed.notify_all()
                return
        with self._engine.begin() as db:
            db.execute(insert(AuditRow.__table__), [row])

    def flush(self) -> None:
        """Return once every queued entry is committed."""
        with self._changed:
            self._hurry += 1
            self._changed.notify_all()
            try:
                self._changed.wait_for(lambda: not self._queued and not self._writing)
            finally:
                self._hurry -= 1

    def close(self) -> None:
        """Commit what is queued and stop the writer."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            writer = self._writer
        if writer is not None:
            writer.join()

    def _write_batches(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._queued or self._closed)
                if not self._queued:
                    return
                self._changed.wait_for(lambda: self._closed or self._hurry, timeout=GATHER_S)
                batch, self._queued, self._writing = self._queued, [], True
            try:
                with self._engine.begin() as db:
                    db.execute(insert(AuditRow.__table__), batch)
            except Exception:  # a failed batch must not stop the trail: say so, keep going
                log.exception("could not write %d audit entries", len(batch))
            finally:
                with self._changed:
                    self._writing = False
                    self._changed.notify_all()

    def entries(self, org_id: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest entries first; only those of org_id when given."""
        self.flush()
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if org_id is not None:
            query = query.where(AuditRow.org_id == org_id)
        with self._db() as db:
            return [AuditEntry.model_validate(r, from_attributes=True) for r in db.scalars(query)]
