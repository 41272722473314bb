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
    """What one walk found: bytes on disk, the `.git` entries, and how many entries it chowned."""

    bytes_used: int = 0
    git: list[Path] = field(default_factory=list)
    chowned: int = 0


def scan(workspace: Path, owner: tuple[int, int] | None, keep: set[Path] | None = None) -> Scan:
    """Walk the workspace without following symlinks or leaving its filesystem.

    owner: (uid, gid) that every entry is given, except `.git` entries and their contents,
    paths in `keep`, and regular files with other hard links (which may live outside). None:
    only measure. Walking by directory fd means a concurrent symlink swap cannot redirect a
    chown outside the workspace.
    """
    result = Scan()
    keep = keep or set()
    try:
        fd = os.open(workspace, OPEN_DIR)
    except OSError:
        return result
    try:
        top = os.fstat(fd)
        if owner and (top.st_uid, top.st_gid) != owner and workspace not in keep:
            os.fchown(fd, *owner)
            result.chowned += 1
        _walk(fd, workspace, top.st_dev, owner, keep, result, 0)
    finally:
        os.close(fd)
    return result


def _walk(
    fd: int,
    path: Path,
    dev: int,
    owner: tuple[int, int] | None,
    keep: set[Path],
    result: Scan,
    depth: int,
) -> None:
    if depth > MAX_DEPTH:
        return
    try:
        entries = list(os.scandir(fd))
    except OSError:
        return
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        child = path / entry.name
        result.bytes_used += st.st_blocks * 512
        is_git = entry.name == ".git" and not stat.S_ISLNK(st.st_mode)
        if is_git and len(result.git) < MAX_GIT:
            result.git.append(child)
        own = owner if owner and not is_git and child not in keep else None
        if own and (st.st_uid, st.st_gid) != own:
            if not (stat.S_ISREG(st.st_mode) and st.st_nlink > 1):
                try:
                    os.chown(entry.name, *own, dir_fd=fd, follow_symlinks=False)
                    result.chowned += 1
                except OSError:
                    pass
        if stat.S_ISDIR(st.st_mode) and st.st_dev == dev:
            try:
                sub = os.open(entry.name, OPEN_DIR, dir_fd=fd)
            except OSError:
                continue
            try:
                _walk(sub, child, dev, own, keep, result, depth + 1)
            finally:
                os.close(sub)


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
