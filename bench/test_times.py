"""Per-test times of two pytest runs (JUnit XML), side by side: which tests got slower."""

from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console
from rich.table import Table


def times(path: Path) -> dict[str, float]:
    """Each passed test's seconds, by its id (module path and name)."""
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.find("skipped") is not None or case.find("failure") is not None:
            continue
        out[f"{case.get('classname')}::{case.get('name')}"] = float(case.get("time") or 0)
    return out


def compare(before: dict[str, float], after: dict[str, float], floor: float) -> dict:
    """Totals over the tests both runs passed, and those of them slower by more than 10%
    and by more than `floor` seconds."""
    common = sorted(before.keys() & after.keys())
    old = sum(before[t] for t in common)
    new = sum(after[t] for t in common)
    slower = [
        {"test": t, "before_s": before[t], "after_s": after[t], "ratio": after[t] / before[t]}
        for t in common
        if before[t] > 0 and after[t] > 1.1 * before[t] and after[t] - before[t] > floor
    ]
    slower.sort(key=lambda row: row["after_s"] - row["before_s"], reverse=True)
    return {
        "tests_before": len(before),
        "tests_after": len(after),
        "common": len(common),
        "common_before_s": old,
        "common_after_s": new,
        "common_ratio": new / old if old else None,
        "all_before_s": sum(before.values()),
        "all_after_s": sum(after.values()),
        "slower": slower,
        "floor_s": floor,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("before", type=Path, help="JUnit XML of the baseline run")
    parser.add_argument("after", type=Path, help="JUnit XML of the run to compare")
    parser.add_argument(
        "--floor", type=float, default=0.5, help="seconds below which a test's growth is noise"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/test_times.json"))
    args = parser.parse_args()
    result = compare(times(args.before), times(args.after), args.floor)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    console = Console()
    table = Table(title="tests passed in both runs")
    for column in ("", "before", "after", "after / before"):
        table.add_column(column)
    table.add_row(
        f"{result['common']} tests",
        f"{result['common_before_s']:.1f} s",
        f"{result['common_after_s']:.1f} s",
        f"{result['common_ratio']:.2f}",
    )
    table.add_row(
        f"all ({result['tests_before']} / {result['tests_after']})",
        f"{result['all_before_s']:.1f} s",
        f"{result['all_after_s']:.1f} s",
        "",
    )
    console.print(table)
    slow = Table(title=f"slower by > 10% and > {args.floor} s")
    for column in ("test", "before", "after", "ratio"):
        slow.add_column(column)
    for row in result["slower"][:20]:
        slow.add_row(
            row["test"], f"{row['before_s']:.2f}", f"{row['after_s']:.2f}", f"{row['ratio']:.2f}"
        )
    console.print(slow)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
