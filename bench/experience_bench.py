"""Issue 17's experience bench: day 2 after one `spud sleep` against day 1 and a fresh home."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from spud.config import Settings
from spud.core.protocols import Model
from spud.eval.records import EvalRun, TaskResult
from spud.eval.runner import run_suite
from spud.eval.suite import Suite, load_suite
from spud.memory.store import LOCAL_ORG, LOCAL_USER
from spud.service.sessions import SessionService

HERE = Path(__file__).parent
SUITES = HERE / "experience"
RESULTS = HERE / "results"
SKILL_MARK = "skill for:"  # how a recalled skill reads in a session's system prompt
ARMS = ("day1", "day2", "control")
TASK_FIELDS = {"task_id", "category", "passed", "status", "detail", "steps", "seconds"}


def settings_for(home: Path, model: str, max_seconds: float, effort: str | None) -> Settings:
    """A fresh Spud home of its own (store, memories), with the bench's per-task time limit."""
    home.mkdir(parents=True, exist_ok=True)
    settings = Settings(home=home, db_url=f"sqlite:///{home / 'spud.db'}")
    settings.limits = settings.limits.model_copy(update={"max_seconds": max_seconds})
    if not model.startswith("replay:"):
        settings.model = model
    if effort:
        settings.effort = effort
    return settings


def run_arm(arm: str, service: SessionService, suite: Suite, args: argparse.Namespace) -> EvalRun:
    """One day's suite on this home, through the eval runner, as user and org "local"."""

    def show(r: TaskResult) -> None:
        verdict = "pass" if r.passed else "FAIL"
        where = f"{arm:<8}{r.task_id:<20}{verdict:<6}{r.status:<22}"
        print(f"  {where}{r.seconds:>7.1f}s  {r.detail[:70]}", flush=True)

    print(f"{arm}: {len(suite.tasks)} tasks on {service.settings.home}", flush=True)
    return run_suite(
        service,
        suite,
        suite_name=f"experience-{arm}",
        model=args.model,
        harness=args.harness,
        workers=1,
        out_dir=service.settings.home / "eval" / arm,
        on_result=show,
        effort=args.effort,
    )


def sleep_model(args: argparse.Namespace, settings: Settings) -> Model:
    """The model the runs used (the same name and harness setup) for the sleep's facts; on a
    replay, a model that answers nothing (the skills and worked examples need no model)."""
    if args.replay:
        from spud.models.replay import ReplayModel

        return ReplayModel([{"answer": ""}], name="replay:sleep")
    from spud.eval.harness import model_for

    return model_for(args.model, args.harness, settings, answers=False)


def recalled_skills(service: SessionService, run: EvalRun) -> dict[str, int]:
    """Per task, how many recalled skills its session's system prompt holds."""
    out = {}
    for r in run.results:
        messages = service.messages(r.session_id) if r.session_id else []
        system = next((m.content for m in messages if m.role == "system"), "")
        out[r.task_id] = system.count(SKILL_MARK)
    return out


def arm_row(arm: str, run: EvalRun, skills_seen: dict[str, int]) -> dict[str, Any]:
    results = run.results
    passed = sum(r.passed for r in results)
    minutes = [r.seconds / 60 for r in results]
    return {
        "arm": arm,
        "passed": passed,
        "total": len(results),
        "pct": round(100 * passed / len(results), 1) if results else 0.0,
        "median_minutes": round(statistics.median(minutes), 2) if minutes else 0.0,
        "tasks_with_recalled_skill": sum(1 for n in skills_seen.values() if n),
        "tasks": [
            {**r.model_dump(include=TASK_FIELDS), "recalled_skills": skills_seen.get(r.task_id, 0)}
            for r in sorted(results, key=lambda r: r.category)
        ],
    }


def print_table(rows: list[dict[str, Any]], skills: list[str], diffs: dict[str, float]) -> None:
    print(f"\n{'arm':<10}{'passed':>10}{'%':>8}{'median min':>12}{'recalled skill':>16}")
    for r in rows:
        print(
            f"{r['arm']:<10}{r['passed']:>6}/{r['total']:<3}{r['pct']:>8.1f}"
            f"{r['median_minutes']:>12.2f}{r['tasks_with_recalled_skill']:>11}/{r['total']}"
        )
    kinds = sorted({t["category"] for r in rows for t in r["tasks"]})
    print("\nper kind: " + "  ".join(f"{k}" for k in kinds))
    for r in rows:
        won = {
            k: f"{sum(t['passed'] for t in r['tasks'] if t['category'] == k)}/"
            f"{sum(t['category'] == k for t in r['tasks'])}"
            for k in kinds
        }
        print(f"  {r['arm']:<8}" + "  ".join(f"{won[k]:<{len(k)}}" for k in kinds))
    print(f"\nskills the sleep made ({len(skills)}):")
    for s in skills:
        print(f"  {s}")
    for name, points in diffs.items():
        print(f"{name}: {points:+.1f} points")


def bench(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    day1, day2 = load_suite(str(SUITES / "day1")), load_suite(str(SUITES / "day2"))
    started = time.monotonic()
    settings = settings_for(root / "experienced", args.model, args.max_seconds, args.effort)
    service = SessionService(settings)
    runs = {"day1": run_arm("day1", service, day1, args)}
    print("sleep: one `spud sleep` on day 1's sessions", flush=True)
    slept_at = time.monotonic()
    report = service.memory.sleep(LOCAL_USER, LOCAL_ORG, sleep_model(args, settings))
    sleep_seconds = time.monotonic() - slept_at
    runs["day2"] = run_arm("day2", service, day2, args)
    fresh = SessionService(settings_for(root / "fresh", args.model, args.max_seconds, args.effort))
    runs["control"] = run_arm("control", fresh, day2, args)
    owners = {"day1": service, "day2": service, "control": fresh}
    rows = [arm_row(a, runs[a], recalled_skills(owners[a], runs[a])) for a in ARMS]
    pct = {r["arm"]: r["pct"] for r in rows}
    diffs = {
        "day2_minus_day1": round(pct["day2"] - pct["day1"], 1),
        "day2_minus_control": round(pct["day2"] - pct["control"], 1),
    }
    print_table(rows, report.skills, diffs)
    return {
        "model": args.model,
        "harness": args.harness,
        "effort": settings.effort,
        "max_seconds": args.max_seconds,
        "arms": rows,
        "sleep": {
            "sessions": report.sessions,
            "skills": report.skills,
            "episodes": len(report.episodes),
            "facts": report.facts,
            "seconds": round(sleep_seconds, 1),
        },
        **diffs,
        "wall_minutes": round((time.monotonic() - started) / 60, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--harness", default="spud")
    parser.add_argument("--effort", default=None, help="low|medium|high (default: the settings')")
    parser.add_argument("--max-seconds", type=float, default=240, help="per task")
    parser.add_argument(
        "--replay",
        type=Path,
        default=None,
        help="a folder of recordings, one <task id>.json per task of both days, to check the "
        "plumbing without a model (bench/experience/replay: reference solutions)",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the homes in this folder")
    parser.add_argument("--out", type=Path, default=RESULTS / "experience_bench.json")
    args = parser.parse_args()
    if args.replay:
        args.model = f"replay:{args.replay.resolve()}"
    if args.keep:
        result = bench(args, args.keep.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="experience-bench") as tmp:
            result = bench(args, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
