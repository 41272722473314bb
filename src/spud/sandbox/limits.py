"""Resource limits for one sandboxed command: a cgroup for the process tree, else rlimits."""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
MIB = 1024 * 1024
NEEDED = {"pids", "memory", "cpu"}
ENABLE = "+pids +memory +cpu"


@dataclass(frozen=True)
class Caps:
    """The numbers a command runs under (see SandboxConfig for what each one means)."""

    pids: int
    memory_mb: int
    cpus: float
    file_mb: int


def _own_cgroup(controller: str | None) -> str | None:
    """This process's cgroup path in the v1 hierarchy of `controller`, or in v2 (None)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _id, names, path = line.split(":", 2)
        if controller is None and _id == "0" and names == "":
            return path
        if controller is not None and controller in names.split(","):
            return path
    return None


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


@dataclass
class Cgroup:
    """One command's cgroup (v2, or the v1 pids/memory/cpu controllers): create, join, kill."""

    dirs: list[Path]
    version: int
    created: list[Path] = field(default_factory=list)

    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs]

    def join(self, pid: int) -> None:
        """Move a process (not yet forked) into every controller's group."""
        for procs in self.procs_files():
            procs.write_text(str(pid))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs_files():
            try:
                found.update(int(x) for x in procs.read_text().split())
            except (OSError, ValueError):
                pass
        return found

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process here for going over the memory cap."""
        for d in self.dirs:
            for name, key in (("memory.events", "oom_kill"), ("memory.oom_control", "oom_kill")):
                try:
                    for line in (d / name).read_text().splitlines():
                        word, _, value = line.partition(" ")
                        if word == key and int(value) > 0:
                            return True
                except (OSError, ValueError):
                    continue
        return False

    def close(self) -> None:
        """Kill whatever is left in the group and remove it."""
        kill = self.dirs[0] / "cgroup.kill"
        if self.version == 2 and kill.exists():
            try:
                kill.write_text("1")
            except OSError:
                pass
        for _ in range(200):
            left = self.pids()
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)
        for d in reversed(self.created):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def _v2_parent() -> Path | None:
    """A v2 cgroup we may create children in with pids+memory+cpu: <own>/spud.

    Processes may not sit in a cgroup whose controllers are handed to children (the root
    excepted), so Spud sets up <root>/spud itself only when it runs in the root cgroup; an
    admin can delegate one elsewhere by creating <own cgroup>/spud with those controllers.
    """
    own = _own_cgroup(None)
    if own is None or not (CGROUP_ROOT / "cgroup.subtree_control").exists():
        return None
    base = CGROUP_ROOT / own.lstrip("/")
    parent = base / "spud"
    try:
        if not parent.is_dir():
            if own != "/" or not NEEDED <= _words(base / "cgroup.controllers"):
                return None
            (base / "cgroup.subtree_control").write_text(ENABLE)
            parent.mkdir(exist_ok=True)
        if not NEEDED <= _words(parent / "cgroup.subtree_control"):
            (parent / "cgroup.subtree_control").write_text(ENABLE)
    except OSError:
        return None
    return parent if _writable_dir(parent) else None


def _words(path: Path) -> set[str]:
    return set(path.read_text().split())


def _v1_parents() -> dict[str, Path] | None:
    """Writable v1 pids/memory/cpu hierarchies (each at this process's own group)."""
    found: dict[str, Path] = {}
    for controller in ("pids", "memory", "cpu"):
        own = _own_cgroup(controller)
        base = CGROUP_ROOT / controller
        if own is None or not base.is_dir():
            return None
        path = base / own.lstrip("/")
        if not _writable_dir(path):
            return None
        found[controller] = path
    return found


def cgroup_support() -> str:
    """'v2', 'v1' or 'none': which per-command cgroups this machine lets Spud create."""
    if _v2_parent() is not None:
        return "v2"
    return "v1" if _v1_parents() is not None else "none"


def make_cgroup(caps: Caps) -> Cgroup | None:
    """A fresh cgroup with the caps applied, or None when no cgroup can be created here."""
    name = f"spud-{uuid.uuid4().hex[:12]}"
    memory = caps.memory_mb * MIB
    period = 100_000
    quota = max(int(caps.cpus * period), 1000)
    parent = _v2_parent()
    if parent is not None:
        group = Cgroup([parent / name], 2)
        try:
            group.dirs[0].mkdir()
            group.created.append(group.dirs[0])
            d = group.dirs[0]
            (d / "pids.max").write_text(str(caps.pids))
            (d / "memory.max").write_text(str(memory))
            if (d / "memory.swap.max").exists():
                (d / "memory.swap.max").write_text("0")
            (d / "cpu.max").write_text(f"{quota} {period}")
            return group
        except OSError:
            group.close()
            return None
    parents = _v1_parents()
    if parents is None:
        return None
    group = Cgroup([parents[c] / name for c in ("pids", "memory", "cpu")], 1)
    try:
        for d in group.dirs:
            d.mkdir()
            group.created.append(d)
        pids_dir, mem_dir, cpu_dir = group.dirs
        (pids_dir / "pids.max").write_text(str(caps.pids))
        (mem_dir / "memory.limit_in_bytes").write_text(str(memory))
        memsw = mem_dir / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            memsw.write_text(str(memory))
        (cpu_dir / "cpu.cfs_period_us").write_text(str(period))
        (cpu_dir / "cpu.cfs_quota_us").write_text(str(quota))
        return group
    except OSError:
        group.close()
        return None


def prlimit_args(caps: Caps, memory_as: bool, nproc: bool, over_quota: bool) -> list[str]:
    """prlimit options: per-process address space, file size, and processes per uid."""
    args = [f"--fsize={0 if over_quota else caps.file_mb * MIB}", "--core=0"]
    if memory_as:
        args.append(f"--as={caps.memory_mb * MIB}")
    if nproc:
        args.append(f"--nproc={caps.pids}")
    return args
