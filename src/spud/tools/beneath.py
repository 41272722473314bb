"""Files beneath a directory fd: every path walked with O_NOFOLLOW, so no link leads out."""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import stat
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAX_LINKS = 40  # as the kernel's own limit on links followed in one lookup
MAX_DEPTH = 64  # folders deeper than this are not walked (each level holds an fd)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted in the workspace must not hang the host.
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY

# openat2(2), Linux >= 5.6: the kernel refuses any link and any step out of the directory.
_SYS_OPENAT2 = 437  # the same number on every architecture (the unified syscall table)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_syscall = ctypes.CDLL(None, use_errno=True).syscall
_syscall.restype = ctypes.c_long
USE_OPENAT2 = True  # turned off at the first ENOSYS (older kernel) or by tests


class Outside(Exception):
    """The path names something outside the directory (by '..', an absolute path or a link)."""


class Unusable(Exception):
    """The path cannot be used: a missing folder, a file where a folder is needed, a link loop."""


class Missing(Unusable):
    """A folder on the way does not exist."""


def _openat2(dir_fd: int, path: str, flags: int) -> int | None:
    """The fd, or None when openat2 is missing or the path has a link (then walk instead)."""
    global USE_OPENAT2
    if not USE_OPENAT2:
        return None
    how = _OpenHow(flags, 0, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)
    fd = _syscall(
        ctypes.c_long(_SYS_OPENAT2),
        ctypes.c_int(dir_fd),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd >= 0:
        return fd
    if ctypes.get_errno() in (errno.ENOSYS, errno.EPERM):  # old kernel, or a seccomp filter
        USE_OPENAT2 = False
    return None  # ELOOP (a link), EXDEV, EAGAIN, ENOENT…: the walk gives the precise answer


@dataclass
class Located:
    """Where a path ends: its parent folder (an open fd) and its last name; '' is the root."""

    dir_fd: int
    name: str
    parts: tuple[str, ...]  # the path from the root, links resolved
    fds: list[int] = field(default_factory=list)  # fds owned, closed by close()

    @property
    def rel(self) -> str:
        return "/".join(self.parts) or "."

    def lstat(self) -> os.stat_result | None:
        """What the name is now (a link is not followed), or None if it does not exist."""
        try:
            if not self.name:
                return os.fstat(self.dir_fd)
            return os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()

    def __enter__(self) -> Located:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class Beneath:
    """A directory held open; paths inside it are opened relative to it, never by name."""

    def __init__(self, root: Path | str, fd: int | None = None) -> None:
        """root: the folder's path (for absolute paths and messages); fd: the folder already
        open (e.g. a task's pinned workspace), used instead of opening root by its path."""
        self.root = Path(os.path.realpath(root))
        self.given = Path(os.path.abspath(root))
        self.fd = os.dup(fd) if fd is not None else os.open(self.root, DIR_FLAGS)
        self._close = weakref.finalize(self, os.close, self.fd)

    def close(self) -> None:
        self._close()

    def identity(self) -> tuple[int, int]:
        st = os.fstat(self.fd)
        return st.st_dev, st.st_ino

    def split(self, path: str) -> list[str]:
        """The parts of a path relative to the root; an absolute path must lie inside it."""
        if "\x00" in path:
            raise Unusable("the path contains a NUL character")
        if path.startswith("/"):
            for base in (self.given, self.root):
                try:
                    path = Path(os.path.normpath(path)).relative_to(base).as_posix()
                    break
                except ValueError:
                    continue
            else:
                raise Outside(path)
        return [p for p in path.split("/") if p not in ("", ".")]

    def locate(self, path: str, *, create_dirs: bool = False, follow: bool = True) -> Located:
        """Walk to a path's parent folder, one O_NOFOLLOW step at a time from the root.

        Links met on the way are followed only by reading them and walking on from where they
        are, so a link to outside the root (or a '..' above it) raises Outside. With follow,
        a link in the last place is resolved too; create_dirs makes missing folders."""
        pending = list(reversed(self.split(path)))
        stack: list[tuple[str, int]] = []
        links = 0
        try:
            while pending:
                part = pending.pop()
                if part in ("", "."):
                    continue
                if part == "..":
                    if not stack:
                        raise Outside(path)
                    os.close(stack.pop()[1])
                    continue
                cur = stack[-1][1] if stack else self.fd
                last = all(p in ("", ".") for p in pending)
                if last:
                    try:
                        st = os.stat(part, dir_fd=cur, follow_symlinks=False)
                    except FileNotFoundError:
                        st = None
                    if not (follow and st is not None and stat.S_ISLNK(st.st_mode)):
                        names = tuple(n for n, _ in stack) + (part,)
                        return Located(cur, part, names, [fd for _, fd in stack])
                else:
                    fd = self._open_dir(cur, part, create_dirs)
                    if fd is not None:
                        stack.append((part, fd))
                        continue
                links += 1  # `part` is a link: walk on along its target
                if links > MAX_LINKS:
                    raise Unusable(f"too many links ({MAX_LINKS}) in {path!r}")
                target = os.readlink(part, dir_fd=cur)
                if target.startswith("/"):
                    parts = self.split(target)  # Outside unless it points inside the root
                    for _, fd in stack:
                        os.close(fd)
                    stack.clear()
                else:
                    parts = target.split("/")
                pending.extend(reversed(parts))
            if not stack:
                return Located(self.fd, "", ())
            name, fd = stack.pop()
            os.close(fd)
            parent = stack[-1][1] if stack else self.fd
            return Located(parent, name, (*(n for n, _ in stack), name), [f for _, f in stack])
        except BaseException:
            for _, fd in stack:
                os.close(fd)
            raise

    @staticmethod
    def _open_dir(cur: int, part: str, create: bool) -> int | None:
        """A folder's fd; None when it is a link; Unusable when missing or not a folder."""
        for _ in range(MAX_LINKS):
            try:
                return os.open(part, DIR_FLAGS, dir_fd=cur)
            except FileNotFoundError:
                if not create:
                    raise Missing(f"no folder {part!r}") from None
                try:
                    os.mkdir(part, 0o777, dir_fd=cur)
                except FileExistsError:
                    pass
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                try:
                    st = os.stat(part, dir_fd=cur, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # it changed under us: look again
                if stat.S_ISLNK(st.st_mode):
                    return None
                if not stat.S_ISDIR(st.st_mode):
                    raise Unusable(f"{part!r} is a file, not a folder") from None
        raise Unusable(f"{part!r} keeps changing")

    def open(self, path: str, flags: int = READ_FLAGS) -> tuple[int, tuple[str, ...]]:
        """Open a path (links resolved inside the root only); its fd and its parts from the root."""
        parts = tuple(self.split(path))
        if ".." not in parts:  # the kernel does it in one call when no link is on the way
            fd = _openat2(self.fd, "/".join(parts) or ".", flags)
            if fd is not None:
                return fd, parts
        for _ in range(MAX_LINKS):
            with self.locate(path) as loc:
                try:
                    if not loc.name:
                        return os.open(".", flags & ~os.O_NOFOLLOW, dir_fd=loc.dir_fd), ()
                    return os.open(loc.name, flags, dir_fd=loc.dir_fd), loc.parts
                except OSError as exc:
                    if exc.errno != errno.ELOOP:  # ELOOP: it became a link after the walk
                        raise
        raise Unusable(f"{path!r} keeps changing")

    def read_file(self, path: str, max_bytes: int | None = None) -> tuple[bytes | None, str]:
        """A regular file's bytes (None when over max_bytes) and its canonical relative path."""
        fd, parts = self.open(path)
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a folder")
            if not stat.S_ISREG(st.st_mode):
                raise Unusable(f"{path!r} is not a regular file")
            if max_bytes is not None and st.st_size > max_bytes:
                return None, "/".join(parts)
            return read_all(fd), "/".join(parts)
        finally:
            os.close(fd)

    def replace(self, loc: Located, data: bytes) -> None:
        """Write a file atomically: a new file beside it, then renamed over it (never followed)."""
        if not loc.name:
            raise IsADirectoryError(errno.EISDIR, "is a folder")
        old = loc.lstat()
        if old is not None and stat.S_ISDIR(old.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder")
        tmp = f".{loc.name[:200]}.{secrets.token_hex(4)}.spud-tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o666, dir_fd=loc.dir_fd)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if old is not None and stat.S_ISREG(old.st_mode):
                    os.fchmod(fd, stat.S_IMODE(old.st_mode))
            finally:
                os.close(fd)
            os.rename(tmp, loc.name, src_dir_fd=loc.dir_fd, dst_dir_fd=loc.dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=loc.dir_fd)
            except OSError:
                pass
            raise

    def is_dir(self, path: str) -> bool:
        """Whether the path is a folder inside the root (links resolved inside only)."""
        try:
            with self.locate(path) as loc:
                st = loc.lstat()
        except (Outside, Unusable, OSError):
            return False
        return st is not None and stat.S_ISDIR(st.st_mode)

    def files(self, skip: set[str]) -> Iterator[str]:
        """Every regular file's relative path, sorted, without the folders named in skip.

        Folders are opened from their parent's fd with O_NOFOLLOW: a folder swapped for a link
        while walking is skipped, never followed. A link is given only if it resolves to a
        file inside the root; read it with read_file, which resolves it the same way."""
        walk: list[tuple[int, str, Iterator[str]]] = []
        fd, prefix = os.dup(self.fd), ""
        try:
            while True:
                dirs, files, links = _entries(fd, skip)
                for name in sorted([*files, *(n for n in links if self._file_inside(prefix + n))]):
                    yield prefix + name
                walk.append((fd, prefix, iter(dirs)))
                fd = -1
                while walk and fd == -1:
                    top, top_prefix, rest = walk[-1]
                    name = next(rest, None)
                    if name is None:
                        os.close(walk.pop()[0])
                    elif len(walk) < MAX_DEPTH:
                        try:
                            fd = os.open(name, DIR_FLAGS, dir_fd=top)
                        except OSError:
                            continue  # gone, or swapped for a link or a file: not followed
                        prefix = f"{top_prefix}{name}/"
                if fd == -1:
                    return
        finally:
            if fd != -1:
                os.close(fd)
            for top, _, _ in walk:
                os.close(top)

    def _file_inside(self, path: str) -> bool:
        try:
            with self.locate(path) as loc:
                st = loc.lstat()
        except (Outside, Unusable, OSError):
            return False
        return st is not None and stat.S_ISREG(st.st_mode)


def _entries(fd: int, skip: set[str]) -> tuple[list[str], list[str], list[str]]:
    """A folder's sub-folders (without skip), regular files and links, each sorted."""
    dirs: list[str] = []
    files: list[str] = []
    links: list[str] = []
    try:
        with os.scandir(fd) as it:
            for entry in it:
                try:
                    if entry.is_symlink():
                        links.append(entry.name)
                    elif entry.is_dir(follow_symlinks=False):
                        if entry.name not in skip:
                            dirs.append(entry.name)
                    elif entry.is_file(follow_symlinks=False):
                        files.append(entry.name)
                except OSError:
                    continue
    except OSError:
        pass
    return sorted(dirs), sorted(files), sorted(links)


def read_all(fd: int) -> bytes:
    """Everything left to read from an fd."""
    chunks: list[bytes] = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
