"""Attacks on the command sandbox, run through Spud's own bash tool with default settings.

Each test is something a hostile command (or a model steered by a hostile page) would try:
reading root's files, forking or filling memory and disks past the caps, raising its own time
limit, planting git hooks that the host runs later, kernel interfaces a build never needs, and
the network. Every one of them must come back blocked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from spud.core.messages import ToolResult
from spud.sandbox.bubblewrap import Sandbox, SandboxConfig
from spud.tools.shell import Bash

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root can hand commands another uid")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


def bash(ws: Path, command: str, asked_s: int | None = None, **config: object) -> ToolResult:
    """Run through the bash tool; asked_s is the timeout_s the model puts in its call."""
    tool = Bash(Sandbox(SandboxConfig(workspace=ws, **config)))
    return tool.run(tool.Args(command=command, timeout_s=asked_s))


# Raw system calls from inside, through ctypes (x86_64 numbers); prints "ok" or the errno name.
SYSCALLS = r"""
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long
buf = ctypes.create_string_buffer(256)
attr = ctypes.create_string_buffer(128)
ctypes.c_uint32.from_buffer(attr, 4).value = 128  # perf_event_attr.size
ctypes.c_uint32.from_buffer(attr, 0).value = 1  # PERF_TYPE_SOFTWARE
ctypes.c_uint64.from_buffer(attr, 40).value = 0b1100001  # disabled, exclude_kernel, exclude_hv
calls = {
    "ptrace": (101, 0, 0, 0, 0),  # PTRACE_TRACEME
    "process_vm_readv": (310, os.getpid(), 0, 0, 0, 0, 0),
    "io_uring_setup": (425, 4, ctypes.addressof(buf)),
    "keyctl": (250, 0, -3, 1),  # KEYCTL_GET_KEYRING_ID of the session keyring
    "add_key": (248, ctypes.c_char_p(b"user"), ctypes.c_char_p(b"spud"), ctypes.c_char_p(b"x"), 1, -2),
    "bpf": (321, 0, ctypes.addressof(buf), 72),  # BPF_MAP_CREATE with a zeroed attr
    "perf_event_open": (298, ctypes.addressof(attr), 0, -1, -1, 0),
    "userfaultfd": (323, 1),  # UFFD_USER_MODE_ONLY
    "unshare_user": (272, 0x10000000),  # CLONE_NEWUSER
    "unshare_net": (272, 0x40000000),
    "setns": (308, os.open("/proc/self/ns/uts", os.O_RDONLY), 0),
    "mount": (165, ctypes.c_char_p(b"none"), ctypes.c_char_p(b"/tmp"), ctypes.c_char_p(b"tmpfs"), 0, 0),
}
nr, *args = calls[sys.argv[1]]
result = libc.syscall(L(nr), *[a if isinstance(a, ctypes.c_char_p) else L(a) for a in args])
print("ok" if result >= 0 else errno.errorcode.get(ctypes.get_errno(), "?"))
"""


@pytest.mark.parametrize(
    "call",
    [
        "ptrace",
        "process_vm_readv",
        "io_uring_setup",
        "keyctl",
        "add_key",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "unshare_user",
    ],
)
def test_dangerous_syscalls_fail(ws: Path, call: str) -> None:
    (ws / "sys.py").write_text(SYSCALLS)
    result = bash(ws, f"python3 sys.py {call}")
    assert result.output.splitlines()[0] == "EPERM", result.output


@pytest.mark.parametrize("call", ["unshare_net", "setns", "mount"])
def test_privileged_syscalls_stay_blocked(ws: Path, call: str) -> None:
    # Blocked before too (no capabilities); the filter keeps them blocked whatever the uid.
    (ws / "sys.py").write_text(SYSCALLS)
    result = bash(ws, f"python3 sys.py {call}")
    assert result.output.splitlines()[0] == "EPERM", result.output


def test_no_nested_user_namespace(ws: Path) -> None:
    # Failed before too (uid_map could not be written); now unshare(2) itself is refused.
    result = bash(ws, "unshare --user --map-root-user id -u")
    assert not result.ok
    assert "Operation not permitted" in result.output


@as_root
def test_root_only_files_are_unreadable(ws: Path) -> None:
    result = bash(ws, "id -u; cat /etc/shadow")
    assert result.output.splitlines()[0] != "0"
    assert "Permission denied" in result.output
    assert "root:" not in result.output


@as_root
def test_setuid_binaries_do_not_give_root(ws: Path) -> None:
    result = bash(ws, "passwd -S root; python3 -c 'import os; os.setuid(0)'")
    assert not result.output.startswith("root ")
    assert "PermissionError" in result.output


def test_fork_bomb_stays_under_the_process_cap(ws: Path) -> None:
    script = (
        "import os, time\n"
        "n = 0\n"
        "for _ in range(1200):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(20)\n"
        "        os._exit(0)\n"
        "    n += 1\n"
        "print('forked', n)\n"
    )
    (ws / "bomb.py").write_text(script)
    result = bash(ws, "python3 bomb.py")
    forked = int(result.output.split("forked ")[1].split()[0])
    assert forked < SandboxConfig(workspace=ws).pids_max


def test_tmp_cannot_be_filled_past_its_size(ws: Path) -> None:
    result = bash(ws, "head -c 700M /dev/zero > /tmp/fill; head -c 700M /dev/zero > /dev/shm/fill")
    assert result.output.count("No space left on device") == 2, result.output


def test_one_file_cannot_grow_past_the_file_cap(ws: Path) -> None:
    result = bash(ws, "truncate -s 2G sparse; dd if=/dev/zero of=seek bs=1 count=1 seek=2G")
    assert (
        "truncate: failed to truncate 'sparse' at 2147483648 bytes: File too large" in result.output
    )
    assert "dd: error writing 'seek': File too large" in result.output
    for name in ("sparse", "seek"):
        assert (ws / name).stat().st_size < 2 << 30


def test_processes_together_stay_under_the_memory_cap(ws: Path) -> None:
    if Sandbox(SandboxConfig(workspace=ws)).cgroups == "none":
        pytest.skip("no cgroup can be created here: memory is capped per process only")
    grab = "python3 -c 'b = bytearray(700 << 20); import time; time.sleep(2); print(\"held\")'"
    result = bash(ws, f"for i in 1 2 3 4; do {grab} & done; wait")
    assert result.output.splitlines().count("held") < 4, result.output
    assert "[memory cap reached" in result.output


def test_the_model_cannot_raise_its_time_limit(ws: Path) -> None:
    result = bash(ws, "sleep 10; echo finished", asked_s=3600, timeout_s=2)
    assert not result.ok
    assert "finished" not in result.output
    assert "[killed: time limit 2s reached]" in result.output
    assert result.data["seconds"] < 10


def test_git_hooks_and_config_are_read_only(ws: Path) -> None:
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    command = (
        "echo 'touch /tmp/x' > .git/hooks/pre-commit; "
        "echo '[core] fsmonitor = touch pwned' >> .git/config; "
        "git config core.hooksPath hooks; rm -rf .git/hooks; mv .git .git-old"
    )
    result = bash(ws, command)
    assert result.output.count("Read-only file system") >= 3, result.output
    assert not (ws / ".git/hooks/pre-commit").exists()
    assert "fsmonitor" not in (ws / ".git/config").read_text()
    assert "hooksPath" not in (ws / ".git/config").read_text()
    assert (ws / ".git").is_dir()


def test_gitdir_behind_a_git_file_is_read_only(ws: Path) -> None:
    real = ws / "repo.git"
    subprocess.run(
        ["git", "init", "-q", "--separate-git-dir", str(real), str(ws / "src")], check=True
    )
    result = bash(ws, "echo '[core] fsmonitor = touch pwned' >> repo.git/config; echo x > src/.git")
    assert result.output.count("Read-only file system") == 2, result.output
    assert "fsmonitor" not in (real / "config").read_text()


@as_root
def test_a_repo_made_inside_does_not_run_its_hooks_on_the_host(ws: Path, tmp_path: Path) -> None:
    # A .git the command creates belongs to the sandbox's uid, so git on the host refuses it
    # (safe.directory) instead of running its fsmonitor.
    marker = tmp_path / "pwned"
    bash(ws, f"git init -q evil && git -C evil config core.fsmonitor 'touch {marker}'")
    host = subprocess.run(["git", "-C", str(ws / "evil"), "status"], capture_output=True, text=True)
    assert "dubious ownership" in host.stderr
    assert not marker.exists()


def test_spud_config_is_read_only_and_its_data_hidden(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ws / ".spud" / "config.toml"
    config.parent.mkdir()
    config.write_text('model = "mine"\n')
    home = ws / "spud-home"
    home.mkdir()
    (home / "spud.db").write_text("every organisation's data")
    monkeypatch.setenv("SPUD_CONFIG", str(config.parent))
    monkeypatch.setenv("SPUD_HOME", str(home))
    result = bash(ws, "echo 'policy_file = \"/tmp/p\"' >> .spud/config.toml; cat spud-home/spud.db")
    assert "Read-only file system" in result.output
    assert "every organisation" not in result.output
    assert config.read_text() == 'model = "mine"\n'


def test_no_ip_sockets_with_the_network_off(ws: Path) -> None:
    code = "import socket\nfor f in (socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK):\n    try:\n        socket.socket(f, socket.SOCK_DGRAM)\n        print('opened')\n    except OSError as e:\n        print(e.errno)\n"
    (ws / "s.py").write_text(code)
    result = bash(ws, "python3 s.py")
    assert "opened" not in result.output
    assert result.output.splitlines()[:3] == ["97", "97", "97"]  # EAFNOSUPPORT


def test_network_on_reaches_no_host_or_private_address(ws: Path) -> None:
    # With the network on, the command still has no route of its own: only the allowlist
    # proxy, which refuses loopback, private and link-local (cloud metadata) addresses.
    urls = ["http://127.0.0.1:1/", "http://10.0.0.1/", "http://169.254.169.254/latest/"]
    command = "; ".join(f"curl -s --noproxy '' -x $HTTP_PROXY {u}; echo" for u in urls)
    result = bash(
        ws,
        command + "; curl -s --noproxy '*' --max-time 5 http://1.1.1.1/ || echo direct-failed",
        network=True,
    )
    assert result.output.count("Blocked by Spud's network policy") == 3, result.output
    assert "direct-failed" in result.output


def test_disk_quota_is_reported_and_stops_writes(ws: Path) -> None:
    first = bash(ws, "head -c 8M /dev/zero > big", disk_mb=5)
    assert "[disk quota: the workspace uses 8 MiB of its 5 MiB" in first.output
    second = bash(ws, "echo more > small; rm big", disk_mb=5)
    assert "File too large" in second.output
    assert not (ws / "big").exists()
    third = bash(ws, "echo more > small && cat small", disk_mb=5)
    assert third.ok and "disk quota" not in third.output
