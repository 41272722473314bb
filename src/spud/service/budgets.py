"""Budgets per person and organisation: a run stops with status limit:budget once one is spent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, PrivateAttr
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import sessionmaker

from spud.core.errors import ConfigError, LimitReached
from spud.core.run import Limits, RunResult
from spud.service.ledger import BudgetRow, Spend
from spud.service.tables import OrgRow, UserRow
from spud.store.models import utcnow
from spud.store.sql import SqlStore

Period = Literal["day", "month", "total"]
Spent = Callable[[str, str | None, datetime | None], Spend]  # (org, user or None, since)
PERIODS: tuple[Period, ...] = ("day", "month", "total")
WHOLE_ORG = ""  # the user_id of an organisation's own budget
SPOKEN = {"day": "today", "month": "this month", "total": "in total"}


class Budget(BaseModel):
    """What a person (user_id) or a whole organisation (user_id "") may spend per period."""

    org_id: str
    user_id: str
    usd: float | None
    seconds: float | None  # model seconds
    period: Period
    set_by: str
    set_at: datetime


class BudgetState(BaseModel):
    """A budget, whose it is in words, and what was spent in its period so far."""

    budget: Budget
    owner: str  # "bob", or "organisation acme"
    spent: Spend

    @property
    def used_up(self) -> str | None:
        """What was spent of what, when the budget is spent; None while some is left."""
        b, period = self.budget, SPOKEN[self.budget.period]
        if b.usd is not None and self.spent.cost_usd >= b.usd:
            return f"${self.spent.cost_usd:.4f} of ${b.usd:.4f} spent by {self.owner} {period}"
        if b.seconds is not None and self.spent.seconds >= b.seconds:
            return (
                f"{self.spent.seconds:.1f} of {b.seconds:.1f} model seconds used by "
                f"{self.owner} {period}"
            )
        return None

    @property
    def share(self) -> float:
        """How much of the budget is spent, 0 to 1 (the larger of money and time)."""
        b, parts = self.budget, []
        if b.usd is not None:
            parts.append(self.spent.cost_usd / b.usd if b.usd else 1.0)
        if b.seconds is not None:
            parts.append(self.spent.seconds / b.seconds if b.seconds else 1.0)
        return min(1.0, max(parts, default=0.0))


def period_start(period: Period, now: datetime | None = None) -> datetime | None:
    """When the current period began (UTC): today, this month, or None for all time."""
    now = (now or utcnow()).astimezone(UTC)
    if period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return None


class BudgetLimits(Limits):
    """A run's limits plus its owner's budgets, checked before every step like the others."""

    _budgets: Budgets = PrivateAttr()
    _owner: tuple[str, str] = PrivateAttr()

    def check(self, result: RunResult, elapsed: float) -> None:
        super().check(result, elapsed)
        self._budgets.enforce(*self._owner)


class Budgets:
    """Budgets in the store, and their check against the usage ledger."""

    def __init__(self, store: SqlStore, spent: Spent) -> None:
        self.spent = spent  # the usage ledger's totals
        self._db = sessionmaker(store.engine, expire_on_commit=False)

    def set(
        self,
        org_id: str,
        user_id: str = WHOLE_ORG,
        *,
        usd: float | None = None,
        seconds: float | None = None,
        period: str = "month",
        set_by: str = "",
    ) -> Budget:
        """Set (or replace) a person's budget, or with user_id "" the organisation's."""
        if usd is None and seconds is None:
            raise ConfigError("a budget needs an amount: dollars (--usd), model seconds, or both")
        if (usd is not None and usd < 0) or (seconds is not None and seconds < 0):
            raise ConfigError("a budget cannot be negative")
        if period not in PERIODS:
            raise ConfigError(f"the period must be one of {', '.join(PERIODS)}, not {period!r}")
        with self._db.begin() as db:
            row = db.scalar(
                select(BudgetRow).where(BudgetRow.org_id == org_id, BudgetRow.user_id == user_id)
            )
            if row is None:
                row = BudgetRow(org_id=org_id, user_id=user_id)
                db.add(row)
            row.usd, row.seconds, row.period = usd, seconds, period
            row.set_by, row.set_at = set_by, utcnow()
        return _budget(row)

    def clear(self, org_id: str, user_id: str = WHOLE_ORG) -> bool:
        """Remove a budget; False when there was none."""
        gone = delete(BudgetRow).where(BudgetRow.org_id == org_id, BudgetRow.user_id == user_id)
        with self._db.begin() as db:
            return db.execute(gone).rowcount > 0

    def list(self, org_id: str | None = None) -> list[Budget]:
        """The budgets of one organisation (or all): its own first, then its people's."""
        query = select(BudgetRow).order_by(BudgetRow.org_id, BudgetRow.user_id)
        if org_id is not None:
            query = query.where(BudgetRow.org_id == org_id)
        with self._db() as db:
            return [_budget(r) for r in db.scalars(query)]

    def states(self, org_id: str, user_id: str | None = None) -> list[BudgetState]:
        """The budgets that bind one person (theirs and their organisation's), or all of an
        organisation's when user_id is None; each with what was spent in its period."""
        budgets = self._binding(org_id, user_id)
        names = self._owners(org_id, budgets) if budgets else {}
        return [
            BudgetState(budget=b, owner=names[b.user_id], spent=self._spent(b)) for b in budgets
        ]

    def enforce(self, user_id: str, org_id: str) -> None:
        """Raise LimitReached("budget") when this person's or their organisation's is spent.

        Checked before every step: one query when no budget binds them, one more per budget.
        """
        for budget in self._binding(org_id, user_id):
            state = BudgetState(budget=budget, owner="", spent=self._spent(budget))
            if state.used_up is not None:
                state.owner = self._owners(org_id, [budget])[budget.user_id]
                raise LimitReached("budget", str(state.used_up))

    def _binding(self, org_id: str, user_id: str | None) -> list[Budget]:
        query = select(BudgetRow).where(BudgetRow.org_id == org_id)
        if user_id is not None:
            query = query.where(or_(BudgetRow.user_id == user_id, BudgetRow.user_id == WHOLE_ORG))
        with self._db() as db:
            return [_budget(r) for r in db.scalars(query.order_by(BudgetRow.user_id))]

    def _spent(self, budget: Budget) -> Spend:
        person = None if budget.user_id == WHOLE_ORG else budget.user_id
        return self.spent(budget.org_id, person, period_start(budget.period))

    def _owners(self, org_id: str, budgets: list[Budget]) -> dict[str, str]:
        """Whose each budget is, in words: a username, or "organisation NAME"."""
        people = [b.user_id for b in budgets if b.user_id != WHOLE_ORG]
        with self._db() as db:
            found = db.execute(select(UserRow.id, UserRow.username).where(UserRow.id.in_(people)))
            names = {b.user_id: b.user_id for b in budgets} | dict(found.all())
            org = db.scalar(select(OrgRow.name).where(OrgRow.id == org_id)) or org_id
        return names | {WHOLE_ORG: f"organisation {org}"}

    def limits(self, user_id: str, org_id: str, base: Limits) -> BudgetLimits:
        """A run's limits with its owner's budgets added (read afresh at every step)."""
        limits = BudgetLimits(**base.model_dump())
        limits._budgets, limits._owner = self, (user_id, org_id)
        return limits


def _budget(row: BudgetRow) -> Budget:
    return Budget.model_validate(row, from_attributes=True)
