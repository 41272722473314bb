"""CLI start before and after, side by side: `spud --help`, and `spud run` to the first token.

`spud --help` and `spud run --help` are timed as whole processes: wall time, and the CPU
time the process used (user + system), which on a busy machine is the closer measure of
what an idle one shows. For `spud run`, a child process of each variant walks the CLI's own
path (import the CLI, open the service, load one named model (`--model`) with its sha256 check)
and then streams one token from the loaded model; each part is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
HELPS = {"help": ["-m", "spud", "--help"], "run_help": ["-m", "spud", "run", "--help"]}
# what no CLI built on typer's rich help can go below: Python, typer, click, rich's help code
FLOORS = {"python": ["-c", "pass"], "typer_rich_help": ["-c", "import typer.rich_utils"]}


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


def process_seconds(src: Path, argv: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of `python argv` against the tree at src.

    Bytecode is cached as in an installed copy (the machine's PYTHONDONTWRITEBYTECODE is
    dropped): the warm-up run writes it, the timed runs read it.
    """
    env = child_env(src)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (now.ru_utime - used.ru_utime) + (now.ru_stime - used.ru_stime)


def timed_processes(
    trees: dict[str, Path], commands: dict[str, list[str]], runs: int
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """{variant: {command: {"wall_s": [...], "cpu_s": [...]}}}, runs interleaved."""
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for src in trees.values():
        for argv in commands.values():
            process_seconds(src, argv)  # warm the file cache and write the bytecode
    for _ in range(runs):
        for name, argv in commands.items():
            for variant, src in trees.items():
                wall, cpu = process_seconds(src, argv)
                got = out.setdefault(variant, {}).setdefault(name, {"wall_s": [], "cpu_s": []})
                got["wall_s"].append(wall)
                got["cpu_s"].append(cpu)
    return out


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(first_token()))
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", default=BEFORE_ISSUE_14, help="commit to compare against")
    parser.add_argument(
        "--also", nargs="*", default=[], help="more commits measured beside (e.g. HEAD)"
    )
    parser.add_argument("--help-runs", type=int, default=10)
    parser.add_argument("--run-repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "start_bench.json")
    parser.add_argument(
        "--model",
        default="qwen2.5-coder-0.5b",
        help="the model every variant loads (defaults differ between commits)",
    )
    args = parser.parse_args()
    script = Path(__file__).resolve()
    with source_trees(args.baseline, *args.also) as trees, tempfile.TemporaryDirectory() as tmp:
        variants = list(trees)
        helps = timed_processes(trees, HELPS, args.help_runs)
        floors = timed_processes({"after": trees["after"]}, FLOORS, args.help_runs)["after"]
        homes = {v: str(Path(tmp) / v) for v in variants}  # each variant's own store
        runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        # the after variant's first start records the check; it is not timed
        if args.run_repeats:
            run_child(
                script, ["--child"], trees["after"], SPUD_HOME=homes["after"], SPUD_MODEL=args.model
            )
        for r in range(args.run_repeats):
            for variant in variants:
                print(
                    f"spud run to first token {r + 1}/{args.run_repeats}: {variant}",
                    file=sys.stderr,
                )
                child = run_child(
                    script,
                    ["--child"],
                    trees[variant],
                    SPUD_HOME=homes[variant],
                    SPUD_MODEL=args.model,
                )
                runs[variant].append(child)
    med = statistics.median
    report: dict[str, Any] = {
        "baseline": args.baseline,
        "variants": {v: (args.baseline if v == "before" else v) for v in variants},
        "processes": helps,
        "floors": floors,
        "run": runs,
        "load_average": os.getloadavg(),
        "model": args.model,
    }
    report["summary"] = {
        v: {
            **{f"{c}_{k}": med(helps[v][c][k]) for c in HELPS for k in ("wall_s", "cpu_s")},
            **{k: med(r[k] for r in runs[v]) for k in (runs[v][0] if runs[v] else {})},
        }
        for v in variants
    }
    report["summary_floors"] = {
        f"{c}_{k}": med(floors[c][k]) for c in FLOORS for k in ("wall_s", "cpu_s")
    }
    report["method"] = (
        "`python -m spud --help` and `python -m spud run --help` as whole processes, runs "
        "interleaved across variants, median; wall seconds and CPU seconds (user + system, "
        "from the children's rusage); bytecode cached as in an installed copy; floors: "
        "`python -c pass` and `python -c 'import typer.rich_utils'` (what typer's help "
        "needs). spud run: a child per variant imports spud.cli, opens the session service, "
        "loads the same model (`model`) through the CLI's own path (registry check, llama.cpp "
        "load), then streams one token of a 1-word prompt; medians over repeats; the after "
        "variant's check record is made by a run before the timed ones"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("".join([f"{'':28}", *(f"{v[:10]:>11}" for v in variants), f"{'after/before':>14}"]))
    for key in report["summary"]["before"]:
        cells = [report["summary"][v][key] for v in variants]
        ratio = cells[-1] / cells[0] if cells[0] else float("nan")
        print("".join([f"{key:28}", *(f"{c:>11.3f}" for c in cells), f"{ratio:>14.2f}"]))
    for key, value in report["summary_floors"].items():
        print(f"floor {key:22}{value:>11.3f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
