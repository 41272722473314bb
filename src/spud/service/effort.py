"""Effort: when a task's checks fail, try more candidate runs and keep the one that checks best."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from spud.core.errors import ConfigError
from spud.core.protocols import CheckResult, Model
from spud.core.run import Harness, RunResult
from spud.service.sessions import RunSpec, SessionService

# effort -> (candidate runs at most, sampling temperature of the extra candidates, passing
# script drafts that vote on the outputs within a run; as many replies are tried against the
# tests in a code round whose first fixes nothing)
EFFORTS = {"low": (1, 0.0, 1), "medium": (2, 0.6, 3), "high": (3, 0.8, 3)}


def candidates_for(effort: str) -> int:
    if effort not in EFFORTS:
        raise ConfigError(f"unknown effort {effort!r}; use one of {', '.join(EFFORTS)}")
    return EFFORTS[effort][0]


def score(result: RunResult, checks: list[CheckResult]) -> tuple[int, int, int]:
    """Higher is better: every check passed, then how many passed, then fewer steps."""
    passed = sum(c.passed for c in checks)
    all_passed = bool(checks) and passed == len(checks)
    return (int(all_passed and result.status == "finished"), passed, -result.steps)


def execute_with_effort(service: SessionService, spec: RunSpec, effort: str) -> RunResult:
    """Run the task; while its checks fail and effort allows, run another candidate.

    The first candidate runs in the workspace itself at the model's own temperature. Each
    further one starts from a copy of the workspace as it was, sampling more freely. The best
    candidate's files end up in the workspace and its result is returned; every candidate's
    session stays in the store.
    At medium and high, passing script drafts within a run also vote on the outputs, and a
    code round whose draft fixes nothing tries more replies against the tests.
    """
    runs, temperature, votes = EFFORTS.get(effort, (0, 0.0, 1))
    if runs == 0:
        candidates_for(effort)  # raises the clear error
    if votes > 1:  # and their outputs are held against the hand's head (expected.py)
        harness = (spec.harness or Harness()).model_copy(
            update={"draft_votes": votes, "by_hand": True, "code_samples": votes}
        )
        spec = replace(spec, harness=harness)
    with tempfile.TemporaryDirectory(prefix="spud-candidates-") as tmp:
        original = Path(tmp) / "original"
        shutil.copytree(spec.workspace, original, symlinks=True)
        best_result, best_checks = _run(service, spec)
        best_dir: Path | None = None  # None: the best is what the workspace holds now
        for i in range(1, runs):
            if score(best_result, best_checks)[0]:
                break
            ws = Path(tmp) / f"candidate-{i}"
            shutil.copytree(original, ws, symlinks=True)
            result, checks = _run(service, replace(spec, workspace=ws), temperature)
            if score(result, checks) > score(best_result, best_checks):
                best_result, best_checks, best_dir = result, checks, ws
        if best_dir is not None:
            _replace_contents(spec.workspace, best_dir)
    best_result.checks = best_checks
    return best_result


def _run(
    service: SessionService, spec: RunSpec, temperature: float | None = None
) -> tuple[RunResult, list[CheckResult]]:
    with service.open(spec) as run:
        model: Model = run.agent.model
        before = getattr(model, "temperature", None)
        if temperature is not None and before is not None:
            model.temperature = temperature  # type: ignore[attr-defined]
        try:
            result = run.start()
        finally:
            if temperature is not None and before is not None:
                model.temperature = before  # type: ignore[attr-defined]
        verifier = run.agent.verifier
        checks = result.checks or (verifier.check() if verifier is not None else [])
    return result, checks


def _replace_contents(target: Path, source: Path) -> None:
    """Make target hold exactly what source holds (target itself stays the same folder)."""
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    for child in source.iterdir():
        dest = target / child.name
        if child.is_dir() and not child.is_symlink():
            shutil.copytree(child, dest, symlinks=True)
        else:
            shutil.copy2(child, dest, follow_symlinks=False)
