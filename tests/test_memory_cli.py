"""`spud learn` and `spud memory …` as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def spud(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPUD_HOME": str(home), "SPUD_CONFIG": str(home / "none.toml")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "spud", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_learn_list_show_edit_delete(tmp_path: Path):
    doc = tmp_path / "handbook.md"
    doc.write_text("The fire assembly point is the car park behind building C.")
    r = spud(tmp_path, "learn", str(doc))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "learned" in r.stdout and "1 chunks" in r.stdout

    listed = spud(tmp_path, "memory", "list")
    assert "m1" in listed.stdout and "fire assembly point" in listed.stdout
    assert "building C" in spud(tmp_path, "memory", "recall", "where do we gather in a fire").stdout
    assert spud(tmp_path, "memory", "list", "--user", "other").stdout.count("m1") == 0

    edited = spud(tmp_path, "memory", "edit", "m1", "The fire assembly point is the north lawn.")
    assert edited.returncode == 0 and "north lawn" in edited.stdout

    assert "forgot m1" in spud(tmp_path, "memory", "delete", "m1").stdout
    gone = spud(tmp_path, "memory", "show", "m1")
    assert gone.returncode == 1 and "no memory m1" in gone.stdout
    bad = spud(tmp_path, "memory", "delete", "fire")
    assert bad.returncode == 1 and "not a memory id" in bad.stdout
    missing = spud(tmp_path, "learn", str(tmp_path / "nope.md"))
    assert missing.returncode == 1 and "nothing to learn" in missing.stdout
    assert "Traceback" not in gone.stdout + gone.stderr + bad.stderr + missing.stderr
