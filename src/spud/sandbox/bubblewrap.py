"""Run shell commands under bubblewrap: no network, workspace read-write, rest read-only."""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel, Field

from spud.core.errors import ConfigError, SpudError

SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc")
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxConfig(BaseModel):
    """Where commands run and the limits they run under."""

    workspace: Path
    network: bool = False
    timeout_s: float = 60
    memory_mb: int = 2048
    output_cap_bytes: int = 32000
    extra_ro_binds: list[Path] = Field(default_factory=list)


class ExecResult(BaseModel):
    """What one command did: exit code, merged output (capped) and which limits it hit."""

    exit_code: int
    output: str
    timed_out: bool = False
    truncated: bool = False
    total_bytes: int = 0
    seconds: float = 0.0


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or path.is_relative_to(parent)


def _python_dirs() -> list[Path]:
    """What the sandbox needs to run this Python (and its venv) as `python3`."""
    exe_dir = Path(os.path.realpath(sys.executable)).parent
    return [Path(sys.prefix), Path(sys.base_prefix), exe_dir]


class _Output:
    """Keeps the first and last half of the cap, counting every byte that passed."""

    def __init__(self, cap: int) -> None:
        self.head_cap = cap - cap // 2
        self.tail_cap = cap // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data and self.tail_cap:
            self.tail += data
            del self.tail[: -self.tail_cap]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self) -> str:
        if not self.truncated:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", errors="replace")
        cut = self.total - len(self.head) - len(self.tail)
        head = bytes(self.head).decode("utf-8", errors="replace")
        tail = bytes(self.tail).decode("utf-8", errors="replace")
        return f"{head}\n[... {cut} bytes cut ...]\n{tail}"


class Sandbox:
    """Runs `bash -c command` in a fresh bubblewrap sandbox for each call."""

    def __init__(self, config: SandboxConfig) -> None:
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SpudError(
                "bubblewrap (bwrap) is not installed: run `apt-get install -y bubblewrap`"
            )
        workspace = config.workspace.expanduser().resolve()
        if not workspace.is_dir():
            raise ConfigError(f"workspace {workspace} is not a directory")
        if workspace == Path("/"):
            raise ConfigError("the workspace cannot be / (it would be writable as a whole)")
        prlimit = shutil.which("prlimit")
        if prlimit is None:
            raise SpudError("prlimit is not installed: run `apt-get install -y util-linux`")
        self.bwrap = bwrap
        self.prlimit = prlimit
        self.config = config.model_copy(update={"workspace": workspace})

    @property
    def workspace(self) -> Path:
        return self.config.workspace

    def argv(self, command: str) -> list[str]:
        """The bwrap command line that runs `command` (useful to inspect or log)."""
        ws = self.workspace
        args = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session"]
        args += ["--cap-drop", "ALL", "--hostname", "spud"]
        if self.config.network:
            args.append("--share-net")
        for name in SYSTEM_DIRS:
            path = Path(name)
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), name]
            elif path.exists():
                args += ["--ro-bind", name, name]
        args += ["--tmpfs", "/tmp", "--dev", "/dev", "--proc", "/proc"]
        ro = self._ro_binds()
        # Read-only binds that contain the workspace go first, so the workspace stays writable;
        # the others go after it, so e.g. a venv inside the workspace stays read-only.
        before = [p for p in ro if _inside(ws, p)]
        after = [p for p in ro if not _inside(ws, p)]
        for path in before:
            args += ["--ro-bind", str(path), str(path)]
        args += ["--bind", str(ws), str(ws)]
        for path in after:
            args += ["--ro-bind", str(path), str(path)]
        args += ["--remount-ro", "/", "--chdir", str(ws), "bash", "-c", command]
        return args

    def _ro_binds(self) -> list[Path]:
        """Extra read-only binds, resolved, without those already covered by another bind."""
        covered = [Path(os.path.realpath(d)) for d in SYSTEM_DIRS]
        paths: list[Path] = []
        for raw in [*_python_dirs(), *self.config.extra_ro_binds]:
            path = Path(os.path.realpath(raw))
            if path.exists() and path not in paths:
                paths.append(path)
        return [
            p
            for p in paths
            if not any(_inside(p, c) for c in covered)
            and not any(q != p and _inside(p, q) for q in paths)
        ]

    def _env(self) -> dict[str, str]:
        exe_dir = str(Path(sys.executable).parent)
        return {
            "PATH": f"{exe_dir}:{SANDBOX_PATH}",
            "HOME": str(self.workspace),
            "TMPDIR": "/tmp",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "TERM": "dumb",
            "NO_COLOR": "1",
            "PAGER": "cat",
            "GIT_PAGER": "cat",
        }

    def execute(self, command: str, timeout_s: float | None = None) -> ExecResult:
        """Run one command; never longer than the time limit, never more output than the cap."""
        limit = self.config.timeout_s if timeout_s is None else timeout_s
        memory = self.config.memory_mb * 1024 * 1024
        start = time.monotonic()
        # prlimit sets the memory limit and execs bwrap (same pid): no preexec_fn, which is
        # unsafe in a process with threads (the server runs agents on worker threads).
        proc = subprocess.Popen(
            [self.prlimit, f"--as={memory}", "--", *self.argv(command)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self._env(),
            start_new_session=True,
        )
        assert proc.stdout is not None
        output = _Output(self.config.output_cap_bytes)
        timed_out = False
        deadline = start + limit
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                if not selector.select(timeout=remaining):
                    continue
                data = os.read(proc.stdout.fileno(), 65536)
                if not data:
                    break
                output.add(data)
        if not timed_out:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                timed_out = True
        if timed_out:
            _kill_group(proc)
        proc.stdout.close()
        code = proc.wait()
        return ExecResult(
            exit_code=128 - code if code < 0 else code,
            output=output.text(),
            timed_out=timed_out,
            truncated=output.truncated,
            total_bytes=output.total,
            seconds=round(time.monotonic() - start, 3),
        )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill bwrap's whole process group; --die-with-parent takes the sandbox down with it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
