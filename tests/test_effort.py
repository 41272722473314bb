"""Effort: more candidate runs when checks fail, the best one kept (replay model, real sandbox)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spud.config import Settings
from spud.core.agent import Harness
from spud.core.errors import ConfigError
from spud.models.replay import ReplayModel
from spud.service.effort import execute_with_effort
from spud.service.sessions import RunSpec, SessionService

TASK = "The tests in test_calc.py fail. Fix calc.py so that they pass."
WRONG = "def add(a, b):\n    return a * b\n"
RIGHT = "def add(a, b):\n    return a + b\n"


def call(tool: str, **arguments: object) -> dict:
    return {"calls": [{"name": tool, "arguments": arguments}]}


class Sampler(ReplayModel):
    """Plays the greedy recording at temperature 0 and the other one when sampling."""

    def __init__(self, greedy: list[dict], sampled: list[dict]) -> None:
        super().__init__(greedy)
        self.greedy, self.sampled, self.temperature, self.runs = greedy, sampled, 0.0, 0

    def complete(self, messages, tools, exclude=frozenset()):
        self.replies = self.greedy if self.temperature == 0 else self.sampled
        return super().complete(messages, tools, exclude)


@pytest.fixture
def svc(tmp_path: Path) -> SessionService:
    return SessionService(Settings(home=tmp_path / "home"))


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    (path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (path / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    return path


def spec(ws: Path, model: ReplayModel) -> RunSpec:
    return RunSpec(
        workspace=ws, task=TASK, model=model, auto_approve=True, harness=Harness(check_repairs=0)
    )


def test_a_second_candidate_runs_when_the_first_fails_its_checks(svc: SessionService, ws: Path):
    model = Sampler(
        greedy=[call("write_file", path="calc.py", content=WRONG), call("finish", summary="a")],
        sampled=[call("write_file", path="calc.py", content=RIGHT), call("finish", summary="b")],
    )
    result = execute_with_effort(svc, spec(ws, model), "medium")
    assert result.status == "finished" and result.summary.startswith("b [checked and passed")
    assert (ws / "calc.py").read_text() == RIGHT  # the winner's files are in the workspace
    assert model.temperature == 0.0  # restored after the sampled candidate
    statuses = sorted(s.status for s in svc.sessions())
    assert statuses == ["check_failed", "finished"]  # both candidates are stored


def test_a_first_candidate_that_passes_is_kept_without_more_runs(svc: SessionService, ws: Path):
    model = Sampler(
        greedy=[call("write_file", path="calc.py", content=RIGHT), call("finish", summary="a")],
        sampled=[call("write_file", path="calc.py", content=WRONG), call("finish", summary="b")],
    )
    result = execute_with_effort(svc, spec(ws, model), "high")
    assert result.status == "finished" and len(svc.sessions()) == 1
    assert (ws / "calc.py").read_text() == RIGHT


def test_when_no_candidate_passes_the_workspace_keeps_the_best(svc: SessionService, ws: Path):
    model = Sampler(
        greedy=[call("write_file", path="calc.py", content=WRONG), call("finish", summary="a")],
        sampled=[
            call("write_file", path="test_calc.py", content="x = 1\n"),
            call("finish", summary="b"),
        ],
    )
    result = execute_with_effort(svc, spec(ws, model), "medium")
    # Neither passes; the first fails one check of two, the second (tests edited) fails both.
    assert result.status == "check_failed" and result.summary.startswith("a ")
    assert (ws / "calc.py").read_text() == WRONG
    assert "assert add(2, 3) == 5" in (ws / "test_calc.py").read_text()


def test_unknown_effort_is_a_clear_error(svc: SessionService, ws: Path):
    with pytest.raises(ConfigError, match="unknown effort 'max'"):
        execute_with_effort(svc, spec(ws, Sampler([], [])), "max")


def test_medium_effort_lets_passing_script_drafts_vote(svc: SessionService, ws: Path, monkeypatch):
    seen: list[Harness] = []
    real = svc.open

    def spy(run_spec: RunSpec):
        seen.append(run_spec.harness)
        return real(run_spec)

    monkeypatch.setattr(svc, "open", spy)
    right = [call("write_file", path="calc.py", content=RIGHT), call("finish", summary="a")]
    for effort in ("low", "medium"):
        execute_with_effort(svc, spec(ws, Sampler(right, right)), effort)
    assert [h.draft_votes for h in seen] == [1, 3]
    assert [h.by_hand for h in seen] == [False, True]  # and the hand's head checks them
    assert [h.code_samples for h in seen] == [1, 3]  # and code rounds try more replies
    assert seen[1].check_repairs == 0  # the rest of the run's own harness is kept
