"""Issue 12, finding 2, without a race: links planted in the workspace, in every position,
never lead the host-side file tools outside it; a pinned workspace stays put."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from spud.core.tooling import validate_args
from spud.tools import beneath
from spud.tools.files import EditFile, ListFiles, ReadFile, Search, WriteFile

SECRET = "s3cr3t-outside"


def call(tool, **arguments):  # type: ignore[no-untyped-def]
    return tool.run(validate_args(tool, arguments))


@pytest.fixture(params=["openat2", "walk"])
def layout(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    before = beneath.USE_OPENAT2
    beneath.USE_OPENAT2 = request.param == "openat2"
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    (ws / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "s.txt").write_text(f"{SECRET}\n")
    (ws / "sub" / "a.txt").write_text("inside\n")
    (ws / "lout").symlink_to("../outside")  # a folder link out
    (ws / "abs").symlink_to(outside / "s.txt")  # an absolute file link out
    (ws / "hop1").symlink_to("hop2")  # a chain that ends outside
    (ws / "hop2").symlink_to("sub/../../outside/s.txt")
    (ws / "loop1").symlink_to("loop2")  # a loop
    (ws / "loop2").symlink_to("loop1")
    (ws / "lin").symlink_to("sub")  # a link that stays inside
    yield ws, outside
    beneath.USE_OPENAT2 = before


@pytest.mark.parametrize(
    "path", ["lout/s.txt", "abs", "hop1", "lin/../../outside/s.txt", "lin/../lout/s.txt"]
)
def test_links_out_are_refused_in_every_position(layout, path: str) -> None:  # type: ignore[no-untyped-def]
    ws, outside = layout
    before = sorted(os.listdir(outside))
    for tool, extra in (
        (ReadFile(ws), {}),
        (WriteFile(ws), {"content": "x"}),
        (EditFile(ws), {"old": SECRET, "new": "pwned"}),
    ):
        result = call(tool, path=path, **extra)
        assert not result.ok and "outside the workspace" in result.output, result.output
    assert sorted(os.listdir(outside)) == before
    assert (outside / "s.txt").read_text() == f"{SECRET}\n"
    assert SECRET not in call(Search(ws), query="s3cr3t-outsid[e]", regex=True).output
    assert SECRET not in call(ListFiles(ws)).output and "s.txt" not in call(ListFiles(ws)).output


def test_a_link_loop_is_a_clear_error_not_a_crash(layout) -> None:  # type: ignore[no-untyped-def]
    ws, _ = layout
    result = call(ReadFile(ws), path="loop1")
    assert not result.ok and "loop1" in result.output


def test_links_that_stay_inside_still_work(layout) -> None:  # type: ignore[no-untyped-def]
    ws, _ = layout
    read = call(ReadFile(ws), path="lin/a.txt")
    assert read.ok and "sub/a.txt (1 lines)" in read.output
    edit = call(EditFile(ws), path="lin/a.txt", old="inside", new="edited")
    assert edit.ok and (ws / "sub" / "a.txt").read_text() == "edited\n"
    assert (ws / "lin").is_symlink()  # the link itself was not replaced by a file


def test_a_write_keeps_the_file_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    script = ws / "run.sh"
    script.write_text("echo one\n")
    script.chmod(0o750)
    assert call(WriteFile(ws), path="run.sh", content="echo two\n").ok
    assert call(EditFile(ws), path="run.sh", old="two", new="three").ok
    assert script.read_text() == "echo three\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o750
    assert sorted(os.listdir(ws)) == ["run.sh"]


def test_tools_given_a_pinned_folder_stay_in_it_when_its_path_is_swapped(
    tmp_path: Path,
) -> None:
    """The task runner hands the tools the workspace it opened and checked (its fd): swapping
    the path for a link afterwards moves neither reads nor writes."""
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    ws.mkdir()
    outside.mkdir()
    (ws / "f.txt").write_text("pinned\n")
    (outside / "f.txt").write_text(f"{SECRET}\n")
    fd = os.open(ws, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        read, write = ReadFile(ws, workspace_fd=fd), WriteFile(ws, workspace_fd=fd)
    finally:
        os.close(fd)  # the tools hold their own copy
    ws.rename(tmp_path / "moved")
    ws.symlink_to(outside)
    assert "pinned" in call(read, path="f.txt").output
    assert call(write, path="new.txt", content="x").ok
    assert (tmp_path / "moved" / "new.txt").read_text() == "x"
    assert sorted(os.listdir(outside)) == ["f.txt"]
