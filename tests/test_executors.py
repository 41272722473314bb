"""The executor protocol without Ray: eval tasks sent to other processes (as a remote executor
sends them: pickled jobs, each worker building its own service) give the in-process results."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from test_eval import HELLO_OK, SUITE, VERSION_BAD, recordings

from spud.config import Settings
from spud.core.errors import ConfigError
from spud.eval.runner import run_suite
from spud.eval.suite import load_suite
from spud.executors import executor_for
from spud.service.sessions import SessionService

T = TypeVar("T")


class OtherProcesses:
    """A remote executor in miniature: jobs are pickled to worker processes (no Ray)."""

    remote = True

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = ProcessPoolExecutor(max_workers=workers)

    def submit(self, job: Callable[[], T], prefer_not: str | None = None) -> Future[T]:
        return self._pool.submit(job)

    def shutdown(self) -> None:
        self._pool.shutdown()


@pytest.mark.databases  # the workers share the store: a SQLite file or a PostgreSQL
def test_eval_tasks_in_other_processes_give_the_in_process_results(tmp_path: Path, db_url: str):
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "basics.toml").write_text(SUITE)
    suite = load_suite(str(folder))
    model = recordings(tmp_path / "rec", {"hello": HELLO_OK, "version": VERSION_BAD})
    service = SessionService(Settings(home=tmp_path / "home", db_url=db_url))
    outcomes = []
    for executor in (None, OtherProcesses(1)):
        out = tmp_path / f"out-{len(outcomes)}"
        run = run_suite(
            service,
            suite,
            suite_name="basics",
            model=model,
            harness="spud",
            workers=1,
            out_dir=out,
            executor=executor,
        )
        if executor is not None:
            executor.shutdown()
        keep = ("passed", "status", "detail", "steps", "tokens", "calls", "valid_calls")
        outcomes.append({r.task_id: {k: getattr(r, k) for k in keep} for r in run.results})
        assert (out / "workspaces" / "hello" / "hello.txt").read_text() == "hi"
    assert outcomes[0] == outcomes[1]
    assert outcomes[0]["hello"]["passed"] and not outcomes[0]["version"]["passed"]


def test_an_unknown_executor_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown executor 'dask'.*in-process, ray"):
        executor_for("dask", 2)
