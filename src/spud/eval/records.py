"""Eval runs and per-task results in the store's database (tables from migration 0004)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import Boolean, Float, ForeignKey, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from spud.core.errors import ConfigError
from spud.store.models import Base, UtcDateTime, new_session_id, utcnow
from spud.store.sql import SqlStore


class EvalRunRow(Base):
    """One `spud eval` run: which suite, model and harness."""

    __tablename__ = "eval_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_session_id)
    suite: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    harness: Mapped[str] = mapped_column(String(32))
    workers: Mapped[int] = mapped_column(default=1)
    out_dir: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class EvalResultRow(Base):
    """One task of a run: verdict, checker detail, totals and the trajectory's session id."""

    __tablename__ = "eval_results"
    __table_args__ = (UniqueConstraint("run_id", "task_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("eval_runs.id", ondelete="CASCADE"), index=True
    )
    task_id: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(100))
    passed: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    steps: Mapped[int] = mapped_column(default=0)
    tokens: Mapped[int] = mapped_column(default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    calls: Mapped[int] = mapped_column(default=0)
    valid_calls: Mapped[int] = mapped_column(default=0)
    session_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class TaskResult(BaseModel):
    """What one task gave; `calls`/`valid_calls` count replies that tried to call a tool."""

    task_id: str
    category: str
    passed: bool
    status: str
    detail: str = ""
    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0
    calls: int = 0
    valid_calls: int = 0
    session_id: str | None = None


class EvalRun(BaseModel):
    """A run and its results."""

    id: str
    suite: str
    model: str
    harness: str
    workers: int = 1
    out_dir: str = ""
    created_at: datetime | None = None
    results: list[TaskResult] = []


class EvalStore:
    """Reads and writes eval runs through the session store's engine."""

    def __init__(self, store: SqlStore) -> None:
        self._session = sessionmaker(store.engine, expire_on_commit=False)

    def create_run(self, suite: str, model: str, harness: str, workers: int, out_dir: str) -> str:
        with self._session.begin() as db:
            row = EvalRunRow(
                suite=suite, model=model, harness=harness, workers=workers, out_dir=out_dir
            )
            db.add(row)
            db.flush()
            return row.id

    def add_result(self, run_id: str, result: TaskResult) -> None:
        with self._session.begin() as db:
            db.add(EvalResultRow(run_id=run_id, **result.model_dump()))

    def get_run(self, run_id: str) -> EvalRun:
        """A run by id or unique id prefix, with its results in task order."""
        with self._session() as db:
            rows = db.scalars(
                select(EvalRunRow).where(EvalRunRow.id.startswith(run_id, autoescape=True))
            ).all()
            if not rows:
                raise ConfigError(f"no eval run {run_id!r} (see `spud eval list`)")
            if len(rows) > 1:
                raise ConfigError(f"eval run prefix {run_id!r} is ambiguous; give more of it")
            run = rows[0]
            results = db.scalars(
                select(EvalResultRow)
                .where(EvalResultRow.run_id == run.id)
                .order_by(EvalResultRow.id)
            ).all()
            return EvalRun(
                id=run.id,
                suite=run.suite,
                model=run.model,
                harness=run.harness,
                workers=run.workers,
                out_dir=run.out_dir,
                created_at=run.created_at,
                results=[TaskResult.model_validate(r, from_attributes=True) for r in results],
            )

    def list_runs(self, limit: int = 20) -> list[EvalRun]:
        with self._session() as db:
            rows = db.scalars(
                select(EvalRunRow).order_by(EvalRunRow.created_at.desc()).limit(limit)
            ).all()
            return [EvalRun.model_validate(r, from_attributes=True, context=None) for r in rows]
