"""One task run on a worker: claimed, its workspace opened, its session run or resumed, recorded.

The same path runs on the server's threads and in a Ray worker process (run_on_worker).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Update, select, update
from sqlalchemy.orm import sessionmaker

from spud.config import Settings
from spud.core.agent import Limits
from spud.core.errors import SpudError
from spud.core.messages import ToolCall
from spud.sandbox.policy import Policy
from spud.service.audit import AuditLog
from spud.service.claims import ACTIVE, TaskClaims
from spud.service.modelpool import CancellableModel, Cancelled, ModelPool
from spud.service.owned import OwnedSessions
from spud.service.sessions import RunSpec, SessionService
from spud.service.tables import ApprovalRow, TaskRow
from spud.service.workspaces import PinnedWorkspace, Workspaces
from spud.store.models import utcnow

log = logging.getLogger(__name__)

DECISION_POLL_S = 0.5  # how often a waiting worker looks for an answer given elsewhere


class Live:
    """What the worker running a task shares with whoever may stop it or answer its questions.

    In the server's own threads the API sets `cancelled` and wakes the waiters directly; a
    worker in another process also looks in the store (in_store), where the API records a
    cancel and every approval's answer.
    """

    def __init__(
        self,
        stopping: Callable[[], bool] = lambda: False,
        cancelled_in_store: Callable[[], bool] | None = None,
    ) -> None:
        self.cancelled = threading.Event()
        self.waiters: dict[str, threading.Event] = {}
        self.stopping = stopping
        self.cancelled_in_store = cancelled_in_store

    def cancel(self) -> None:
        self.cancelled.set()
        self.wake()

    def wake(self) -> None:
        for waiter in list(self.waiters.values()):
            waiter.set()

    def is_cancelled(self) -> bool:
        if self.cancelled.is_set():
            return True
        if self.cancelled_in_store is not None and self.cancelled_in_store():
            self.cancelled.set()
            return True
        return False

    def stops(self) -> bool:
        return self.is_cancelled() or self.stopping()


def _status_change(task_id: str, status: str, summary: str | None = None) -> Update:
    """The update that records a status, unless the task already ended (e.g. was cancelled)."""
    values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
    if summary is not None:
        values["summary"] = summary
    return update(TaskRow).where(TaskRow.id == task_id, TaskRow.status.in_(ACTIVE)).values(values)


class TaskRunner:
    """Runs stored tasks to their end; every status change goes to the store (and on_change)."""

    def __init__(
        self,
        sessions: SessionService,
        pool: ModelPool,
        workspaces: Workspaces,
        audit: AuditLog,
        approval_timeout_s: float = 600.0,
        on_change: Callable[[str], None] = lambda task_id: None,
    ) -> None:
        self.sessions = sessions
        self.pool = pool
        self.workspaces = workspaces
        self.audit = audit
        self.approval_timeout_s = approval_timeout_s
        self.on_change = on_change
        self.owned = OwnedSessions(sessions.store)
        self._db = sessionmaker(sessions.store.engine, expire_on_commit=False)

    def run(self, task_id: str, claims: TaskClaims, live: Live) -> str:
        """Start or resume one task as the claims' worker; its final status, or "" when
        another worker holds it or it stays unfinished (the server is stopping)."""
        if not claims.claim(task_id):  # another worker runs it
            return ""
        with self._db() as db:
            row = db.get(TaskRow, task_id)
        pinned = None
        status, summary = "error", ""
        try:
            if live.is_cancelled():
                raise Cancelled()
            options = json.loads(row.tools)
            model = CancellableModel(self.pool.get(row.model), live.stops)
            pinned = self.open_workspace(row)  # held open (pinned.fd) while the task runs
            spec = RunSpec(
                workspace=pinned.path,
                workspace_fd=pinned.fd,
                task=row.prompt,
                model=model,
                toolsets=options["sets"],
                policy=Policy.model_validate_json(row.policy),
                ask=lambda call, why: self._ask(task_id, live, call, why),
                auto_approve=options["auto_approve"],
                limits=self._limits(options["max_steps"]),
                user_id=row.user_id,  # memory is per user and organisation
                org_id=row.org_id,
                on_message=lambda m: self.on_change(task_id),
                on_session=lambda session_id: self._started(row, session_id),
            )
            if row.session_id is None:
                result = self.sessions.execute(spec)
            else:
                self.set_status(task_id, "running")
                result = self.sessions.resume(row.session_id, spec)
            status, summary = result.status, result.summary
        except Cancelled:
            if live.is_cancelled():
                status, summary = "cancelled", "cancelled by a user"
                with self._db() as db:
                    session_id = db.get(TaskRow, task_id).session_id
                if session_id:
                    self.sessions.store.update_session(session_id, status=status, summary=summary)
            else:  # the server is stopping: the task stays unfinished and resumes on restart
                status = ""
        except SpudError as exc:
            summary = str(exc)
        except Exception as exc:  # a bug must not kill the worker; the task says what happened
            log.exception("task %s failed", task_id)
            summary = f"{type(exc).__name__}: {exc}"
        finally:
            if pinned is not None:
                pinned.close()
            if status:
                self.set_status(task_id, status, summary)
                self.audit.record(
                    "spud",
                    f"task.{status}",
                    org_id=row.org_id,
                    target=task_id,
                    detail=summary[:500],
                )
            claims.release(task_id)
        return status

    def set_status(self, task_id: str, status: str, summary: str | None = None) -> None:
        """Record a status; a task already ended (e.g. cancelled by a user) keeps its own."""
        with self._db.begin() as db:
            db.execute(_status_change(task_id, status, summary))
        self.on_change(task_id)

    def status(self, task_id: str) -> str:
        with self._db() as db:
            return db.scalar(select(TaskRow.status).where(TaskRow.id == task_id)) or ""

    def open_workspace(self, row: TaskRow) -> PinnedWorkspace:
        """The task's workspace as pinned at creation; WorkspaceChanged (no run) if not."""
        pinned = self.workspaces.open_pinned(row.org_id, row.workspace, row.workspace_pin)
        if row.workspace_pin is None:  # a task stored before pinning: pin it now
            with self._db.begin() as db:
                db.get(TaskRow, row.id).workspace_pin = pinned.identity
        return pinned

    def _started(self, row: TaskRow, session_id: str) -> None:
        """A new task's session exists: own it, link it, and show the task running."""
        self.owned.own(session_id, row.org_id, row.user_id, "task")
        with self._db.begin() as db:
            db.get(TaskRow, row.id).session_id = session_id
        self.set_status(row.id, "running")

    def _limits(self, max_steps: int | None) -> Limits | None:
        if not max_steps:
            return None
        return self.sessions.settings.limits.model_copy(update={"max_steps": max_steps})

    def _ask(self, task_id: str, live: Live, call: ToolCall, why: str) -> bool:
        """The Approver's question: store it, wait for an answer over the API (or time out)."""
        row = ApprovalRow(
            task_id=task_id,
            call_id=call.id,
            tool=call.name,
            arguments=json.dumps(call.arguments),
            reason=why,
        )
        waiter = threading.Event()
        with self._db.begin() as db:  # one commit: no one sees the question on a running task
            db.add(row)
            db.execute(_status_change(task_id, "waiting"))
        live.waiters[row.id] = waiter
        self.on_change(task_id)
        try:
            deadline = time.monotonic() + self.approval_timeout_s
            # woken at once in this process; an answer given through another process is read
            # from the store
            while not self._decided(row.id) and not live.stops():
                left = deadline - time.monotonic()
                if left <= 0 or waiter.wait(min(left, DECISION_POLL_S)):
                    break
            self._expire(row.id)  # unless it was answered: timed out, cancelled or stopping
            if live.stops():
                raise Cancelled()
            with self._db() as db:
                decision = db.get(ApprovalRow, row.id).status
            return decision == "allow"
        finally:
            live.waiters.pop(row.id, None)
            if not live.stops():
                self.set_status(task_id, "running")

    def _decided(self, approval_id: str) -> bool:
        with self._db() as db:
            return db.get(ApprovalRow, approval_id).status != "pending"

    def _expire(self, approval_id: str) -> None:
        change = (
            update(ApprovalRow)
            .where(ApprovalRow.id == approval_id, ApprovalRow.status == "pending")
            .values(status="expired", decided_at=utcnow())
        )
        with self._db.begin() as db:
            db.execute(change)


