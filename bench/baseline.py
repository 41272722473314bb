"""The code before a change, beside the code now: `git archive` of a commit, run by PYTHONPATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The tree before the issue-14 performance work (the benches' default baseline).
BEFORE_ISSUE_14 = "c8cf0d7"


@contextmanager
def source_trees(ref: str, *more: str) -> Iterator[dict[str, Path]]:
    """{"before": src/ of commit ref, each of `more` by its name, "after": src/ of the
    working tree}, for PYTHONPATH (in that order: oldest first, the working tree last)."""
    with tempfile.TemporaryDirectory(prefix="spud-baseline-") as tmp:
        trees = {"before": _unpack(ref, Path(tmp) / "before")}
        for other in more:
            trees[other] = _unpack(other, Path(tmp) / other)
        trees["after"] = ROOT / "src"
        yield trees


def _unpack(ref: str, into: Path) -> Path:
    """src/ of commit ref, unpacked under into."""
    into.mkdir(parents=True)
    archive = into / "src.tar"
    subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--output", str(archive), ref, "src"], check=True
    )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def child_env(src: Path, **extra: str) -> dict[str, str]:
    """The environment that makes `import spud` load the tree at src."""
    return {**os.environ, "PYTHONPATH": str(src), **extra}


def run_child(
    script: Path, args: list[str], src: Path, prefix: list[str] | None = None, **env: str
) -> Any:
    """Run `python script args` against the tree at src; its stdout's last line is JSON."""
    cmd = [*(prefix or []), sys.executable, str(script), *args]
    proc = subprocess.run(
        cmd, env=child_env(src, **env), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
