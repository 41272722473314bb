"""Background tasks: agents on a worker pool, live events, approvals over the API, resume."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from spud import toolsets
from spud.core.errors import ConfigError, ModelNotFound
from spud.core.messages import Message
from spud.executors import Executor, WorkerLost
from spud.executors.threads import ThreadExecutor
from spud.sandbox.policy import Policy
from spud.service.audit import AuditLog
from spud.service.claims import ACTIVE, TaskClaims
from spud.service.errors import Conflict, Forbidden, NotFound
from spud.service.modelpool import ModelPool
from spud.service.owned import OwnedSessions
from spud.service.sessions import SessionService
from spud.service.tables import ApprovalRow, TaskRow, UserRow
from spud.service.taskrun import Live, TaskRunner, WorkerConfig, run_on_worker
from spud.service.users import Principal
from spud.service.workspaces import Workspaces
from spud.store.models import utcnow

log = logging.getLogger(__name__)

MAX_LOST_WORKERS = 3  # a task whose workers die this often ends as an error (it kills them)


class TaskSpec(BaseModel):
    """What a task is: the prompt, where it works, which model and which approval policy."""

    prompt: str = Field(min_length=1, max_length=100_000)
    workspace: str = Field(default="default", max_length=500)
    model: str | None = Field(default=None, max_length=200)
    policy: Policy | None = None  # tightens the admin's policy (or Spud's default); never loosens
    auto_approve: bool = False  # approve what the policy would ask about (never what it denies)
    tools: list[str] = Field(default_factory=list, max_length=4)  # extra sets: office, browser, …
    max_steps: int | None = Field(default=None, ge=1, le=500)


class TaskInfo(BaseModel):
    """A task as the API shows it."""

    id: str
    session_id: str | None
    prompt: str
    workspace: str
    model: str
    status: str
    summary: str
    steps: int
    user: str
    created_at: datetime
    updated_at: datetime


class ApprovalInfo(BaseModel):
    """A tool call that waits for a person (or did)."""

    id: str
    task_id: str
    call_id: str
    tool: str
    arguments: dict[str, Any]
    reason: str
    status: str  # pending | allow | deny | expired
    created_at: datetime
    decided_at: datetime | None


class TaskEvent(BaseModel):
    """One live event: step, tool_call, result, user, approval, approval_decided, finish."""

    id: str
    event: str
    data: dict[str, Any]


class TaskService:
    """Creates, runs, cancels and reports tasks; each task runs wholly on one worker: a thread
    of this process, or with a remote executor (Ray) a worker process sharing the store."""

    def __init__(
        self,
        sessions: SessionService,
        pool: ModelPool,
        workspaces: Workspaces,
        audit: AuditLog,
        workers: int = 4,
        approval_timeout_s: float = 600.0,
        executor: Executor | None = None,
    ) -> None:
        self.sessions = sessions
        self.pool = pool
        self.workspaces = workspaces
        self.audit = audit
        self.approval_timeout_s = approval_timeout_s
        self.owned = OwnedSessions(sessions.store)
        self.claims = TaskClaims(sessions.store.engine)  # other servers may share the store
        self._db = sessionmaker(sessions.store.engine, expire_on_commit=False)
        self.executor = executor or ThreadExecutor(workers, "spud-task")
        self.runner = TaskRunner(
            sessions, pool, workspaces, audit, approval_timeout_s, on_change=self._bump
        )
        self._live: dict[str, Live] = {}
        self._lost: dict[str, int] = {}  # task -> workers that died under it
        self._versions: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    # -- the API ----------------------------------------------------------------------

    def create(self, who: Principal, spec: TaskSpec) -> TaskInfo:
        """Check the spec, store the task and queue it; it runs in the background."""
        require_write(who)
        if not spec.prompt.strip():
            raise ConfigError("the prompt is empty: say what Spud should do")
        model = spec.model or self.sessions.catalog.default(who.org_id)
        if model not in self.pool.names():
            offered = ", ".join(self.pool.names())
            raise ModelNotFound(f"unknown model {model!r}: use one of {offered}")
        toolsets.check(spec.tools)  # an unknown set is a clear error
        workspace, pin = self._pin_workspace(who, spec.workspace)
        ceiling = self.sessions.default_policy()  # the admin's policy file, or Spud's default
        policy = spec.policy.under(ceiling) if spec.policy else ceiling  # it can only tighten
        meta = {"auto_approve": spec.auto_approve, "max_steps": spec.max_steps}
        row = TaskRow(
            org_id=who.org_id,
            user_id=who.user_id,
            prompt=spec.prompt,
            workspace=str(workspace),
            workspace_pin=pin,
            model=model,
            policy=policy.model_dump_json(),
            tools=json.dumps({"sets": spec.tools, **meta}),
        )
        with self._db.begin() as db:
            db.add(row)
        self._recheck_nesting(who, spec.workspace, row.id)  # a task made at the same moment
        self._submit(row.id)
        return self.get(who, row.id)

    def list(self, who: Principal, limit: int = 50) -> list[TaskInfo]:
        query = (
            select(TaskRow)
            .where(TaskRow.org_id == who.org_id)
            .order_by(TaskRow.created_at.desc())
            .limit(limit)
        )
        with self._db() as db:
            rows = list(db.scalars(query))
        return [self._info(r) for r in rows]

    def get(self, who: Principal, task_id: str) -> TaskInfo:
        return self._info(self._row(who, task_id))

    def cancel(self, who: Principal, task_id: str) -> TaskInfo:
        """Stop a queued or running task at its next step (or approval wait)."""
        require_write(who)
        row = self._row(who, task_id)
        if row.status not in ACTIVE:
            raise Conflict(f"task {task_id} is already {row.status}")
        with self._lock:
            live = self._live.get(task_id)
        if live is None:  # not picked up by a worker (e.g. queued before a restart)
            self.runner.set_status(task_id, "cancelled", "cancelled before it ran")
        elif self.executor.remote:  # its worker is another process: it reads this in the store
            self.runner.set_status(task_id, "cancelled", "cancelled by a user")
        if live is not None:
            live.cancel()
        return self.get(who, task_id)

    def approvals(self, who: Principal, task_id: str) -> list[ApprovalInfo]:
        self._row(who, task_id)
        query = select(ApprovalRow).where(ApprovalRow.task_id == task_id)
        with self._db() as db:
            return [_approval(r) for r in db.scalars(query.order_by(ApprovalRow.created_at))]

    def decide(
        self, who: Principal, approval_id: str, decision: Literal["allow", "deny"]
    ) -> ApprovalInfo:
        """Answer a pending approval; the waiting worker goes on at once."""
        require_write(who)
        with self._db.begin() as db:
            found = db.execute(
                select(ApprovalRow, TaskRow.org_id)
                .join(TaskRow, TaskRow.id == ApprovalRow.task_id)
                .where(ApprovalRow.id == approval_id)
            ).first()
            if found is None or found[1] != who.org_id:
                raise NotFound(f"no approval {approval_id!r}")
            change = (
                update(ApprovalRow)
                .where(ApprovalRow.id == approval_id, ApprovalRow.status == "pending")
                .values(status=decision, decided_by=who.user_id, decided_at=utcnow())
            )
            if db.execute(change).rowcount == 0:
                raise Conflict(f"approval {approval_id} is already {found[0].status}")
            task_id = found[0].task_id
        with self._lock:
            live = self._live.get(task_id)
            waiter = live.waiters.get(approval_id) if live else None
        if waiter is not None:
            waiter.set()
        self._bump(task_id)
        with self._db() as db:
            return _approval(db.get(ApprovalRow, approval_id))

    def version(self, task_id: str) -> int:
        """A counter that moves whenever the task has something new to show."""
        return self._versions.get(task_id, 0)

    def events(
        self, who: Principal, task_id: str, after: int, approvals_seen: dict[str, str]
    ) -> tuple[list[TaskEvent], int, bool]:
        """Events since message index `after`; returns them, the next index and whether done.

        approvals_seen (approval id -> status) is updated, so each approval change is sent once.
        """
        row = self._row(who, task_id)
        events: list[TaskEvent] = []
        next_idx = after
        if row.session_id:
            workspace = self.workspaces.relative(row.org_id, row.workspace)
            for idx, message in self._messages_from(row.session_id, after):
                for event in message_events(idx, message):
                    if "image" in event.data:  # where /api/files/download finds it
                        event.data["image_file"] = f"{workspace}/{event.data['image']}"
                    events.append(event)
                next_idx = idx + 1
        for approval in self.approvals(who, task_id):
            if approvals_seen.get(approval.id) == approval.status:
                continue
            kind = "approval" if approval.status == "pending" else "approval_decided"
            approvals_seen[approval.id] = approval.status
            events.append(
                TaskEvent(id=str(next_idx - 1), event=kind, data=approval.model_dump(mode="json"))
            )
        done = row.status not in ACTIVE
        if done:
            info = self._info(row)
            events.append(
                TaskEvent(
                    id=str(next_idx - 1),
                    event="finish",
                    data={"status": info.status, "summary": info.summary, "steps": info.steps},
                )
            )
        return events, next_idx, done

    def resume_unfinished(self) -> list[str]:
        """After a restart: expire old approval waits and queue every unfinished task again."""
        self.claims.release_dead()  # a worker on this host that was killed holds its tasks still
        with self._db.begin() as db:
            db.execute(
                update(ApprovalRow)
                .where(ApprovalRow.status == "pending")
                .values(status="expired", decided_at=utcnow())
            )
            ids = list(
                db.scalars(
                    select(TaskRow.id)
                    .where(TaskRow.status.in_(ACTIVE))
                    .order_by(TaskRow.created_at)
                )
            )
        for task_id in ids:
            self._submit(task_id)
        return ids

    def shutdown(self) -> None:
        """Stop taking work; running tasks stop at their next step and resume on restart."""
        self._stopping.set()
        with self._lock:
            lives = list(self._live.values())
        for live in lives:
            live.wake()
        self.executor.shutdown()

    # -- the worker -------------------------------------------------------------------

    def _submit(self, task_id: str, prefer_not: str | None = None) -> None:
        with self._lock:
            if task_id in self._live:
                return
            self._live[task_id] = Live(self._stopping.is_set)
        if not self.executor.remote:
            self.executor.submit(partial(self._run, task_id))
            return
        job = partial(run_on_worker, self._worker_config(), task_id)
        future = self.executor.submit(job, prefer_not)
        future.add_done_callback(partial(self._ran_elsewhere, task_id))

    def _run(self, task_id: str) -> None:
        """Start or resume one task on this process's thread; everything it opens lives and
        dies on this thread."""
        try:
            self.runner.run(task_id, self.claims, self._live[task_id])
        finally:
            with self._lock:
                self._live.pop(task_id, None)

    def _holder(self, task_id: str) -> str | None:
        with self._db() as db:
            return db.scalar(select(TaskRow.worker).where(TaskRow.id == task_id))

    def _worker_config(self) -> WorkerConfig:
        return WorkerConfig(
            settings=self.sessions.settings,
            extra_models=tuple(self.pool.extra),
            model_delay_s=self.pool.delay_s,
            approval_timeout_s=self.approval_timeout_s,
        )

    def _ran_elsewhere(self, task_id: str, future: Future[dict[str, str]]) -> None:
        """A task's job on another process ended. When its worker died mid-task, the dead
        worker's claim is freed and the task goes to another worker, which resumes it from
        its last stored step."""
        with self._lock:
            self._live.pop(task_id, None)
        self._bump(task_id)
        if future.cancelled() or self._stopping.is_set():
            return
        error = future.exception()
        if isinstance(error, WorkerLost):
            self.claims.release_lost(task_id, error.process)
            self._lost[task_id] = lost = self._lost.get(task_id, 0) + 1
            log.warning("task %s: %s (%d so far)", task_id, error, lost)
            if lost < MAX_LOST_WORKERS:
                self._submit(task_id, prefer_not=error.worker)
                return
            summary = f"its worker died {lost} times (the last: {error.process})"
        elif error is not None and self._holder(task_id) is None:  # e.g. no store there
            summary = f"the worker failed: {type(error).__name__}: {error}"
        else:  # it ended (the worker recorded how), or a worker still holds it
            return
        self.runner.set_status(task_id, "error", summary)

    def _pin_workspace(self, who: Principal, name: str) -> tuple[Path, str]:
        """A new task's workspace: no '.', not inside or around another; made and pinned."""
        self._check_nesting(who, name)
        return self.workspaces.pin(who.org_id, name)

    def _check_nesting(self, who: Principal, name: str, task_id: str | None = None) -> None:
        query = select(TaskRow.workspace).where(TaskRow.org_id == who.org_id)
        if task_id is not None:
            query = query.where(TaskRow.id != task_id)
        with self._db() as db:
            others = list(db.scalars(query.distinct()))
        clash = self.workspaces.nested(who.org_id, name, others)
        if clash is not None:
            raise ConfigError(
                f"workspace {name!r} would overlap the workspace {clash!r} (one inside the "
                "other): a task could then change the other's files; use a separate folder"
            )

    def _recheck_nesting(self, who: Principal, name: str, task_id: str) -> None:
        """Checked again once stored: of two overlapping tasks made at once, one (or both) is
        refused and removed, never both kept."""
        try:
            self._check_nesting(who, name, task_id)
        except ConfigError:
            with self._db.begin() as db:
                db.delete(db.get(TaskRow, task_id))
            raise

    # -- helpers ----------------------------------------------------------------------

    def _bump(self, task_id: str) -> None:
        self._versions[task_id] = self._versions.get(task_id, 0) + 1

    def _row(self, who: Principal, task_id: str) -> TaskRow:
        with self._db() as db:
            row = db.get(TaskRow, task_id)
        if row is None or row.org_id != who.org_id:
            raise NotFound(f"no task {task_id!r}")
        return row

    def _info(self, row: TaskRow) -> TaskInfo:
        steps = self.sessions.session(row.session_id).steps if row.session_id else 0
        with self._db() as db:
            user = db.get(UserRow, row.user_id)
        return TaskInfo(
            id=row.id,
            session_id=row.session_id,
            prompt=row.prompt,
            workspace=self.workspaces.relative(row.org_id, row.workspace),
            model=row.model,
            status=row.status,
            summary=row.summary,
            steps=steps,
            user=user.username if user else "",
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def _messages_from(self, session_id: str, after: int) -> list[tuple[int, Message]]:
        from spud.store.models import MessageRow

        query = (
            select(MessageRow.idx, MessageRow.data)
            .where(MessageRow.session_id == session_id, MessageRow.idx >= after)
            .order_by(MessageRow.idx)
        )
        with self._db() as db:
            return [(i, Message.model_validate_json(d)) for i, d in db.execute(query)]


def require_write(who: Principal) -> None:
    if not who.can_write:
        raise Forbidden(f"{who.username} is a viewer: viewers can read but not change anything")


def message_events(idx: int, m: Message) -> list[TaskEvent]:
    """How one stored message is shown live: a step and its tool calls, a result, a user turn."""
    eid = str(idx)
    if m.role == "assistant":
        step = {
            "index": idx,
            "content": m.content,
            "kind": m.kind,
            "raw": m.meta.get("raw", "") if m.kind == "format_error" else "",
            "tool_calls": [c.model_dump() for c in m.tool_calls],
            "usage": m.meta.get("usage", {}),
        }
        events = [TaskEvent(id=eid, event="step", data=step)]
        events += [
            TaskEvent(id=eid, event="tool_call", data={"index": idx, **c.model_dump()})
            for c in m.tool_calls
        ]
        return events
    if m.role == "tool":
        keep = ("ok", "kind", "approval", "diff", "image", "exit_code", "timed_out", "repeated")
        data = {
            "index": idx,
            "tool_call_id": m.tool_call_id,
            "name": m.name,
            "output": m.content,
            "untrusted": m.untrusted,
            **{k: m.meta[k] for k in keep if k in m.meta},
        }
        return [TaskEvent(id=eid, event="result", data=data)]
    if m.role == "user":
        return [
            TaskEvent(
                id=eid, event="user", data={"index": idx, "content": m.content, "kind": m.kind}
            )
        ]
    return []


def _approval(row: ApprovalRow) -> ApprovalInfo:
    return ApprovalInfo(
        id=row.id,
        task_id=row.task_id,
        call_id=row.call_id,
        tool=row.tool,
        arguments=json.loads(row.arguments),
        reason=row.reason,
        status=row.status,
        created_at=row.created_at,
        decided_at=row.decided_at,
    )
