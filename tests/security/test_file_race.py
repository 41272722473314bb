"""Issue 12, finding 2: a process in the workspace swaps folders and links while the file tools
run; not one read or write may land outside the workspace."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_fixtures import replay_file

from spud.config import Settings
from spud.core.tooling import validate_args
from spud.server.app import create_app
from spud.server.settings import ServerSettings
from spud.service.hub import Services
from spud.tools import beneath
from spud.tools.files import EditFile, ListFiles, ReadFile, Search, WriteFile

ROUNDS = 500  # six tool calls a round: 3,000 calls against the swapping loop
SENTINEL = "s3cr3t-outside: this file is outside the workspace"

# Swaps `d` (a folder) with `dlink` (a link to the outside folder), and e/f.txt (a file) with
# e/flink (a link to the outside sentinel), atomically (renameat2 RENAME_EXCHANGE), until told
# to stop. It runs as a plain process in the workspace, as any command in the sandbox can.
RACER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def exchange(a, b):
    if libc.renameat2(-100, a.encode(), -100, b.encode(), 2) != 0:
        raise OSError(ctypes.get_errno(), f"renameat2 {a} {b}")
outside = sys.argv[1]
os.symlink(outside, "dlink")
os.symlink(os.path.join(outside, "f.txt"), "e/flink")
open("racer-ready", "w").close()
swaps = 0
while not os.path.exists("racer-stop"):
    exchange("d", "dlink")
    exchange("e/f.txt", "e/flink")
    swaps += 1
print(swaps)
"""


def call(tool, **arguments):  # type: ignore[no-untyped-def]
    return tool.run(validate_args(tool, arguments))


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest) -> Iterator[str]:
    """Both ways the tools open paths: the kernel's openat2, and the O_NOFOLLOW walk."""
    before = beneath.USE_OPENAT2
    beneath.USE_OPENAT2 = request.param == "openat2"
    yield request.param
    beneath.USE_OPENAT2 = before


