"""What was spent: every model call priced and entered in a ledger; totals by person, org, task."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, Literal

from sqlalchemy import ColumnElement, String, cast, func, insert, select
from sqlalchemy.orm import sessionmaker

from spud.config import Settings
from spud.core.errors import ConfigError
from spud.core.messages import Message, Usage
from spud.core.protocols import SessionInfo
from spud.models.prices import cost_of, price_of
from spud.service.budgets import Budgets
from spud.service.ledger import Spend, UsageRow
from spud.service.tables import OrgRow, TaskRow, UserRow
from spud.store.models import SessionRow, utcnow
from spud.store.sql import SqlStore

By = Literal["user", "org", "session", "task", "model", "day"]
BY: tuple[By, ...] = ("user", "org", "session", "task", "model", "day")


SINCE_HELP = "day, week, month, all, a date (2026-12-01) or a span (7d, 24h)"


def parse_since(text: str, now: datetime | None = None) -> datetime | None:
    """The moment a report starts (UTC): today, 7 days back, this month, all time (None), a
    date, or a span back from now such as 7d or 24h."""
    now = (now or utcnow()).astimezone(UTC)
    text = text.strip().lower()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if text in ("", "all"):
        return None
    if text in ("day", "today"):
        return midnight
    if text == "week":
        return midnight - timedelta(days=6)
    if text == "month":
        return midnight.replace(day=1)
    if span := re.fullmatch(r"(\d{1,5})([dh])", text):
        amount = int(span.group(1))
        return now - (timedelta(days=amount) if span.group(2) == "d" else timedelta(hours=amount))
    try:
        day = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"since {text!r}: use {SINCE_HELP}") from None
    return day.replace(tzinfo=day.tzinfo or UTC).astimezone(UTC)


class UsageLine(Spend):
    """The totals of one person, organisation, session, task, model or day."""

    key: str
    label: str


class MeteredStore:
    """The store an agent writes through: each model call is priced, then entered in the ledger.

    The price goes into the stored message's usage, so the run's own cost limit sees it too.
    """

    def __init__(
        self, store: SqlStore, usage: UsageService, user_id: str, org_id: str, model: str
    ) -> None:
        self.store, self.usage = store, usage
        self.user_id, self.org_id, self.model = user_id, org_id, model
        self.price = price_of(model, usage.settings.prices)

    def append(self, session_id: str, message: Message) -> int:
        raw = message.meta.get("usage") if message.role == "assistant" else None
        if raw is None:
            return self.store.append(session_id, message)
        used = Usage.model_validate(raw)
        used.cost_usd = cost_of(used, self.price)
        message.meta["usage"] = used.model_dump()
        idx = self.store.append(session_id, message)
        self.usage.record(self.org_id, self.user_id, session_id, self.model, used)
        return idx

    def create_session(self, task: str, workspace: str, model: str) -> str:
        return self.store.create_session(task, workspace, model)

    def messages(self, session_id: str) -> list[Message]:
        return self.store.messages(session_id)

    def get_session(self, session_id: str) -> SessionInfo:
        return self.store.get_session(session_id)

    def list_sessions(self, limit: int = 50) -> list[SessionInfo]:
        return self.store.list_sessions(limit)

    def update_session(self, session_id: str, **fields: Any) -> None:
        self.store.update_session(session_id, **fields)


class UsageService:
    """The ledger: written by metered stores, read as totals and breakdowns."""

    def __init__(self, store: SqlStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._db = sessionmaker(store.engine, expire_on_commit=False)

    @cached_property
    def budgets(self) -> Budgets:
        """Budgets per person and organisation, checked against this ledger."""
        return Budgets(self.store, self.spent)

    def metered(self, store: SqlStore, user_id: str, org_id: str, model: str) -> MeteredStore:
        """The store for one run's agent, charging its model calls to this person."""
        return MeteredStore(store, self, user_id, org_id, model)

    def record(self, org_id: str, user_id: str, session_id: str, model: str, used: Usage) -> None:
        """Enter one model call in the ledger (committed before returning)."""
        row = {
            "at": utcnow(),
            "org_id": org_id,
            "user_id": user_id,
            "session_id": session_id,
            "model": model[:200],
            "prompt_tokens": used.prompt_tokens,
            "completion_tokens": used.completion_tokens,
            "seconds": used.seconds,
            "cost_usd": used.cost_usd,
        }
        with self.store.engine.begin() as connection:  # a plain insert: no ORM unit of work
            connection.execute(insert(UsageRow), [row])

    def spent(
        self, org_id: str, user_id: str | None = None, since: datetime | None = None
    ) -> Spend:
        """Everything an organisation (or one of its people) spent since a moment (or ever)."""
        query = select(*_sums()).where(*_scope(org_id, user_id, since))
        with self._db() as db:
            found = db.execute(query).one()
        return Spend(**found._asdict())

    def report(
        self,
        by: By = "user",
        org_id: str | None = None,
        user_id: str | None = None,
        since: datetime | None = None,
        limit: int = 200,
    ) -> list[UsageLine]:
        """Totals per person, organisation, session, task, model or day, costliest first.

        org_id None: every organisation (the operator's view from the CLI).
        """
        key: ColumnElement[Any]
        if by == "day":
            key = func.substr(cast(UsageRow.at, String), 1, 10)  # YYYY-MM-DD, UTC
        elif by == "task":
            key = func.coalesce(TaskRow.id, "")
        else:
            key = {
                "user": UsageRow.user_id,
                "org": UsageRow.org_id,
                "session": UsageRow.session_id,
                "model": UsageRow.model,
            }[by]
        query = select(key.label("key"), *_sums()).where(*_scope(org_id, user_id, since))
        if by == "task":
            query = query.outerjoin(TaskRow, TaskRow.session_id == UsageRow.session_id)
        order = key.desc() if by == "day" else func.sum(UsageRow.cost_usd).desc()
        query = query.group_by(key).order_by(order, key).limit(limit)
        with self._db() as db:
            rows = [r._asdict() for r in db.execute(query)]
            labels = self._labels(db, by, [r["key"] for r in rows])
        return [UsageLine(label=labels.get(r["key"], r["key"]), **r) for r in rows]

    def _labels(self, db: Any, by: By, keys: list[str]) -> dict[str, str]:
        """Names people can read: usernames, organisation names, tasks' prompts."""
        if by == "user":
            found = db.execute(select(UserRow.id, UserRow.username).where(UserRow.id.in_(keys)))
        elif by == "org":
            found = db.execute(select(OrgRow.id, OrgRow.name).where(OrgRow.id.in_(keys)))
        elif by == "session":
            tasks = select(SessionRow.id, SessionRow.task).where(SessionRow.id.in_(keys))
            found = db.execute(tasks)
        elif by == "task":
            found = db.execute(select(TaskRow.id, TaskRow.prompt).where(TaskRow.id.in_(keys)))
            return {"": "(not a task: chat or CLI)", **{k: _short(v) for k, v in found}}
        else:
            return {}
        return {k: _short(v) for k, v in found}


def _sums() -> list[ColumnElement[Any]]:
    return [
        func.count(UsageRow.id).label("calls"),
        func.coalesce(func.sum(UsageRow.prompt_tokens), 0).label("prompt_tokens"),
        func.coalesce(func.sum(UsageRow.completion_tokens), 0).label("completion_tokens"),
        func.coalesce(func.sum(UsageRow.seconds), 0.0).label("seconds"),
        func.coalesce(func.sum(UsageRow.cost_usd), 0.0).label("cost_usd"),
    ]


def _scope(
    org_id: str | None, user_id: str | None, since: datetime | None
) -> list[ColumnElement[bool]]:
    where = []
    if org_id is not None:
        where.append(UsageRow.org_id == org_id)
    if user_id is not None:
        where.append(UsageRow.user_id == user_id)
    if since is not None:
        where.append(UsageRow.at >= since)
    return where


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
