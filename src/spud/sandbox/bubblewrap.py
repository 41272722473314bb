"""Run shell commands under bubblewrap: own uid, seccomp, cgroup limits, read-only .git."""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
import weakref
from functools import lru_cache
from pathlib import Path

import platformdirs
from pydantic import BaseModel, Field

from spud.core.errors import ConfigError, SpudError
from spud.sandbox import limits, network, seccomp, tree

SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc")
SCRIPT_HOOK = Path(__file__).with_name("script_hook.py")  # bound read-only for drafted scripts
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOBODY = 65534
MIB = limits.MIB


class SandboxConfig(BaseModel):
    """Where commands run and the limits they run under."""

    workspace: Path
    # The workspace already open (a task's pinned folder): bound by its fd, so a swap of the
    # path for a link between commands cannot move the sandbox elsewhere.
    workspace_fd: int | None = None
    network: bool = False  # on: only through Spud's allowlist proxy (public hosts)
    network_allow: list[str] = Field(default_factory=list)  # host globs; empty: any public host
    timeout_s: float = 60  # the model's timeout_s can lower this, never raise it
    memory_mb: int = 2048  # per process (address space), and for the whole tree with a cgroup
    pids_max: int = 512  # processes and threads together
    cpus: float = 2.0  # CPU time per wall second, with a cgroup
    tmp_mb: int = 512  # size of /tmp and /dev/shm inside
    file_mb: int = 1024  # largest file a command may write
    disk_mb: int = 10240  # the workspace's quota (checked around each command)
    uid: int = NOBODY  # who commands run as when Spud runs as root
    gid: int = NOBODY
    output_cap_bytes: int = 32000
    extra_ro_binds: list[Path] = Field(default_factory=list)
    protected: list[Path] = Field(default_factory=list)  # read-only inside the workspace
    hidden: list[Path] = Field(default_factory=list)  # not visible inside the workspace


class ExecResult(BaseModel):
    """What one command did: exit code, merged output (capped) and which limits it hit."""

    exit_code: int
    output: str
    timed_out: bool = False
    truncated: bool = False
    total_bytes: int = 0
    seconds: float = 0.0
    notes: list[str] = Field(default_factory=list)  # limits hit, quota warnings


@lru_cache(maxsize=4)
def _bwrap_options(bwrap: str) -> frozenset[str]:
    """The options this bwrap knows (--size, --perms, --disable-userns are recent)."""
    try:
        text = subprocess.run([bwrap, "--help"], capture_output=True, text=True).stdout
    except OSError:
        return frozenset()
    return frozenset(word for word in text.split() if word.startswith("--"))


@lru_cache(maxsize=1)
def _env_ignores_signals() -> bool:
    try:
        text = subprocess.run(["env", "--help"], capture_output=True, text=True).stdout
    except OSError:
        return False
    return "--ignore-signal" in text


