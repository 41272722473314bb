"""The Ray executor: jobs on a pool of Ray worker processes, on this machine or a cluster."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from spud.executors.base import WorkerLost

T = TypeVar("T")
log = logging.getLogger(__name__)

PROBES_BEFORE_GIVING_UP = 3  # a worker that dies this often in a row while starting is dropped


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
        self._failed_probes: dict[str, int] = {}
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

    def _done(self, ref: Any) -> None:
        import ray
        from ray.exceptions import RayActorError

        if ref in self._probes:
            name = self._probes.pop(ref)
            try:
                self._where[name] = ray.get(ref)
            except RayActorError:
                self._failed_probes[name] = self._failed_probes.get(name, 0) + 1
                if self._failed_probes[name] < PROBES_BEFORE_GIVING_UP:
                    self._probe(name)
                else:
                    log.warning("Ray worker %s keeps dying as it starts; it is dropped", name)
                    self._actors.pop(name)
                return
            self._failed_probes.pop(name, None)
            self._idle.append(name)
            return
        if ref not in self._running:
            return  # shut down meanwhile
        name, future = self._running.pop(ref)
        try:
            value = ray.get(ref)
        except RayActorError:
            process = self._where.get(name, "unknown")
            self._probe(name)  # Ray restarts it; it takes jobs again once it answers
            future.set_exception(WorkerLost(name, process))
            return
        except Exception as exc:  # the job's own error, raised as its own type
            self._idle.append(name)
            future.set_exception(exc)
            return
        self._idle.append(name)
        future.set_result(value)
