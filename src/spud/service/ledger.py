"""Tables for what was spent (a row per model call, and its totals), budgets, org default models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import Float, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from spud.store.models import Base, UtcDateTime, utcnow


class UsageRow(Base):
    """One model call of a session: whose it was, on which model, and what it used."""

    __tablename__ = "usage"
    __table_args__ = (
        Index("ix_usage_owner_at", "org_id", "user_id", "at"),
        Index("ix_usage_session", "session_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    org_id: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[str] = mapped_column(String(100))
    session_id: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200))
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)


class BudgetRow(Base):
    """What a person (or, with user_id "", a whole organisation) may spend per period."""

    __tablename__ = "budgets"
    __table_args__ = (UniqueConstraint("org_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[str] = mapped_column(String(100))
    usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)  # model seconds
    period: Mapped[str] = mapped_column(String(16), default="month")  # day | month | total
    set_by: Mapped[str] = mapped_column(String(100), default="")
    set_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class OrgModelRow(Base):
    """The model an organisation's tasks and chats use when they name none."""

    __tablename__ = "org_models"

    org_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    model: Mapped[str] = mapped_column(String(200))
    set_by: Mapped[str] = mapped_column(String(100), default="")
    set_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Spend(BaseModel):
    """Totals over some model calls."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
