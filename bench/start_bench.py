"""CLI start before and after, side by side: `spud --help`, and `spud run` to the first token.

`spud --help` is timed as a whole process. For `spud run`, a child process of each variant
walks the CLI's own path (import the CLI, open the service, load the configured model with
its sha256 check) and then streams one token from the loaded model; each part is timed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import BEFORE_ISSUE_14, ROOT, child_env, run_child, source_trees  # noqa: E402

RESULTS = ROOT / "bench" / "results"
VARIANTS = ("before", "after")


def first_token() -> dict[str, float]:
    """In a child: the CLI's path to a loaded model, then one streamed token."""
    started = time.perf_counter()
    from spud import cli

    imported = time.perf_counter()
    svc = cli._service(None)
    model = svc.model()
    loaded = time.perf_counter()
    stream = model.llm.create_completion("Hello", max_tokens=1, stream=True)  # type: ignore[attr-defined]
    next(iter(stream))
    done = time.perf_counter()
    return {
        "import_s": imported - started,
        "open_and_load_s": loaded - imported,
        "first_token_s": done - loaded,
        "total_s": done - started,
    }


def help_seconds(src: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "spud", "--help"],
        env=child_env(src),
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(first_token()))
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", default=BEFORE_ISSUE_14, help="commit to compare against")
    parser.add_argument("--help-runs", type=int, default=10)
    parser.add_argument("--run-repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "start_bench.json")
    args = parser.parse_args()
    script = Path(__file__).resolve()
    helps: dict[str, list[float]] = {v: [] for v in VARIANTS}
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    with source_trees(args.baseline) as trees, tempfile.TemporaryDirectory() as tmp:
        homes = {v: str(Path(tmp) / v) for v in VARIANTS}  # each variant's own store
        for variant in VARIANTS:
            help_seconds(trees[variant])  # warm the file cache
        for _ in range(args.help_runs):
            for variant in VARIANTS:
                helps[variant].append(help_seconds(trees[variant]))
        # the after variant's first start records the check; it is not timed
        if args.run_repeats:
            run_child(script, ["--child"], trees["after"], SPUD_HOME=homes["after"])
        for r in range(args.run_repeats):
            for variant in VARIANTS:
                print(
                    f"spud run to first token {r + 1}/{args.run_repeats}: {variant}",
                    file=sys.stderr,
                )
                child = run_child(script, ["--child"], trees[variant], SPUD_HOME=homes[variant])
                runs[variant].append(child)
    med = statistics.median
    report: dict[str, Any] = {"baseline": args.baseline, "help_s": helps, "run": runs}
    report["summary"] = {
        v: {
            "help_s": med(helps[v]),
            **{k: med(r[k] for r in runs[v]) for k in (runs[v][0] if runs[v] else {})},
        }
        for v in VARIANTS
    }
    report["method"] = (
        "`python -m spud --help` as a whole process, runs interleaved, median; spud run: a "
        "child per variant imports spud.cli, opens the session service, loads the configured "
        "model through the CLI's own path (registry check, llama.cpp load), then streams one "
        "token of a 1-word prompt; medians over repeats; the after variant's check record is "
        "made by a run before the timed ones"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'':28}{'before':>10}{'after':>10}{'ratio':>8}")
    for key in report["summary"]["before"]:
        b, a = report["summary"]["before"][key], report["summary"]["after"][key]
        print(f"{key:28}{b:>10.3f}{a:>10.3f}{a / b:>8.2f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
