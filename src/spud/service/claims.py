"""Task claims: a task runs on one worker; the claim is taken atomically and freed when it ends."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import sessionmaker

from spud.service.tables import TaskRow

ACTIVE = ("queued", "running", "waiting")  # a task in one of these is not finished


def _started(pid: int) -> str:
    """When a process started (clock ticks since boot), '' if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name before it may hold spaces


def worker_id() -> str:
    """A new worker name: host, pid and start time (pids are reused), and a nonce."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_started(pid)}:{uuid.uuid4().hex[:8]}"


def gone(worker: str) -> bool:
    """Whether a worker is known dead: on this host, its process has ended.

    A worker on another host is never presumed dead here; its claims are freed when it stops,
    or when a worker on its own host starts again (release_dead).
    """
    parts = worker.rsplit(":", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return False
    host, pid, started, _nonce = parts
    return host == socket.gethostname() and _started(int(pid)) != started


class TaskClaims:
    """Claims on tasks in the shared store, so that two workers never run the same task.

    PostgreSQL: the task row is locked with SELECT … FOR UPDATE SKIP LOCKED (a claimer that finds
    it locked by another claimer gives up at once) and then marked. SQLite: one UPDATE … WHERE
    worker IS NULL, which SQLite's single writer makes atomic.
    """

    def __init__(self, engine: Engine, worker: str | None = None) -> None:
        self.worker = worker or worker_id()
        self.postgres = engine.dialect.name == "postgresql"
        self._db = sessionmaker(engine)

    def claim(self, task_id: str) -> bool:
        """Take an unfinished task for this worker; False if it is finished, or another worker
        holds it (or is claiming it)."""
        unfinished = (TaskRow.id == task_id, TaskRow.status.in_(ACTIVE))
        with self._db.begin() as db:
            if self.postgres:
                locked = db.execute(
                    select(TaskRow.worker).where(*unfinished).with_for_update(skip_locked=True)
                ).first()
                if locked is None or locked.worker not in (None, self.worker):
                    return False
            free = TaskRow.worker.is_(None) | (TaskRow.worker == self.worker)
            change = update(TaskRow).where(*unfinished, free).values(worker=self.worker)
            return db.execute(change).rowcount == 1

    def release(self, task_id: str) -> None:
        """Free this worker's claim on the task."""
        with self._db.begin() as db:
            db.execute(
                update(TaskRow)
                .where(TaskRow.id == task_id, TaskRow.worker == self.worker)
                .values(worker=None)
            )

    def release_lost(self, task_id: str, process: str) -> bool:
        """Free a task's claim held by a worker process known to have died ("host:pid", as a
        Ray executor reports it, on any host); False if that process did not hold it."""
        with self._db.begin() as db:
            change = update(TaskRow).where(
                TaskRow.id == task_id, TaskRow.worker.startswith(f"{process}:", autoescape=True)
            )
            return db.execute(change.values(worker=None)).rowcount == 1

    def release_dead(self) -> list[str]:
        """Free the claims of workers known dead (see gone); returns those workers."""
        with self._db() as db:  # read, then write apart: SQLite refuses a read turned write
            holders = db.scalars(
                select(TaskRow.worker).where(TaskRow.worker.is_not(None)).distinct()
            )
            dead = sorted(w for w in holders if w != self.worker and gone(w))
        if dead:
            with self._db.begin() as db:
                db.execute(update(TaskRow).where(TaskRow.worker.in_(dead)).values(worker=None))
        return dead