# -- on a worker in another process (the Ray executor) -------------------------------------


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker process needs to run the server's tasks: the same settings (so the same
    store and workspace root) and the server's model options."""

    settings: Settings
    extra_models: tuple[str, ...] = ()
    model_delay_s: float = 0.0
    approval_timeout_s: float = 600.0

    def identity(self) -> str:
        return self.settings.model_dump_json() + json.dumps(
            [self.extra_models, self.model_delay_s, self.approval_timeout_s]
        )


_runners: dict[str, tuple[TaskRunner, TaskClaims]] = {}
_runners_lock = threading.Lock()


def run_on_worker(config: WorkerConfig, task_id: str) -> dict[str, str]:
    """A worker process's job: run one task from the shared store, claimed as this process.

    What it builds (store, models) is kept for the next task with the same configuration.
    Returns the task's final status ("" if another worker holds it) and "host:pid".
    """
    with _runners_lock:
        key = config.identity()
        if key not in _runners:
            sessions = SessionService(config.settings)
            runner = TaskRunner(
                sessions,
                ModelPool(config.settings, list(config.extra_models), config.model_delay_s),
                Workspaces(config.settings.home),
                AuditLog(sessions.store),
                config.approval_timeout_s,
            )
            _runners[key] = (runner, TaskClaims(sessions.store.engine))
        runner, claims = _runners[key]
    live = Live(cancelled_in_store=lambda: runner.status(task_id) == "cancelled")
    status = runner.run(task_id, claims, live)
    return {"status": status, "process": f"{socket.gethostname()}:{os.getpid()}"}
