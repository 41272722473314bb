"""Runs a suite: each task in a fresh workspace, up to N at once (threads or Ray workers)."""

from __future__ import annotations

import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from spud.config import Settings
from spud.core.errors import ConfigError, SpudError
from spud.core.messages import Message
from spud.core.protocols import Model
from spud.eval.bfcl import BfclCase, follow_ups_for, messages_for, run_case
from spud.eval.checks import CheckContext, run_checks, site_log
from spud.eval.harness import agent_harness, model_for, playbook_for
from spud.eval.records import EvalRun, EvalStore, TaskResult
from spud.eval.site import serve
from spud.eval.suite import Suite, Task
from spud.executors import Executor, WorkerLost
from spud.executors.threads import ThreadExecutor
from spud.service.effort import candidates_for, execute_with_effort
from spud.service.sessions import RunSpec, SessionService

OnResult = Callable[[TaskResult], None]
MAX_LOST_WORKERS = 3  # an eval task whose workers die this often is recorded as an error


class Models:
    """One model per worker (llama.cpp is not thread-safe); replay folders give one per task."""

    def __init__(self, service: SessionService, name: str, harness: str, answers: bool) -> None:
        self.service, self.name, self.harness, self.answers = service, name, harness, answers
        self._idle: queue.Queue[Model] = queue.Queue()
        self._lock = threading.Lock()
        self.replay_dir = _replay_dir(name)

    def check(self, task_ids: list[str]) -> None:
        """A replay folder must hold a recording for every task, before anything runs."""
        if self.replay_dir is None:
            return
        missing = [t for t in task_ids if not (self.replay_dir / f"{t}.json").is_file()]
        if missing:
            raise ConfigError(
                f"replay folder {self.replay_dir} has no recording for: {', '.join(missing)}"
            )

    @contextmanager
    def take(self, task_id: str) -> Iterator[Model]:
        if self.replay_dir is not None:
            from spud.models.replay import ReplayModel

            yield ReplayModel.from_file(self.replay_dir / f"{task_id}.json")
            return
        try:
            model = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:  # load one at a time: loading is memory- and disk-heavy
                model = model_for(self.name, self.harness, self.service.settings, self.answers)
        forget = getattr(model, "forget", None)  # a task's replies do not hang on the one before
        if forget is not None:
            forget()
        try:
            yield model
        finally:
            self._idle.put(model)


def _replay_dir(name: str) -> Path | None:
    if not name.startswith("replay:"):
        return None
    path = Path(name.removeprefix("replay:")).expanduser()
    return path if path.is_dir() else None


def run_suite(
    service: SessionService,
    suite: Suite | list[BfclCase],
    *,
    suite_name: str,
    model: str,
    harness: str,
    workers: int,
    out_dir: Path,
    on_result: OnResult = lambda r: None,
    effort: str | None = None,
    executor: Executor | None = None,
) -> EvalRun:
    """Run every task (or BFCL case), store each result as it comes, return the whole run.

    effort (default: the settings') is how many candidate runs a task whose checks fail gets.
    executor (default: `workers` threads here) runs the tasks; a remote one (Ray) runs each on
    a worker process with the same settings, so the same store, and the same job.
    """
    bfcl = isinstance(suite, list)
    models = Models(service, model, harness, answers=bfcl)
    items: list[Any] = suite if bfcl else suite.tasks
    models.check([item.id for item in items])
    evals = EvalStore(service.store)
    out_dir.mkdir(parents=True, exist_ok=True)
    effort = effort or service.settings.effort
    candidates_for(effort)  # an unknown effort is an error before anything runs
    label = harness if bfcl or effort == "low" else f"{harness}@{effort}"
    run_id = evals.create_run(suite_name, model, label, workers, str(out_dir))
    own = executor is None
    executor = executor or ThreadExecutor(max(1, workers), "spud-eval")
    if executor.remote:  # each worker process builds its own service and models from this
        replay = models.replay_dir
        work = EvalWork(
            settings=service.settings,
            model=f"replay:{replay.resolve()}" if replay is not None else model,
            harness=harness,
            effort=effort,
            root=(out_dir / "workspaces").resolve(),
            suite=None if bfcl else suite,
        )
        job: Callable[[Any], TaskResult] = partial(run_on_worker, work)
    elif bfcl:
        job = partial(_bfcl_job, service, models)
    else:
        root = out_dir / "workspaces"
        job = partial(_task_job, service, models, suite, root, harness, effort)
    pending: dict[Future[TaskResult], tuple[Any, int]] = {
        executor.submit(partial(job, item)): (item, 0) for item in items
    }
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                item, lost = pending.pop(future)
                error = future.exception()
                if isinstance(error, WorkerLost) and lost + 1 < MAX_LOST_WORKERS:
                    # its worker died: run it again, from a fresh workspace, on another worker
                    pending[executor.submit(partial(job, item), error.worker)] = (item, lost + 1)
                    continue
                if isinstance(error, SpudError):
                    raise error
                result = future.result() if error is None else _error_result(item, error)
                evals.add_result(run_id, result)
                on_result(result)
    finally:
        if own:
            executor.shutdown()
    return evals.get_run(run_id)


def _error_result(item: Any, error: BaseException) -> TaskResult:
    """One broken task must not lose the rest of the run: it is recorded as an error."""
    return TaskResult(
        task_id=item.id,
        category=item.category,
        passed=False,
        status="error",
        detail=f"{type(error).__name__}: {error}"[:500],
    )


