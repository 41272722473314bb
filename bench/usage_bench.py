"""What metering and budgets add to an agent step: the same run plain, metered, and with budgets.

One process, rounds interleaved so the machine's load falls on every variant alike: a replay
model (a different echo call each step, so no repetition stop), a no-op tool, SqlStore on a
SQLite file (WAL, synchronous=FULL). Variants: "plain" (the store and limits as before issue
16), "metered" (each model call priced and entered in the ledger; the budget check finds no
budget), "budgets" (a person's and an organisation's budget, both far from spent: each step
sums the ledger twice). Prints a table of milliseconds per step and the ratio to plain, and
writes bench/results/usage_bench.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from spud.config import Settings
from spud.core.agent import Agent, Limits
from spud.core.messages import ToolResult
from spud.models.replay import ReplayModel
from spud.service.usage import UsageService
from spud.store.sql import SqlStore

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("plain", "metered", "budgets")


class Echo:
    name = "echo"
    description = "Echo the text back."

    class Args(BaseModel):
        text: str

    def run(self, args: Any) -> ToolResult:
        return ToolResult(output=f"echo: {args.text}")


def one_run(variant: str, home: Path, steps: int) -> float:
    """Seconds per step of one run of `steps` echo calls and a finish."""
    replies: list[dict[str, Any]] = [
        {"calls": [{"name": "echo", "arguments": {"text": f"step {i}"}}]} for i in range(steps)
    ]
    replies.append({"calls": [{"name": "finish", "arguments": {"summary": "done"}}]})
    store = SqlStore(f"sqlite:///{home / 'spud.db'}")
    limits = Limits(max_steps=steps + 5)
    agent_store: Any = store
    if variant != "plain":
        usage = UsageService(store, Settings(home=home))
        if variant == "budgets":
            usage.budgets.set("org", "person", usd=1000.0, seconds=1e9)
            usage.budgets.set("org", usd=1000.0)
        agent_store = usage.metered(store, "person", "org", "replay")
        limits = usage.budgets.limits("person", "org", limits)
    agent = Agent(ReplayModel(replies), [Echo()], agent_store, limits=limits)
    sid = agent.start("echo", str(home), "You echo.")
    t0 = time.perf_counter()
    result = agent.run(sid)
    spent = time.perf_counter() - t0
    store.close()
    assert result.status == "finished", result
    return spent / result.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    per_step: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for v in VARIANTS:
                home = Path(tmp) / f"{v}-{r}"
                home.mkdir()
                per_step[v].append(one_run(v, home, args.steps))
    plain = statistics.median(per_step["plain"])
    rows = {
        v: {
            "ms_per_step_median": statistics.median(t) * 1000,
            "ms_per_step_min": min(t) * 1000,
            "ratio_to_plain": statistics.median(t) / plain,
        }
        for v, t in per_step.items()
    }
    print(f"{'variant':<10}{'ms/step (median)':>18}{'min':>10}{'ratio':>8}")
    for v, row in rows.items():
        print(
            f"{v:<10}{row['ms_per_step_median']:>18.2f}{row['ms_per_step_min']:>10.2f}"
            f"{row['ratio_to_plain']:>8.2f}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = {"steps": args.steps, "rounds": args.rounds, "variants": rows}
    (RESULTS / "usage_bench.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
