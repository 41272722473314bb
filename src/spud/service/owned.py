"""Sessions as an organisation sees them: only its own, searchable by task and summary."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import sessionmaker

from spud.core.messages import Message
from spud.core.protocols import SessionInfo
from spud.service.tables import SessionOwnerRow
from spud.store.models import SessionRow
from spud.store.sql import SqlStore, _info


class OwnedSessions:
    """Which organisation owns a session; listing and reading limited to the owner."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._db = sessionmaker(store.engine, expire_on_commit=False)

    def own(self, session_id: str, org_id: str, user_id: str, kind: str) -> None:
        """Record that a session belongs to this organisation (and was started by this user)."""
        row = SessionOwnerRow(session_id=session_id, org_id=org_id, user_id=user_id, kind=kind)
        with self._db.begin() as db:
            db.add(row)

    def list(
        self, org_id: str, query: str = "", kind: str | None = None, limit: int = 50
    ) -> list[SessionInfo]:
        """The organisation's sessions, newest first; `query` searches task and summary."""
        stmt = (
            select(SessionRow)
            .join(SessionOwnerRow, SessionOwnerRow.session_id == SessionRow.id)
            .where(SessionOwnerRow.org_id == org_id)
            .order_by(SessionRow.updated_at.desc())
            .limit(limit)
        )
        if kind:
            stmt = stmt.where(SessionOwnerRow.kind == kind)
        if query.strip():
            pattern = f"%{query.strip()}%"
            stmt = stmt.where(
                or_(SessionRow.task.ilike(pattern), SessionRow.summary.ilike(pattern))
            )
        with self._db() as db:
            return [_info(r) for r in db.scalars(stmt)]

    def of_user(self, user_id: str, org_id: str) -> list[str]:
        """The ids of the sessions this user started in this organisation."""
        stmt = select(SessionOwnerRow.session_id).where(
            SessionOwnerRow.user_id == user_id, SessionOwnerRow.org_id == org_id
        )
        with self._db() as db:
            return list(db.scalars(stmt))

    def owner(self, session_id: str) -> SessionOwnerRow | None:
        with self._db() as db:
            return db.get(SessionOwnerRow, session_id)

    def get(self, org_id: str, session_id: str) -> SessionInfo | None:
        """The session if this organisation owns it (exact id), else None."""
        row = self.owner(session_id)
        if row is None or row.org_id != org_id:
            return None
        return self.store.get_session(session_id)

    def messages(self, org_id: str, session_id: str) -> list[Message] | None:
        if self.get(org_id, session_id) is None:
            return None
        return self.store.messages(session_id)
