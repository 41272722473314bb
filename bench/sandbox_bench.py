"""Per-command start-up cost of the sandbox: the old bwrap line against the hardened Sandbox.

"before" rebuilds the argument list main used before issue 12 (prlimit --as, bwrap
--unshare-all, system dirs and Python read-only, workspace read-write, no uid change, no
seccomp, no cgroup). "after" is Sandbox.execute as it is now: workspace walk (ownership and
quota), cgroup, seccomp filter, setpriv. "after, network on" adds the proxy forwarder.
Each command runs RUNS times in a small workspace and in one with WIDE files.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from spud.sandbox.bubblewrap import SYSTEM_DIRS, Sandbox, SandboxConfig

ROOT = Path(__file__).resolve().parents[1]
RUNS = 30
WIDE = 2000  # files in the second workspace (the walk before and after each command)
COMMANDS = {"true": "true", "python3 -c pass": "python3 -c pass"}


def old_argv(ws: Path, command: str, memory_mb: int = 2048) -> list[str]:
    """The command line main ran before the hardening (bubblewrap.py at e684b4c)."""
    args = [shutil.which("prlimit") or "prlimit", f"--as={memory_mb << 20}", "--"]
    args += [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
    ]
    args += ["--cap-drop", "ALL", "--hostname", "spud"]
    for name in SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), name]
        elif path.exists():
            args += ["--ro-bind", name, name]
    args += ["--tmpfs", "/tmp", "--dev", "/dev", "--proc", "/proc"]
    python = {Path(os.path.realpath(p)) for p in (sys.prefix, sys.base_prefix)}
    for path in sorted(python):
        if not any(path.is_relative_to(d) for d in SYSTEM_DIRS):
            args += ["--ro-bind", str(path), str(path)]
    args += ["--bind", str(ws), str(ws)]
    return [*args, "--remount-ro", "/", "--chdir", str(ws), "bash", "-c", command]


def old_env(ws: Path) -> dict[str, str]:
    path = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
    return {"PATH": path, "HOME": str(ws), "TMPDIR": "/tmp", "LANG": "C.UTF-8"}


def time_old(ws: Path, command: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(old_argv(ws, command), env=old_env(ws), capture_output=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return (time.perf_counter() - start) * 1000


def time_new(box: Sandbox, command: str) -> float:
    start = time.perf_counter()
    result = box.execute(command)
    assert result.exit_code == 0, result.output
    return (time.perf_counter() - start) * 1000


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
    }


def main() -> None:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        # "after" hands its workspace to the sandbox uid, so "before" gets its own copy.
        spaces = {"small": Path(tmp) / "small", f"{WIDE} files": Path(tmp) / "wide"}
        for ws in spaces.values():
            ws.mkdir()
        for i in range(WIDE):
            sub = spaces[f"{WIDE} files"] / f"d{i // 100}"
            sub.mkdir(exist_ok=True)
            (sub / f"f{i}.txt").write_text("x")
        for label, ws in spaces.items():
            old_ws = ws.with_name(ws.name + "-old")
            shutil.copytree(ws, old_ws)
            boxes = {
                "after": Sandbox(SandboxConfig(workspace=ws)),
                "after, network on": Sandbox(SandboxConfig(workspace=ws, network=True)),
            }
            for name, command in COMMANDS.items():
                # Interleaved, so a busy neighbour slows all variants alike.
                samples: dict[str, list[float]] = {"before": [], **{v: [] for v in boxes}}
                for _ in range(RUNS):
                    samples["before"].append(time_old(old_ws, command))
                    for variant, box in boxes.items():
                        samples[variant].append(time_new(box, command))
                row: dict[str, object] = {"workspace": label, "command": name}
                before = statistics.median(samples["before"])
                for variant, values in samples.items():
                    row[variant] = stats(values)
                    if variant != "before":
                        row[f"{variant} / before"] = round(statistics.median(values) / before, 2)
                rows.append(row)
    box = Sandbox(SandboxConfig(workspace=Path(tempfile.gettempdir())))
    meta = {
        "runs": RUNS,
        "uid_drop": box.privileged,
        "cgroups": box.cgroups,
        "cpus": os.cpu_count(),
        "bwrap": subprocess.run(
            ["bwrap", "--version"], capture_output=True, text=True
        ).stdout.strip(),
    }
    table = Table(title=f"Sandbox start-up per command, {RUNS} runs (ms; cgroups: {box.cgroups})")
    for col in [
        "workspace",
        "command",
        "before med/p90",
        "after med/p90",
        "ratio",
        "net on med/p90",
    ]:
        table.add_column(col)
    for row in rows:
        b, a, n = row["before"], row["after"], row["after, network on"]
        table.add_row(
            str(row["workspace"]),
            str(row["command"]),
            f"{b['median_ms']} / {b['p90_ms']}",  # type: ignore[index]
            f"{a['median_ms']} / {a['p90_ms']}",  # type: ignore[index]
            f"{row['after / before']}x",
            f"{n['median_ms']} / {n['p90_ms']}",  # type: ignore[index]
        )
    Console().print(table)
    out = ROOT / "bench" / "results" / "sandbox.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
