"""The bubblewrap sandbox and the bash tool, on real bubblewrap: isolation and limits."""

from __future__ import annotations

import http.server
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from spud.core.errors import SpudError
from spud.core.protocols import Tool
from spud.core.tooling import COMMAND_CHARS
from spud.sandbox.bubblewrap import Sandbox, SandboxConfig
from spud.sandbox.proxy import AllowlistProxy, ranges_check
from spud.tools.shell import Bash, coding_tools

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap is not installed (apt-get install bubblewrap)"
)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


def sandbox(ws: Path, **config: object) -> Sandbox:
    return Sandbox(SandboxConfig(workspace=ws, **config))


def test_runs_in_the_workspace_and_writes_there(ws: Path) -> None:
    result = sandbox(ws).execute("pwd; echo $HOME; echo hello > out.txt; echo err >&2; exit 3")
    assert result.exit_code == 3
    assert result.output.splitlines() == [str(ws), str(ws), "err"]
    assert (ws / "out.txt").read_text() == "hello\n"
    assert not result.timed_out and not result.truncated


def test_python_runs_inside(ws: Path) -> None:
    (ws / "hello.py").write_text("import pydantic\nprint('Hello from Spud!')\n")
    result = sandbox(ws).execute("python3 hello.py")
    assert result.exit_code == 0, result.output
    assert result.output == "Hello from Spud!\n"


def test_writes_outside_the_workspace_do_not_reach_the_host(ws: Path) -> None:
    name = f"spud-sandbox-{uuid.uuid4().hex}"
    targets = [Path("/tmp") / name, Path("/work") / name, Path("/var/tmp") / name]
    targets.append(ws.parent / name)
    command = "; ".join(f"touch {t}" for t in targets) + "; touch /usr/x"
    result = sandbox(ws).execute(command)
    assert "Read-only file system" in result.output
    for target in targets:
        assert not target.exists(), target


def test_files_outside_the_binds_are_invisible(ws: Path) -> None:
    secret_dir = Path(tempfile.mkdtemp(prefix="spud-secret-", dir="/var/tmp"))
    try:
        secret = secret_dir / "secret.txt"
        secret.write_text("top secret")
        result = sandbox(ws).execute(f"cat {secret}; ls /root /home /work/shared")
        assert "top secret" not in result.output
        assert "No such file or directory" in result.output
        assert result.exit_code != 0
    finally:
        shutil.rmtree(secret_dir)


@pytest.fixture
def host_server() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def connect_script(port: int) -> str:
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
        "    print('connected')\n"
        "except OSError as exc:\n"
        "    print('failed', exc)\n"
    )
    return f'python3 -c "{code}"'


def test_network_is_unreachable(ws: Path, host_server: int) -> None:
    result = sandbox(ws).execute(connect_script(host_server))
    assert "failed" in result.output and "connected" not in result.output
    url = sandbox(ws).execute("getent hosts example.com || echo no-dns")
    assert "no-dns" in url.output


@pytest.fixture
def host_http() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_network_goes_through_the_proxy(ws: Path, host_server: int, host_http: int) -> None:
    # Network on: still no direct route out; HTTP goes through the allowlist proxy, which here
    # is told to allow loopback so the test can reach a server on the host.
    proxy = AllowlistProxy(lambda host, port: None, address_check=ranges_check(allow_loopback=True))
    with proxy:
        box = Sandbox(SandboxConfig(workspace=ws, network=True), proxy=proxy)
        assert "failed" in box.execute(connect_script(host_server)).output
        result = box.execute(
            f"curl -s -o /dev/null -w '%{{http_code}}' --noproxy '' -x $HTTP_PROXY http://127.0.0.1:{host_http}/"
        )
    assert result.output == "200", result.output


def test_output_cap_keeps_counting(ws: Path) -> None:
    result = sandbox(ws, output_cap_bytes=1000).execute("yes | head -c 5000000; echo END")
    assert result.exit_code == 0
    assert result.truncated
    assert result.total_bytes == 5000000 + 4
    assert result.output.startswith("y\ny\n")
    assert result.output.endswith("END\n")
    assert len(result.output.encode()) < 1100


def test_timeout_kills_the_whole_sandbox(ws: Path) -> None:
    result = sandbox(ws).execute("echo started; (sleep 2; touch late) & sleep 60", timeout_s=1)
    assert result.timed_out
    assert result.output == "started\n"
    assert result.seconds < 30
    time.sleep(3)
    assert not (ws / "late").exists()


def test_memory_limit_stops_big_allocations(ws: Path) -> None:
    box = sandbox(ws, memory_mb=300)
    small = box.execute("python3 -c \"b = bytearray(50 * 1024 * 1024); print('ok')\"")
    assert small.output == "ok\n"
    big = box.execute("python3 -c \"b = bytearray(1024 * 1024 * 1024); print('allocated')\"")
    assert big.exit_code != 0
    assert "MemoryError" in big.output and "allocated" not in big.output


def test_missing_bwrap_is_a_clear_error(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(ws))
    with pytest.raises(SpudError, match="apt-get install -y bubblewrap"):
        sandbox(ws)


def test_bash_tool_reports_exit_code_and_limits(ws: Path) -> None:
    tool = Bash(sandbox(ws, output_cap_bytes=1000))
    ok = tool.run(tool.Args(command="echo hi"))
    assert ok.ok and ok.output == "hi\n[exit code 0]"
    failed = tool.run(tool.Args(command="exit 2"))
    assert not failed.ok and failed.output == "(no output)\n[exit code 2]"
    big = tool.run(tool.Args(command="yes | head -c 120000"))
    assert "[output cut at 1000 bytes of 120000; redirect to a file" in big.output
    slow = tool.run(tool.Args(command="sleep 30", timeout_s=1))
    assert not slow.ok and "[killed: time limit 1s reached]" in slow.output
    assert slow.data["timed_out"]


def test_bash_tool_does_not_run_a_command_cut_at_the_calls_bound(ws: Path) -> None:
    tool = Bash(sandbox(ws))
    script = "touch half\npython - <<'EOF'\n" + "print(1)\n" * 300  # cut at the bound
    cut = tool.run(tool.Args(command=script[:COMMAND_CHARS]))
    assert not cut.ok and cut.output.startswith("Not run: the command is 1200 characters")
    assert "write_file" in cut.output and not (ws / "half").exists()
    ran = tool.run(tool.Args(command="touch whole; " + "true; " * 250))  # Spud's own scripts
    assert ran.ok and (ws / "whole").exists()


def test_coding_tools(ws: Path) -> None:
    tools = coding_tools(ws, sandbox(ws))
    assert [t.name for t in tools] == [
        "read_file",
        "list_files",
        "search",
        "write_file",
        "edit_file",
        "bash",
    ]
    assert all(isinstance(t, Tool) for t in tools)