def make_layout(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    (ws / "d").mkdir(parents=True)
    (ws / "e").mkdir()
    outside.mkdir()
    (ws / "d" / "f.txt").write_text("inside d: KEEP\n")
    (ws / "e" / "f.txt").write_text("inside e: KEEP\n")
    (outside / "f.txt").write_text(f"{SENTINEL}: KEEP\n")
    (outside / "only-outside.txt").write_text(f"{SENTINEL}\n")
    snapshot = {p.name: p.read_bytes() for p in outside.iterdir()}
    return ws, outside, snapshot


def start_racer(ws: Path, outside: Path) -> subprocess.Popen[str]:
    racer = subprocess.Popen(
        [sys.executable, "-c", RACER, str(outside)], cwd=ws, stdout=subprocess.PIPE, text=True
    )
    while not (ws / "racer-ready").exists():
        assert racer.poll() is None, "the racer died before it started"
    return racer


def stop_racer(ws: Path, racer: subprocess.Popen[str]) -> int:
    (ws / "racer-stop").touch()
    out, _ = racer.communicate(timeout=60)
    assert racer.returncode == 0
    return int(out.strip())


def test_file_tools_never_land_outside_while_a_folder_and_a_link_swap(
    tmp_path: Path, resolver: str
) -> None:
    ws, outside, snapshot = make_layout(tmp_path)
    tools = {cls.name: cls(ws) for cls in (ReadFile, WriteFile, EditFile, ListFiles, Search)}
    racer = start_racer(ws, outside)
    leaks: list[str] = []
    crashes: list[str] = []
    calls = 0
    try:
        for n in range(ROUNDS):
            for name, arguments in (
                ("read_file", {"path": "d/f.txt"}),
                ("read_file", {"path": "e/f.txt"}),
                ("write_file", {"path": f"d/new-{n % 5}.txt", "content": f"written {n}\n"}),
                ("edit_file", {"path": "d/f.txt", "old": "KEEP", "new": "KEEP."}),
                ("search", {"query": "s3cr3t-outsid[e]", "regex": True}),  # not echoed back
                ("list_files", {"pattern": "**/*"}),
            ):
                calls += 1
                try:
                    output = call(tools[name], **arguments).output
                except Exception as exc:  # a tool must answer, not raise
                    crashes.append(f"{name}: {exc!r}")
                    continue
                if "s3cr3t-outside" in output or "only-outside" in output:
                    leaks.append(f"{name}: {output[:120]}")
    finally:
        swaps = stop_racer(ws, racer)
    after = {p.name: p.read_bytes() for p in outside.iterdir()}
    assert swaps > 0 and calls == ROUNDS * 6
    assert leaks == [], f"{len(leaks)} of {calls} calls read outside the workspace: {leaks[:3]}"
    assert crashes == [], f"{len(crashes)} of {calls} calls raised: {crashes[:3]}"
    assert after == snapshot, "a write or an edit landed outside the workspace"


def test_a_planted_fifo_does_not_hang_the_file_tools(tmp_path: Path, resolver: str) -> None:
    """A FIFO in the workspace: opening it by name for reading would block the host's worker."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("needle\n")
    fifo = ws / "pipe.txt"
    subprocess.run(["mkfifo", str(fifo)], check=True)
    results: list[str] = []

    def use_tools() -> None:
        results.append(call(Search(ws), query="needle").output)
        results.append(call(ReadFile(ws), path="pipe.txt").output)
        results.append(call(EditFile(ws), path="pipe.txt", old="a", new="b").output)

    worker = threading.Thread(target=use_tools, daemon=True)
    worker.start()
    worker.join(60)  # a guard against a hang, not a speed check
    if worker.is_alive():  # unblock the hung open so the test can end
        with open(fifo, "w") as writer:
            writer.write("x")
        worker.join(10)
        pytest.fail("a file tool blocked on a FIFO planted in the workspace")
    assert results[0] == "a.txt:1:needle"
    assert "not a regular file" in results[1] and "not a regular file" in results[2]


class Tenants:
    """Two organisations over one server (in process); B's member can write in B's workspace."""

    def __init__(self, tmp: Path) -> None:
        model = replay_file(tmp / "m.json", [{"calls": [{"name": "finish", "arguments": {}}]}])
        self.svc = Services(Settings(home=tmp / "home", model=model))
        self.app = create_app(self.svc, ServerSettings())
        a = self.svc.users.add_user("member-a", "password-123", "orgA", "member")
        b = self.svc.users.add_user("member-b", "password-123", "orgB", "member")
        self.key_b = self.svc.users.create_key(b.user_id)[1]
        self.root_a = self.svc.workspaces.root(a.org_id)
        self.root_b = self.svc.workspaces.root(b.org_id)


def test_a_download_never_serves_another_tenants_file_while_a_link_swaps(
    tmp_path: Path,
) -> None:
    """B's sandboxed command swaps a file of B's workspace with a link to A's secret while B
    downloads it: the download checked the path, then opened it by name."""
    world = Tenants(tmp_path)
    secret = world.root_a / "default" / "secret.txt"
    secret.parent.mkdir(parents=True)
    secret.write_text(SENTINEL)
    ws = world.root_b / "default"
    (ws / "d").mkdir(parents=True)
    (ws / "e").mkdir()
    (ws / "e" / "f.txt").write_text("B's own file\n")
    racer = start_racer(ws, secret.parent)  # e/flink -> A's folder/f.txt: make it the secret
    (secret.parent / "f.txt").write_text(SENTINEL)
    served: list[str] = []
    try:
        with TestClient(world.app) as client:
            headers = {"Authorization": f"Bearer {world.key_b}"}
            for _ in range(ROUNDS):
                r = client.get(
                    "/api/files/download", params={"path": "default/e/f.txt"}, headers=headers
                )
                served.append(r.text if r.status_code == 200 else "")
    finally:
        stop_racer(ws, racer)
        world.svc.close()
    leaked = [s for s in served if "s3cr3t-outside" in s]
    assert served.count("B's own file\n") > 0
    assert leaked == [], f"{len(leaked)} of {ROUNDS} downloads served organisation A's file"
