"""Walks a workspace by directory fd: hands it to the sandbox uid, sizes it, finds `.git`."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

MAX_GIT = 64  # read-only binds for .git entries, at most
MAX_DEPTH = 256
OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Scan:
    """What one walk found: bytes on disk, the `.git` entries, and how many entries it chowned.

    complete: False when folders unchanged since `since_ns` were skipped (bytes_used is then
    only what was looked at).
    """

    bytes_used: int = 0
    git: list[Path] = field(default_factory=list)
    chowned: int = 0
    complete: bool = True


def scan(
    workspace: Path,
    owner: tuple[int, int] | None,
    keep: set[Path] | None = None,
    since_ns: int | None = None,
    workspace_fd: int | None = None,
) -> Scan:
    """Walk the workspace without following symlinks or leaving its filesystem.

    owner: (uid, gid) that every root-owned entry is given (what Spud's host side wrote),
    except `.git` entries and their contents, paths in `keep`, and regular files with other
    hard links (which may live outside); other users' files are left alone. None: only
    measure. Walking by directory fd means a concurrent symlink swap cannot redirect a chown
    outside the workspace.
    since_ns: the start of a previous walk with the same owner. A folder that root does not own
    and that was not modified since then has no new entries (creating or renaming one in
    updates the folder's mtime), so only its subfolders are looked at, not its files.
    workspace_fd: the workspace already open (a task's pinned folder), walked instead of the path.
    """
    result = Scan()
    try:
        fd = os.dup(workspace_fd) if workspace_fd is not None else os.open(workspace, OPEN_DIR)
    except OSError:
        return result
    try:
        top = os.fstat(fd)
        if owner and top.st_uid == 0 and workspace not in (keep or ()):
            os.fchown(fd, *owner)
            result.chowned += 1
        walk = _Walk(top.st_dev, keep or set(), since_ns, result)
        walk.dir(fd, str(workspace), top, owner, 0)
    finally:
        os.close(fd)
    return result


@dataclass
class _Walk:
    dev: int
    keep: set[Path]
    since_ns: int | None
    result: Scan

    def dir(
        self, fd: int, path: str, st: os.stat_result, owner: tuple[int, int] | None, depth: int
    ) -> None:
        """Paths are plain strings here: pathlib per entry costs more than the stat."""
        if depth > MAX_DEPTH:
            return
        quick = (
            self.since_ns is not None
            and st.st_mtime_ns < self.since_ns
            and (owner is None or st.st_uid != 0)
        )
        try:
            entries = list(os.scandir(fd))
        except OSError:
            return
        for entry in entries:
            name = entry.name
            if quick and not entry.is_dir(follow_symlinks=False):
                self.result.complete = False
                if name == ".git" and not entry.is_symlink():
                    self._git(f"{path}/{name}")
                continue
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            self.result.bytes_used += est.st_blocks * 512
            is_git = name == ".git" and not stat.S_ISLNK(est.st_mode)
            if is_git:
                self._git(f"{path}/{name}")
            own = owner
            if owner and (is_git or (self.keep and Path(f"{path}/{name}") in self.keep)):
                own = None
            if own and est.st_uid == 0:
                if not (stat.S_ISREG(est.st_mode) and est.st_nlink > 1):
                    try:
                        os.chown(name, *own, dir_fd=fd, follow_symlinks=False)
                        self.result.chowned += 1
                    except OSError:
                        pass
            if stat.S_ISDIR(est.st_mode) and est.st_dev == self.dev:
                try:
                    sub = os.open(name, OPEN_DIR, dir_fd=fd)
                except OSError:
                    continue
                try:
                    self.dir(sub, f"{path}/{name}", est, own, depth + 1)
                finally:
                    os.close(sub)

    def _git(self, path: str) -> None:
        if len(self.result.git) < MAX_GIT:
            self.result.git.append(Path(path))


def free_bytes(path: Path) -> int:
    """Space left for unprivileged writers on the filesystem that holds `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def gitdir_of(git_file: Path) -> Path | None:
    """The directory a `.git` file points to (`gitdir: ...`), resolved, or None."""
    try:
        text = git_file.read_text(errors="replace")[:4096]
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("gitdir:"):
            target = Path(line.split(":", 1)[1].strip())
            if not target.is_absolute():
                target = git_file.parent / target
            return Path(os.path.realpath(target))
    return None
