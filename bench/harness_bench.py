"""Harness cost per agent step while persisting, before and after, side by side in one run.

Each variant (the tree at --baseline, and the working tree) runs the same 200-step loop in
its own process: ReplayModel, a no-op echo tool, SqlStore on a SQLite file (WAL,
synchronous=FULL) and in memory. Per step it splits the time into the model's own reply
(the fake model), the tool, the store's appends and the rest (the harness). A separate run
under strace counts fsync/fdatasync calls per step.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import BEFORE_ISSUE_14, ROOT, run_child, source_trees  # noqa: E402

RESULTS = ROOT / "bench" / "results"
VARIANTS = ("before", "after")


# -- the measured loop (runs in a child process, against one tree) ---------------------------


def measure(url: str, steps: int) -> dict[str, Any]:
    from pydantic import BaseModel

    from spud.core.agent import Agent, Limits
    from spud.core.messages import Message, ToolResult
    from spud.models.replay import ReplayModel
    from spud.store.sql import SqlStore

    class Echo:
        name = "echo"
        description = "Echo the text back."

        class Args(BaseModel):
            text: str

        def run(self, args: Any) -> ToolResult:
            return ToolResult(output=f"echo: {args.text}")

    step = [0]
    parts: list[dict[str, float]] = [{} for _ in range(steps + 2)]

    def timed(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - t0
                part = parts[step[0]]
                part[label] = part.get(label, 0.0) + spent

        return wrapper

    class Model:
        def __init__(self, inner: ReplayModel) -> None:
            self.name, self.context_window = inner.name, inner.context_window
            self.complete = timed("model", inner.complete)
            self.count_tokens = timed("count_tokens", inner.count_tokens)

    class Store:
        def __init__(self, inner: SqlStore) -> None:
            self.inner = inner
            self.append = timed("store", inner.append)

        def __getattr__(self, attr: str) -> Any:
            return getattr(self.inner, attr)

    marks: list[float] = []

    def on_message(m: Message) -> None:
        if m.role == "assistant":
            marks.append(time.perf_counter())
            step[0] += 1

    replies = [
        {"calls": [{"name": "echo", "arguments": {"text": f"step {i}: look at part {i}"}}]}
        for i in range(steps)
    ]
    tool = Echo()
    tool.run = timed("tool", tool.run)  # type: ignore[method-assign]
    store = SqlStore(url)
    agent = Agent(
        Model(ReplayModel(replies)),  # type: ignore[arg-type]
        [tool],
        Store(store),  # type: ignore[arg-type]
        limits=Limits(max_steps=steps, max_tokens=10**9, max_seconds=3600),
        on_message=on_message,
    )
    sid = agent.start("echo things, one per step", "/tmp")
    t0 = time.perf_counter()
    result = agent.run(sid)
    wall = time.perf_counter() - t0
    store.close()
    rows = []
    for i in range(1, len(marks)):  # step i: from the i-th assistant message to the next
        part = parts[i]
        total = marks[i] - marks[i - 1]
        rest = total - part.get("model", 0.0) - part.get("tool", 0.0) - part.get("store", 0.0)
        rows.append(
            {
                "total": total,
                "model": part.get("model", 0.0),
                "tool": part.get("tool", 0.0),
                "store": part.get("store", 0.0),
                "count_tokens": part.get("count_tokens", 0.0),
                "harness": rest,
            }
        )
    return {"status": result.status, "steps": result.steps, "wall_s": wall, "per_step_s": rows}


# -- the comparison (parent process) ---------------------------------------------------------


def window(rows: list[dict[str, float]], at: int, key: str, half: int = 5) -> float:
    """Median milliseconds of one part over the steps around step `at` (1-based)."""
    lo, hi = max(0, at - 1 - half), min(len(rows), at - 1 + half + 1)
    return 1000 * statistics.median(r[key] for r in rows[lo:hi])


def summarize(runs: list[dict[str, Any]], steps: int) -> dict[str, Any]:
    out: dict[str, Any] = {"status": runs[0]["status"], "steps": runs[0]["steps"]}
    for key in ("total", "model", "tool", "store", "count_tokens", "harness"):
        out[f"{key}_ms"] = statistics.median(
            1000 * statistics.median(r[key] for r in run["per_step_s"]) for run in runs
        )
    for at in (10, steps - 5):
        for key in ("total", "store", "harness"):
            out[f"{key}_ms_at_{at}"] = statistics.median(
                window(run["per_step_s"], at, key) for run in runs
            )
    # "everything else" than the model, the tool and the wait for the disk
    out["not_model_ms"] = statistics.median(
        1000 * statistics.median(r["total"] - r["model"] - r["tool"] for r in run["per_step_s"])
        for run in runs
    )
    return out


def fsyncs(script: Path, src: Path, url: str, steps: int) -> dict[str, Any] | None:
    """fsync + fdatasync calls in a whole run, counted by strace (None without strace)."""
    if shutil.which("strace") is None:
        return None
    with tempfile.NamedTemporaryFile(suffix=".strace") as log:
        prefix = ["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", log.name]
        run = run_child(script, ["--child", url, str(steps)], src, prefix)
        calls = 0
        for line in Path(log.name).read_text().splitlines():
            fields = line.split()
            if fields and fields[-1] in ("fsync", "fdatasync"):
                calls += int(fields[3])
    return {"calls": calls, "steps": run["steps"], "per_step": calls / max(run["steps"], 1)}


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(measure(sys.argv[2], int(sys.argv[3]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", default=BEFORE_ISSUE_14, help="commit to compare against")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "harness_bench.json")
    args = parser.parse_args()
    script = Path(__file__).resolve()
    report: dict[str, Any] = {"baseline": args.baseline, "steps": args.steps}
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with source_trees(args.baseline) as trees, tempfile.TemporaryDirectory() as tmp:
        kinds = {"sqlite file": lambda tag: f"sqlite:///{tmp}/{tag}.db", "sqlite memory": None}
        for r in range(args.repeats):  # interleaved, so both see the same machine load
            for kind, make in kinds.items():
                for variant in VARIANTS:
                    url = make(f"{variant}{r}") if make else "sqlite://"
                    print(f"repeat {r + 1}/{args.repeats}: {kind}, {variant}", file=sys.stderr)
                    child = run_child(script, ["--child", url, str(args.steps)], trees[variant])
                    runs.setdefault((kind, variant), []).append(child)
        for variant in VARIANTS:
            url = f"sqlite:///{tmp}/strace-{variant}.db"
            report.setdefault("fsyncs", {})[variant] = fsyncs(script, trees[variant], url, 50)
    for (kind, variant), got in runs.items():
        report.setdefault(kind, {})[variant] = summarize(got, args.steps)
    report["method"] = (
        "each variant in its own process, repeats interleaved; per step = from one assistant "
        "message to the next (tool run, tool result appended, prompt fitted, model reply, "
        "reply appended); model = ReplayModel.complete (the fake model's own work), store = "
        "SqlStore.append, harness = the rest; medians over steps, then over repeats; "
        "_at_N = median of the 11 steps around step N; fsyncs counted by strace over 50 steps"
    )
    report["runs"] = {f"{k} / {v}": got for (k, v), got in runs.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    show(report)
    print(f"wrote {args.out}")
    return 0


def show(report: dict[str, Any]) -> None:
    steps = report["steps"]
    late = steps - 5
    rows = [
        ("ms / step (median)", "total_ms"),
        ("  model (fake, its own work)", "model_ms"),
        ("  store.append", "store_ms"),
        ("  harness (the rest)", "harness_ms"),
        ("  not model, not tool", "not_model_ms"),
        ("ms / step around step 10", "total_ms_at_10"),
        (f"ms / step around step {late}", f"total_ms_at_{late}"),
        ("harness ms around step 10", "harness_ms_at_10"),
        (f"harness ms around step {late}", f"harness_ms_at_{late}"),
    ]
    print(f"harness per step, {steps} steps, baseline {report['baseline']}")
    header = f"{'':32}" + "".join(
        f"{kind[7:] + ' ' + v:>16}" for kind in ("sqlite file", "sqlite memory") for v in VARIANTS
    )
    print(header)
    for name, key in rows:
        cells = "".join(
            f"{report[kind][v][key]:>16.3f}"
            for kind in ("sqlite file", "sqlite memory")
            for v in VARIANTS
        )
        print(f"{name:32}{cells}")
    for v in VARIANTS:
        f = report["fsyncs"].get(v)
        if f:
            print(f"fsyncs per step, {v}: {f['per_step']:.2f} ({f['calls']} in {f['steps']} steps)")


if __name__ == "__main__":
    raise SystemExit(main())
