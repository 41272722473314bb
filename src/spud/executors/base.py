"""The Executor protocol: jobs in, futures out; a job whose worker died fails with WorkerLost."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol, TypeVar

T = TypeVar("T")


class WorkerLost(Exception):
    """The worker process running a job died (killed, out of memory, its machine gone).

    worker names the worker in the executor (a job given prefer_not=worker goes elsewhere when
    it can); process is "host:pid" of the process that died, as claims record it.
    """

    def __init__(self, worker: str, process: str) -> None:
        super().__init__(f"worker {worker} ({process}) died while running a job")
        self.worker = worker
        self.process = process


class Executor(Protocol):
    """Runs jobs on workers. remote: jobs run in other processes, so a job must be picklable
    (a module-level function with picklable arguments, e.g. functools.partial) and share
    nothing with the caller but what it is given and the store."""

    remote: bool
    workers: int

    def submit(self, job: Callable[[], T], prefer_not: str | None = None) -> Future[T]:
        """Queue a job; prefer_not names a worker to avoid when another can take it."""
        ...

    def shutdown(self) -> None:
        """Stop taking jobs; queued ones are cancelled, running ones left to end or die."""
        ...
