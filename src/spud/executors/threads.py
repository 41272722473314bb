"""The in-process executor: a thread pool in this process (the default)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class ThreadExecutor:
    """Jobs on `workers` threads of this process; they share its memory (models, store)."""

    remote = False

    def __init__(self, workers: int, name: str = "spud") -> None:
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    def submit(self, job: Callable[[], T], prefer_not: str | None = None) -> Future[T]:
        return self._pool.submit(job)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
