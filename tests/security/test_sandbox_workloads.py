"""What users run today still works in the hardened sandbox: python, pytest, git, node, pip."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from spud.core.messages import ToolResult
from spud.sandbox.bubblewrap import Sandbox, SandboxConfig
from spud.tools.shell import Bash

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


def bash(ws: Path, command: str, **config: object) -> ToolResult:
    tool = Bash(Sandbox(SandboxConfig(workspace=ws, **config)))
    return tool.run(tool.Args(command=command))


def test_files_the_host_writes_stay_writable_inside(ws: Path) -> None:
    # Spud's own file tools write as the server's user (root in CI); the command runs as
    # another uid and must still be able to change what they wrote.
    (ws / "pkg").mkdir()
    (ws / "pkg" / "mod.py").write_text("X = 1\n")
    (ws / "notes.txt").write_text("a\n")
    result = bash(ws, "echo b >> notes.txt && echo 'Y = 2' >> pkg/mod.py && touch pkg/new.py")
    assert result.ok, result.output
    assert (ws / "notes.txt").read_text() == "a\nb\n"
    assert (ws / "pkg" / "new.py").exists()


def test_files_the_host_writes_between_commands_stay_writable(ws: Path) -> None:
    # One sandbox, as in a session: later walks skip folders that did not change, so a file
    # the host adds to an existing folder must still be handed over.
    tool = Bash(Sandbox(SandboxConfig(workspace=ws)))
    first = tool.run(tool.Args(command="mkdir -p a/b && touch a/b/first && mkdir c"))
    assert first.ok, first.output
    time.sleep(1.5)  # past the walk's one-second margin, so the quick path is taken
    tool.run(tool.Args(command="true"))
    (ws / "a" / "b" / "host.txt").write_text("from the host\n")
    second = tool.run(tool.Args(command="echo inside >> a/b/host.txt && touch c/new"))
    assert second.ok, second.output
    assert (ws / "a" / "b" / "host.txt").read_text() == "from the host\ninside\n"


def test_python_and_pytest(ws: Path) -> None:
    (ws / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (ws / "test_calc.py").write_text(
        "from calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    result = bash(ws, "python3 -c 'import calc; print(calc.add(1, 1))' && python3 -m pytest -q")
    assert result.ok, result.output
    assert result.output.startswith("2\n")
    assert "1 passed" in result.output


def test_git_reads_a_repository_made_on_the_host(ws: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(ws), *args], check=True, capture_output=True)

    git("init", "-q")
    (ws / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", "first commit")
    result = bash(
        ws, "echo two >> a.txt && git status --short && git log --oneline && git diff --stat"
    )
    assert result.ok, result.output
    assert " M a.txt" in result.output
    assert "first commit" in result.output
    assert "1 file changed" in result.output


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_runs(ws: Path) -> None:
    (ws / "hello.js").write_text("console.log('sum', 2 + 3)\n")
    result = bash(ws, "node --version && node hello.js")
    assert result.ok, result.output
    assert result.output.startswith("v")
    assert "sum 5" in result.output


def make_wheel(folder: Path) -> Path:
    wheel = folder / "spudtoy-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("spudtoy/__init__.py", "GREETING = 'hello from a wheel'\n")
        info = "spudtoy-0.1.dist-info"
        zf.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: spudtoy\nVersion: 0.1\n")
        zf.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr(f"{info}/RECORD", "")
    return wheel


def test_pip_installs_a_local_wheel_and_sdist_with_the_network_on(ws: Path) -> None:
    wheel = make_wheel(ws)
    project = ws / "sdisttoy"
    (project / "sdisttoy").mkdir(parents=True)
    (project / "sdisttoy" / "__init__.py").write_text("VALUE = 42\n")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "sdisttoy"\nversion = "0.1"\n'
    )
    command = (
        f"python3 -m pip install -q --no-index --no-build-isolation --target deps {wheel.name} ./sdisttoy"
        " && PYTHONPATH=deps python3 -c 'import spudtoy, sdisttoy; print(spudtoy.GREETING, sdisttoy.VALUE)'"
    )
    result = bash(ws, command, network=True, timeout_s=180)
    assert result.ok, result.output
    assert "hello from a wheel 42" in result.output


def pypi_is_public() -> bool:
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo("pypi.org", 443)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a).is_global for a in addresses)


@pytest.mark.skipif(
    not pypi_is_public(), reason="pypi.org is unreachable or not on a public address"
)
def test_pip_downloads_from_pypi_through_the_proxy(ws: Path) -> None:
    command = (
        "python3 -m pip download -q --no-deps --isolated --index-url https://pypi.org/simple "
        "-d dl six==1.16.0 && ls dl"
    )
    result = bash(ws, command, network=True, timeout_s=120)
    assert result.ok, result.output
    assert "six-1.16.0" in result.output