@dataclass(frozen=True)
class EvalWork:
    """What a worker process needs to run a suite's tasks (suite None: BFCL cases)."""

    settings: Settings
    model: str
    harness: str
    effort: str
    root: Path  # the run's workspaces folder
    suite: Suite | None


_on_this_worker: dict[str, tuple[SessionService, Models]] = {}
_on_this_worker_lock = threading.Lock()


def run_on_worker(work: EvalWork, item: Any) -> TaskResult:
    """A worker process's job: one task (or BFCL case), the same job as in-process; the
    service and models it builds are kept for the run's next tasks on this worker."""
    key = "\n".join([work.settings.model_dump_json(), work.model, work.harness])
    with _on_this_worker_lock:
        if key not in _on_this_worker:
            service = SessionService(work.settings)
            models = Models(service, work.model, work.harness, answers=work.suite is None)
            _on_this_worker[key] = (service, models)
        service, models = _on_this_worker[key]
    if work.suite is None:
        return _bfcl_job(service, models, item)
    return _task_job(service, models, work.suite, work.root, work.harness, work.effort, item)


# -- agent tasks ---------------------------------------------------------------------------


def _task_job(
    service: SessionService,
    models: Models,
    suite: Suite,
    root: Path,
    harness: str,
    effort: str,
    task: Task,
) -> TaskResult:
    ws = root / task.id
    if ws.exists():
        shutil.rmtree(ws)
    ws.mkdir(parents=True)
    prepare(task, ws)
    started = time.monotonic()
    with models.take(task.id) as model, serve(task.site, log=site_log(ws)) as url:
        spec = RunSpec(
            workspace=ws,
            task=task.prompt.replace("{site}", url),
            model=model,
            toolsets=task.tools,
            auto_approve=True,
            limits=service.settings.limits.model_copy(update={"max_steps": task.max_steps}),
            harness=agent_harness(harness),
            # raw: no finish refusals either, the plain loop ends on a text answer
            require_action=harness != "raw",
            playbook=playbook_for(harness),
        )
        result = execute_with_effort(service, spec, effort)
    sid = result.session_id
    messages = service.messages(sid)
    ctx = CheckContext(
        workspace=ws,
        messages=messages,
        status=result.status,
        summary=result.summary,
        original=dict(task.files),
    )
    problem = run_checks(ctx, task.checks, suite.checkers)
    calls, valid = call_counts(messages)
    return TaskResult(
        task_id=task.id,
        category=task.category,
        passed=problem is None,
        status=result.status,
        detail=problem or "",
        steps=result.steps,
        tokens=result.prompt_tokens + result.completion_tokens,
        seconds=round(time.monotonic() - started, 2),
        calls=calls,
        valid_calls=valid,
        session_id=sid,
    )


def prepare(task: Task, ws: Path) -> None:
    """Write the task's files and workbooks into a fresh workspace."""
    for rel, text in task.files.items():
        target = ws / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    for rel, sheets in task.sheets.items():
        import openpyxl

        wb = openpyxl.Workbook()
        wb.remove(wb.active)
        for title, rows in sheets.items():
            ws_ = wb.create_sheet(title)
            for row in rows:
                ws_.append(row)
        target = ws / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        wb.save(target)


def call_counts(messages: list[Message]) -> tuple[int, int]:
    """Replies that tried to call a tool, and how many of them were schema-valid calls."""
    tried = valid = 0
    for m in messages:
        if m.role != "assistant":
            continue
        if m.kind == "format_error" or "invalid_call" in m.meta:
            tried += 1
        elif m.tool_calls and not _text_answer(m):
            tried += 1
            valid += 1
    return tried, valid


def _text_answer(m: Message) -> bool:
    """A plain-text reply the loop turned into finish (not a call the model made)."""
    return bool(m.meta.get("text_answer"))


# -- BFCL -----------------------------------------------------------------------------------


def _bfcl_job(service: SessionService, models: Models, case: BfclCase) -> TaskResult:
    started = time.monotonic()
    with models.take(case.id) as model:
        outcome = run_case(model, case, follow_ups_for(models.harness))
    store = service.store
    sid = store.create_session(task=f"BFCL {case.id}", workspace="", model=model.name)
    for m in messages_for(case):
        store.append(sid, m)
    replies = [outcome.reply] if outcome.reply is not None else []
    for m in [*replies, *outcome.turns]:
        store.append(sid, m)
    replies += [m for m in outcome.turns if m.role == "assistant"]
    usage = [m.meta.get("usage", {}) for m in replies]
    tokens = sum(int(u.get("prompt_tokens", 0)) + int(u.get("completion_tokens", 0)) for u in usage)
    steps = max(1, len(replies))
    store.update_session(
        sid, status="passed" if outcome.passed else "failed", summary=outcome.error, steps=steps
    )
    return TaskResult(
        task_id=case.id,
        category=case.category,
        passed=outcome.passed,
        status="passed" if outcome.passed else "failed",
        detail=outcome.error,
        steps=steps,
        tokens=tokens,
        seconds=round(time.monotonic() - started, 2),
        calls=int(outcome.attempted_call),
        valid_calls=int(outcome.schema_valid),
        session_id=sid,
    )
