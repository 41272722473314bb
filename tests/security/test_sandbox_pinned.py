"""The sandbox binds a task's pinned workspace by its fd: swapping the path moves nothing."""

from __future__ import annotations

import os
from pathlib import Path

from spud.sandbox.bubblewrap import Sandbox, SandboxConfig
from spud.tools.shell import coding_tools


def test_a_swapped_workspace_path_still_binds_the_pinned_folder(tmp_path: Path):
    pinned = tmp_path / "ws"
    pinned.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    fd = os.open(pinned, os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        sandbox = Sandbox(SandboxConfig(workspace=pinned, workspace_fd=fd))
        tools = {t.name: t for t in coding_tools(pinned, sandbox)}
        moved = tmp_path / "ws-moved"
        pinned.rename(moved)  # the attacker swaps the path for a link to another folder
        pinned.symlink_to(elsewhere)
        result = sandbox.execute("echo planted > note.txt && pwd && ls")
        assert result.exit_code == 0, result.output
        assert (moved / "note.txt").read_text() == "planted\n"
        assert not (elsewhere / "note.txt").exists()
        wrote = tools["write_file"].run(tools["write_file"].Args(path="b.txt", content="x"))
        assert wrote.ok and (moved / "b.txt").exists() and not (elsewhere / "b.txt").exists()
    finally:
        os.close(fd)
