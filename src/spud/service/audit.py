"""The audit log: every action written with who did it, in which organisation, and the outcome."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from spud.service.tables import AuditRow
from spud.store.sql import SqlStore


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
    """Append-only record of actions; read newest first, per organisation or all."""

    def __init__(self, store: SqlStore) -> None:
        self._db = sessionmaker(store.engine, expire_on_commit=False)

    def record(
        self,
        actor: str,
        action: str,
        *,
        org_id: str | None = None,
        target: str = "",
        outcome: str = "ok",
        detail: str = "",
    ) -> None:
        """Write one entry (committed before returning)."""
        row = AuditRow(
            actor=actor,
            action=action[:200],
            org_id=org_id,
            target=target,
            outcome=outcome,
            detail=detail,
        )
        with self._db.begin() as db:
            db.add(row)

    def entries(self, org_id: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest entries first; only those of org_id when given."""
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if org_id is not None:
            query = query.where(AuditRow.org_id == org_id)
        with self._db() as db:
            return [AuditEntry.model_validate(r, from_attributes=True) for r in db.scalars(query)]
