"""Where background tasks and eval tasks run: threads in this process (default) or Ray workers."""

from __future__ import annotations

from spud.executors.base import Executor, WorkerLost

KINDS = ("in-process", "ray")

__all__ = ["KINDS", "Executor", "WorkerLost", "executor_for"]


def executor_for(kind: str, workers: int, address: str = "", name: str = "spud") -> Executor:
    """The executor a setting names: "in-process" (threads) or "ray" (a Ray cluster's workers).

    address: where the Ray cluster is ("" starts one on this machine, "auto" joins the one
    running here, "ray://host:10001" joins a remote one).
    """
    from spud.core.errors import ConfigError

    if kind == "in-process":
        from spud.executors.threads import ThreadExecutor

        return ThreadExecutor(workers, name)
    if kind == "ray":
        from spud.executors.ray import RayExecutor

        return RayExecutor(workers, address)
    raise ConfigError(f"unknown executor {kind!r}: use one of {', '.join(KINDS)}")