def spud_paths() -> tuple[list[Path], list[Path]]:
    """Spud's own (config, data) folders: read-only, and hidden, when inside a workspace."""
    config = [Path(platformdirs.user_config_dir("spud"))]
    if os.environ.get("SPUD_CONFIG"):
        config.append(Path(os.environ["SPUD_CONFIG"]))
    data = [Path(platformdirs.user_data_dir("spud"))]
    if os.environ.get("SPUD_HOME"):
        data.append(Path(os.environ["SPUD_HOME"]))
    return config, data


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
    """Runs `bash -c command` in a fresh bubblewrap sandbox for each call.

    As root, bwrap sets the sandbox up with root's rights (so it can bind folders only root
    can reach, such as a Python under /root) and `setpriv` then drops the command to
    config.uid/gid with no capabilities; the workspace is handed to that uid before each
    command. As any other user, bwrap runs unprivileged in a user namespace, as that user.
    """

    def __init__(self, config: SandboxConfig, proxy: network.AllowlistProxy | None = None) -> None:
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
        self.privileged = os.geteuid() == 0
        setpriv = shutil.which("setpriv")
        if self.privileged and setpriv is None:
            raise SpudError("setpriv is not installed: run `apt-get install -y util-linux`")
        if self.privileged and config.uid == 0:
            raise ConfigError("the sandbox uid cannot be 0: commands must not run as root")
        self.bwrap = bwrap
        self.prlimit = prlimit
        self.setpriv = setpriv or "setpriv"
        self.options = _bwrap_options(bwrap)
        self.config = config.model_copy(update={"workspace": workspace})
        self._proxy = proxy
        self._ws_fd = None if config.workspace_fd is None else os.dup(config.workspace_fd)
        if self._ws_fd is not None:
            weakref.finalize(self, os.close, self._ws_fd)
        self.cgroups = limits.cgroup_support() if self.privileged else "none"
        self._used = -1  # bytes the workspace uses (-1: not measured yet); see _scan
        self._free = 0
        self._walked: int | None = None

    @property
    def workspace(self) -> Path:
        return self.config.workspace

    @property
    def owner(self) -> tuple[int, int] | None:
        """Who workspace files must belong to (None: leave them as they are)."""
        return (self.config.uid, self.config.gid) if self.privileged else None

    def caps(self) -> limits.Caps:
        c = self.config
        return limits.Caps(c.pids_max, c.memory_mb, min(c.cpus, os.cpu_count() or 1), c.file_mb)

    def argv(self, command: str, seccomp_fd: int = 3, scan: tree.Scan | None = None) -> list[str]:
        """The bwrap command line that runs `command` (useful to inspect or log)."""
        ws = self.workspace
        if self.privileged:
            # No user namespace: bwrap as real root sets up the mounts, setpriv drops to the uid.
            args = [self.bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net"]
            args += ["--unshare-uts", "--unshare-cgroup-try"]
        else:
            args = [self.bwrap, "--unshare-all", "--unshare-user", "--cap-drop", "ALL"]
            if "--disable-userns" in self.options:
                args.append("--disable-userns")
        args += ["--die-with-parent", "--new-session", "--hostname", "spud"]
        made: list[Path] = [Path("/"), Path("/tmp"), Path("/dev"), Path("/proc")]
        bound: list[Path] = []
        for name in SYSTEM_DIRS:
            path = Path(name)
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), name]
            elif path.exists():
                args += ["--ro-bind", name, name]
                bound.append(path)
        args += [*self._tmpfs("/tmp"), "--dev", "/dev", *self._tmpfs("/dev/shm"), "--proc", "/proc"]
        ro = self._ro_binds()
        # Read-only binds that contain the workspace go first, so the workspace stays writable;
        # the others go after it, so e.g. a venv inside the workspace stays read-only.
        before = [p for p in ro if _inside(ws, p)]
        after = [p for p in ro if not _inside(ws, p)]
        for path in before:
            args += [*self._parents(path, made, bound), "--ro-bind", str(path), str(path)]
        source = str(ws) if self._ws_fd is None else f"/proc/self/fd/{self._ws_fd}"
        args += [*self._parents(ws, made, bound), "--bind", source, str(ws)]
        for path in after:
            args += [*self._parents(path, made, bound), "--ro-bind", str(path), str(path)]
        protected, hidden = self._protected(scan)
        for path in protected:
            args += ["--ro-bind", str(path), str(path)]
        for path in hidden:
            args += (
                ["--tmpfs", str(path)] if path.is_dir() else ["--ro-bind", "/dev/null", str(path)]
            )
        if self.config.network:
            args += ["--dir", str(Path(network.SOCKET_PATH).parent)]
            args += ["--bind", str(self.proxy().unix_path), network.SOCKET_PATH]
        args += ["--remount-ro", "/", "--chdir", str(ws), "--seccomp", str(seccomp_fd)]
        if self.privileged:
            c = self.config
            args += [self.setpriv, f"--reuid={c.uid}", f"--regid={c.gid}", "--clear-groups"]
            args += ["--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]
        if self.config.network:
            args += [sys.executable, "-S", "-c", network.FORWARDER]
        if _env_ignores_signals():  # a write past the file cap fails (EFBIG), not the writer
            args += ["env", "--ignore-signal=XFSZ"]
        return [*args, "bash", "-c", command]

    def proxy(self) -> network.AllowlistProxy:
        """The allowlist proxy commands reach the network through (started on first use)."""
        if self._proxy is None:
            self._proxy = network.shared_proxy(tuple(self.config.network_allow))
        return self._proxy

    def _tmpfs(self, path: str) -> list[str]:
        args = ["--perms", "1777"] if "--perms" in self.options else []
        if "--size" in self.options:
            args += ["--size", str(self.config.tmp_mb * MIB)]
        return [*args, "--tmpfs", path]

    def _parents(self, path: Path, made: list[Path], bound: list[Path]) -> list[str]:
        """--dir (0755) for the folders above a bind that no bind provides, so the uid can
        reach the bind even when the real folder above it (e.g. /root) is private."""
        args: list[str] = []
        for parent in reversed(path.parents):
            if parent in made or any(_inside(parent, b) for b in bound):
                continue
            if "--perms" in self.options:
                args += ["--perms", "0755"]
            args += ["--dir", str(parent)]
            made.append(parent)
        bound.append(path)
        return args

    def _protected(self, scan: tree.Scan | None) -> tuple[list[Path], list[Path]]:
        """Paths inside the workspace bound read-only (.git, its gitdir, Spud's config and
        config.protected) or hidden (Spud's data folder and config.hidden)."""
        ws = self.workspace
        config_dirs, data_dirs = spud_paths()
        gits = scan.git if scan is not None else [ws / ".git"]
        candidates = [*gits, *config_dirs, *self.config.protected]
        for git in gits:
            if git.is_file():
                target = tree.gitdir_of(git)
                if target is not None:
                    candidates.append(target)
        protected: list[Path] = []
        for path in candidates:
            real = Path(os.path.realpath(path))
            if real != ws and _inside(real, ws) and real.exists() and real not in protected:
                protected.append(real)
        hidden: list[Path] = []
        for path in [*data_dirs, *self.config.hidden]:
            real = Path(os.path.realpath(path))
            if real != ws and _inside(real, ws) and real.exists() and real not in hidden:
                hidden.append(real)
        return protected, hidden

    def _ro_binds(self) -> list[Path]:
        """Extra read-only binds, resolved, without those already covered by another bind."""
        covered = [Path(os.path.realpath(d)) for d in SYSTEM_DIRS]
        paths: list[Path] = []
        for raw in [*_python_dirs(), SCRIPT_HOOK, *self.config.extra_ro_binds]:
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
        env = {
            "PATH": f"{exe_dir}:{SANDBOX_PATH}",
            "HOME": str(self.workspace),
            "TMPDIR": "/tmp",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "TERM": "dumb",
            "NO_COLOR": "1",
            "PAGER": "cat",
            "GIT_PAGER": "cat",
            # .git may belong to someone else (it is read-only inside): let git read it.
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "safe.directory",
            "GIT_CONFIG_VALUE_0": "*",
            # Spud's own venv serves as the sandbox's Python: its third-party pytest plugins
            # are Spud's, not the task's, and cost seconds on every test run.
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            # No .pyc files: one written in the same second as an edit of the same size hides
            # the edit from the next test run (the cache checks only mtime and size).
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        if self.config.network:
            env.update(network.proxy_env())
        return env

    def _scan(self, owner: tuple[int, int] | None, always: bool) -> tree.Scan | None:
        """Walk the workspace when needed, keeping self._used (bytes) up to date.

        The size is known exactly after a full walk; in between, it is raised by whatever
        space the filesystem lost (an upper bound: other writers only make it larger). A full
        walk runs whenever that bound passes the quota, so nothing over it goes unseen. With
        an owner (running as root), a walk also hands new entries to the sandbox uid; it
        skips the files of folders unchanged since the last walk.
        """
        free = tree.free_bytes(self.workspace)
        if self._used >= 0:
            self._used += max(0, self._free - free)
        self._free = free
        full = self._used < 0 or self._used > self.config.disk_mb * MIB
        if not (always or full):
            return None
        started = time.time_ns() - 1_000_000_000  # a second's margin for coarse timestamps
        result = tree.scan(
            self.workspace,
            owner,
            since_ns=None if full else self._walked,
            workspace_fd=self._ws_fd,
        )
        if always:
            self._walked = started
        if result.complete:
            self._used = result.bytes_used
        return result

    def time_limit(self, timeout_s: float | None) -> float:
        """The limit a call runs under: the caller may lower the configured one, not raise it."""
        if timeout_s is None or timeout_s <= 0:
            return self.config.timeout_s
        return min(timeout_s, self.config.timeout_s)

    def execute(self, command: str, timeout_s: float | None = None) -> ExecResult:
        """Run one command; never longer than the time limit, never more output than the cap."""
        limit = self.time_limit(timeout_s)
        start = time.monotonic()
        quota = self.config.disk_mb * MIB
        before = self._scan(self.owner, always=True)
        notes: list[str] = []
        over = self._used > quota
        if over:
            notes.append(_quota_note(self._used, quota, "before the command ran"))
        group = limits.make_cgroup(self.caps()) if self.cgroups != "none" else None
        rlimits = limits.prlimit_args(
            self.caps(), memory_as=True, nproc=self.privileged and group is None, over_quota=over
        )
        fd = seccomp.filter_fd(self.config.network)
        chain = [self.prlimit, *rlimits, "--", *self.argv(command, fd, before)]
        if group is not None:  # wait on stdin until moved into the cgroup, then become bwrap
            chain = ["/bin/sh", "-c", 'read -r _ && exec "$@" </dev/null', "sh", *chain]
        try:
            proc = subprocess.Popen(
                chain,
                stdin=subprocess.PIPE if group is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self._env(),
                start_new_session=True,
                pass_fds=(fd,) if self._ws_fd is None else (fd, self._ws_fd),
            )
        except OSError:
            if group is not None:
                group.close()
            raise
        finally:
            os.close(fd)
        try:
            if group is not None:
                _start_in(group, proc)
            output, timed_out = _collect(proc, start + limit, self.config.output_cap_bytes)
            oom = group is not None and group.oom_killed()
        finally:
            if group is not None:
                group.close()
        code = proc.wait()
        if oom:
            notes.append(
                f"[memory cap reached: the sandbox's processes together may use "
                f"{self.config.memory_mb} MiB; a process was killed]"
            )
        self._scan(None, always=False)
        if self._used > quota:
            notes.append(_quota_note(self._used, quota, "after the command"))
        return ExecResult(
            exit_code=128 - code if code < 0 else code,
            output=output.text(),
            timed_out=timed_out,
            truncated=output.truncated,
            total_bytes=output.total,
            seconds=round(time.monotonic() - start, 3),
            notes=notes,
        )


def _quota_note(used: int, quota: int, when: str) -> str:
    return (
        f"[disk quota: the workspace uses {used // MIB} MiB of its {quota // MIB} MiB {when}; "
        "until files are deleted, commands cannot write to files]"
    )


def _start_in(group: limits.Cgroup, proc: subprocess.Popen[bytes]) -> None:
    """Move the waiting launcher into the cgroup, then let it exec the sandbox."""
    assert proc.stdin is not None
    try:
        group.join(proc.pid)
    except OSError as exc:
        _kill_group(proc)
        raise SpudError(f"could not put the command in its cgroup: {exc}") from None
    proc.stdin.write(b"go\n")
    proc.stdin.close()


def _collect(proc: subprocess.Popen[bytes], deadline: float, cap: int) -> tuple[_Output, bool]:
    """Read merged output until the command closes it or the deadline passes (then kill)."""
    assert proc.stdout is not None
    output = _Output(cap)
    timed_out = False
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
    return output, timed_out


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill bwrap's whole process group; --die-with-parent takes the sandbox down with it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
