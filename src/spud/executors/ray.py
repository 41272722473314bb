"""The Ray executor: jobs on a pool of Ray worker processes, on this machine or a cluster."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from spud.executors.base import WorkerLost

T = TypeVar("T")
log = logging.getLogger(__name__)

RESTART_PATIENCE_S = 300.0  # a worker that Ray cannot bring back within this is dropped
# On a busy machine Ray's agents start slowly, and Ray's defaults abort the node after 30 to 60 s
# (raylet: "Timed out waiting for file .../metrics_agent_port"); these wait longer.
PATIENCE = {
    "RAY_agent_register_timeout_ms": "600000",
    "RAY_raylet_start_wait_time_s": "180",
    "RAY_worker_register_timeout_seconds": "600",
}


class _Worker:
    """One Ray worker process (an actor): runs one job at a time; Ray restarts it if it dies."""

    def where(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def run(self, job: Callable[[], Any]) -> Any:
        return job()


class RayExecutor:
    """Jobs on `workers` Ray worker processes, each taking one job at a time, in order.

    A job runs in a worker process that keeps what it loaded (models, store connections) for
    the next job. When a worker process dies mid-job, the job's future fails with WorkerLost
    (the caller decides whether to run it again) and Ray starts a new process for that worker.
    address "" starts Ray on this machine (small: no dashboard, a small object store); any
    other address joins that cluster ("auto": the one running on this machine).
    """

    remote = True

    def __init__(
        self,
        workers: int,
        address: str = "",
        cpus_per_worker: float = 1.0,
        object_store_mb: int = 100,
    ) -> None:
        import ray

        self.workers = workers
        self._started = not ray.is_initialized()
        for name, value in PATIENCE.items():  # for the Ray processes this starts
            os.environ.setdefault(name, value)
        if self._started:
            options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(
                    num_cpus=max(1, round(workers * cpus_per_worker)),
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",  # a cluster of one machine stays on loopback
                    object_store_memory=object_store_mb * 1024 * 1024,
                    **options,
                )
        actor = ray.remote(num_cpus=cpus_per_worker, max_restarts=-1, max_task_retries=0)
        self._actors = {f"ray-worker-{i + 1}": actor(_Worker).remote() for i in range(workers)}
        self._where: dict[str, str] = {}  # worker -> "host:pid" of its current process
        self._idle: list[str] = []
        self._queue: deque[tuple[Callable[[], Any], Future[Any], str | None]] = deque()
        self._running: dict[Any, tuple[str, Future[Any]]] = {}  # ObjectRef -> worker, future
        self._probes: dict[Any, str] = {}  # ObjectRef of where() -> worker
        self._down_since: dict[str, float] = {}  # worker -> when it stopped answering
        self._ask_again: dict[str, float] = {}  # worker -> when to ask it where it runs again
        self._suspects: dict[str, tuple[Future[Any], str]] = {}  # worker -> its job, process
        self._changed = threading.Condition(threading.RLock())
        self._closed = False
        for name in self._actors:
            self._probe(name)
        self._loop = threading.Thread(target=self._dispatch, name="spud-ray", daemon=True)
        self._loop.start()

    def processes(self) -> dict[str, str]:
        """Each ready worker's current process, as "host:pid"."""
        with self._changed:
            return dict(self._where)

    def submit(self, job: Callable[[], T], prefer_not: str | None = None) -> Future[T]:
        future: Future[T] = Future()
        with self._changed:
            if self._closed:
                raise RuntimeError("the Ray executor is shut down")
            entry = (job, future, prefer_not)
            if prefer_not is None:
                self._queue.append(entry)
            else:  # a job whose worker died has waited longest: it goes first
                self._queue.appendleft(entry)
            self._changed.notify_all()
        return future

    def shutdown(self) -> None:
        """Cancel queued jobs, stop the workers (a running job dies: its future fails)."""
        import ray

        with self._changed:
            self._closed = True
            queued, self._queue = list(self._queue), deque()
            running, self._running = list(self._running.values()), {}
            running += [(name, job) for name, (job, _) in self._suspects.items()]
            self._suspects = {}
            self._changed.notify_all()
        for _job, future, _avoid in queued:
            future.cancel()
        for name, future in running:
            future.set_exception(RuntimeError(f"the Ray executor stopped; {name} was stopped"))
        for handle in self._actors.values():
            ray.kill(handle, no_restart=True)
        if self._started:
            ray.shutdown()

    # -- the dispatcher thread ------------------------------------------------------

    def _probe(self, name: str) -> None:
        """Ask a (new or restarted) worker where it runs; it takes jobs once it answers."""
        self._where.pop(name, None)
        self._probes[self._actors[name].where.remote()] = name

    def _dispatch(self) -> None:
        import ray

        while True:
            with self._changed:
                if self._closed:
                    return
                for name, when in list(self._ask_again.items()):
                    if when <= time.monotonic():
                        del self._ask_again[name]
                        self._probe(name)
                self._assign()
                waiting = [*self._running, *self._probes]
                if not waiting:
                    self._changed.wait(0.5)
                    continue
            ready, _ = ray.wait(waiting, num_returns=1, timeout=0.1)
            with self._changed:
                for ref in ready:
                    self._done(ref)

    def _assign(self) -> None:
        """Hand queued jobs to idle workers, in order; a job avoids the worker it names
        while another worker is there to take it."""
        for entry in list(self._queue):
            if not self._idle:
                return
            job, future, avoid = entry
            choices = [n for n in self._idle if n != avoid]
            if not choices and len(self._actors) == 1:
                choices = self._idle
            if not choices:
                continue  # wait for a worker other than the one that died under it
            name = choices[0]
            self._queue.remove(entry)
            if not future.set_running_or_notify_cancel():
                continue
            self._idle.remove(name)
            self._running[self._actors[name].run.remote(job)] = (name, future)

    def _judge(self, name: str, now: str) -> None:
        """A worker whose job failed for want of it answers again: from a new process (or
        never: now is ""), the process that ran the job died; from the same one, it was only
        out of reach and may have finished the job."""
        future, before = self._suspects.pop(name)
        if now != before:
            future.set_exception(WorkerLost(name, before))
        else:
            why = f"lost contact with {name} ({before}) while it ran a job; it may have ended it"
            future.set_exception(RuntimeError(why))

    def _done(self, ref: Any) -> None:
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError

        if ref in self._probes:
            name = self._probes.pop(ref)
            try:
                where = self._where[name] = ray.get(ref)
            except RayActorError as exc:
                down = time.monotonic() - self._down_since.setdefault(name, time.monotonic())
                if isinstance(exc, ActorUnavailableError) and down < RESTART_PATIENCE_S:
                    self._ask_again[name] = time.monotonic() + 0.5  # Ray is restarting it
                    return
                log.warning("Ray worker %s is gone (%s); it is dropped", name, exc)
                self._actors.pop(name)
                where = ""
            self._down_since.pop(name, None)
            if name in self._suspects:
                self._judge(name, where)
            if name in self._actors:
                self._idle.append(name)
            return
        if ref not in self._running:
            return  # shut down meanwhile
        name, future = self._running.pop(ref)
        try:
            value = ray.get(ref)
        except RayActorError:  # it died, or only cannot be reached: its next answer tells
            self._suspects[name] = (future, self._where.get(name, "unknown"))
            self._probe(name)  # a dead one is restarted by Ray and answers from a new process
            return
        except Exception as exc:  # the job's own error, raised as its own type
            self._idle.append(name)
            future.set_exception(exc)
            return
        self._idle.append(name)
        future.set_result(value)
