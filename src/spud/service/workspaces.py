"""Each organisation's workspaces: folders under settings.home, pinned to the folder made."""

from __future__ import annotations

import errno
import os
import stat
import weakref
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from pydantic import BaseModel

from spud.core.errors import ConfigError, SpudError
from spud.service.errors import NotFound
from spud.tools.beneath import DIR_FLAGS, READ_FLAGS

# The chat agent works in "default" (service/chat.py): it counts as a workspace for nesting.
SHARED_WORKSPACES = ("default",)
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class FileEntry(BaseModel):
    """One entry of a workspace folder."""

    path: str  # relative to the organisation's root
    name: str
    is_dir: bool
    size: int


class WorkspaceChanged(SpudError):
    """A task's workspace is not the folder it was created with (swapped, linked, removed)."""


class _Held:
    """An open fd, closed by close() or when the object goes away."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._close = weakref.finalize(self, os.close, fd)

    @property
    def proc_path(self) -> str:
        """A path that names exactly this open file or folder, whatever its name is now."""
        return f"/proc/self/fd/{self.fd}"

    def close(self) -> None:
        self._close()


class PinnedWorkspace(_Held):
    """A task's workspace, opened without following links and checked against its pin.

    Keep it open while the task runs: `fd` (or `proc_path`) names the checked folder even if
    its path is swapped afterwards, e.g. bwrap `--bind /proc/self/fd/N <path>` with pass_fds."""

    def __init__(self, fd: int, path: Path, identity: str) -> None:
        super().__init__(fd)
        self.path = path
        self.identity = identity


class OpenFile(_Held):
    """A workspace file opened for download: serve `proc_path`, then close."""

    def __init__(self, fd: int, name: str, size: int) -> None:
        super().__init__(fd)
        self.name = name
        self.size = size


def identity_of(fd: int) -> str:
    """A folder's identity as stored with a task: its device and inode."""
    st = os.fstat(fd)
    return f"{st.st_dev}:{st.st_ino}"


class Workspaces:
    """Paths inside <home>/workspaces/<org id>; nothing outside it can be named."""

    def __init__(self, home: Path) -> None:
        self.base = Path(home).expanduser().resolve() / "workspaces"

    def root(self, org_id: str) -> Path:
        path = self.base / org_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def parts(self, relative: str) -> tuple[str, ...]:
        """A relative name's folders; absolute paths and escapes ('..') are errors."""
        pure = PurePosixPath(relative.strip() or ".")
        if pure.is_absolute() or ".." in pure.parts or "\x00" in relative:
            raise ConfigError(
                f"workspace path {relative!r} must be relative to your organisation's "
                "workspaces, without '..'"
            )
        return tuple(p for p in pure.parts if p != ".")

    def resolve(self, org_id: str, relative: str) -> Path:
        """The path for a relative name, checked: no '..', no absolute path, no link on the way."""
        parts = self.parts(relative)
        try:
            os.close(self._walk(org_id, parts, relative))
        except FileNotFoundError:
            pass  # not made yet: the name itself is checked
        return self.root(org_id).joinpath(*parts)

    def workspace(self, org_id: str, name: str) -> Path:
        """A workspace folder, created when new; never the organisation's root itself."""
        return self.pin(org_id, name)[0]

    def pin(self, org_id: str, name: str) -> tuple[Path, str]:
        """Make (or open) a workspace folder without following links: its path and identity."""
        parts = self.parts(name or "default")
        if not parts:
            raise ConfigError(
                f"workspace {name!r} is the whole of your organisation's workspaces: "
                "name a folder in it instead, e.g. 'default' or 'project-x'"
            )
        fd = self._walk(org_id, parts, name, create=True)
        try:
            return self.root(org_id).joinpath(*parts), identity_of(fd)
        finally:
            os.close(fd)

    def nested(self, org_id: str, name: str, others: Iterable[str]) -> str | None:
        """Another workspace (stored path or name) that contains this one or lies inside it."""
        mine = self.parts(name or "default")
        root = self.root(org_id)
        for other in [*SHARED_WORKSPACES, *others]:
            try:
                path = Path(other)
                theirs = path.relative_to(root).parts if path.is_absolute() else self.parts(other)
            except (ValueError, ConfigError):
                continue
            short = min(len(mine), len(theirs))
            if theirs and mine != theirs and mine[:short] == theirs[:short]:  # '.' never runs
                return "/".join(theirs) or "."
        return None

    def open_pinned(self, org_id: str, stored: str, identity: str | None) -> PinnedWorkspace:
        """A task's workspace, opened again exactly as pinned; WorkspaceChanged if it is not.

        Every folder on the way is opened with O_NOFOLLOW from the organisation's root, so a
        folder swapped for a link is refused; the folder reached must have the pinned inode."""
        root = self.root(org_id)
        try:
            parts = Path(stored).relative_to(root).parts
        except ValueError:
            raise WorkspaceChanged(
                f"refused to run: the task's workspace {stored} is not in its organisation's "
                "workspaces; nothing was run"
            ) from None
        name = "/".join(parts) or "."
        if not parts:
            raise WorkspaceChanged(
                "refused to run: the task's workspace is the organisation's root ('.'), which "
                "holds every other workspace; create the task again in a folder"
            )
        try:
            fd = self._walk(org_id, parts, name)
        except FileNotFoundError:
            raise WorkspaceChanged(
                f"refused to run: the workspace {name!r} was removed after the task was "
                "created; nothing was run"
            ) from None
        except ConfigError as exc:
            raise WorkspaceChanged(f"refused to run: {exc}; nothing was run") from None
        now = identity_of(fd)
        if identity is not None and now != identity:
            os.close(fd)
            raise WorkspaceChanged(
                f"refused to run: the workspace {name!r} was replaced by another folder after "
                "the task was created; nothing was run (create the task again to use it)"
            )
        return PinnedWorkspace(fd, root.joinpath(*parts), now)

    def relative(self, org_id: str, path: Path | str) -> str:
        """How a stored absolute workspace path is shown to the organisation."""
        try:
            return str(Path(path).relative_to(self.root(org_id)))
        except ValueError:
            return str(path)

    def list(self, org_id: str, relative: str = "") -> list[FileEntry]:
        """The folder's entries, folders first, then by name; links are left out."""
        parts = self.parts(relative)
        try:
            fd = self._walk(org_id, parts, relative)  # ConfigError for a link on the way
        except FileNotFoundError:
            raise NotFound(f"no folder {relative!r} in your workspaces") from None
        entries = []
        try:
            with os.scandir(fd) as it:
                for e in it:
                    if e.is_symlink():
                        continue
                    is_dir = e.is_dir(follow_symlinks=False)
                    is_file = e.is_file(follow_symlinks=False)
                    size = e.stat(follow_symlinks=False).st_size if is_file else 0
                    path = "/".join([*parts, e.name])
                    entries.append(FileEntry(path=path, name=e.name, is_dir=is_dir, size=size))
        finally:
            os.close(fd)
        return sorted(entries, key=lambda e: (not e.is_dir, e.name))

    def file(self, org_id: str, relative: str) -> OpenFile:
        """A file to download, opened without following links; a clear error when missing."""
        parts = self.parts(relative)
        missing = NotFound(f"no file {relative!r} in your workspaces")
        if not parts:
            raise missing
        try:
            folder = self._walk(org_id, parts[:-1], relative)  # ConfigError for a link
        except FileNotFoundError:
            raise missing from None
        try:
            fd = os.open(parts[-1], READ_FLAGS, dir_fd=folder)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ConfigError(f"{relative!r} is a link: links are not downloaded") from None
            raise missing from None
        finally:
            os.close(folder)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise missing
        os.set_blocking(fd, True)
        return OpenFile(fd, parts[-1], st.st_size)

    def add_file(self, org_id: str, folder: str, name: str, data: bytes) -> str:
        """Write a new file into a workspace folder; an existing file is never replaced (the
        new one is named "name (2).ext" and so on). Its path relative to the org's root."""
        base = PurePosixPath(name.replace("\\", "/")).name.strip()
        if base in ("", ".", "..") or "\x00" in base:
            raise ConfigError(f"{name!r} is not a file name Spud can save")
        parts = self.parts(folder)
        stem, suffix = PurePosixPath(base).stem, PurePosixPath(base).suffix
        fd = self._walk(org_id, parts, folder, create=True)
        try:
            for n in range(1, 1000):
                candidate = base if n == 1 else f"{stem} ({n}){suffix}"
                try:
                    out = os.open(candidate, NEW_FILE_FLAGS, 0o644, dir_fd=fd)
                except FileExistsError:
                    continue
                with os.fdopen(out, "wb") as f:
                    f.write(data)
                return "/".join([*parts, candidate])
        finally:
            os.close(fd)
        raise ConfigError(f"{folder}/{base} and 998 copies of it exist already")

    def _walk(self, org_id: str, parts: tuple[str, ...], name: str, create: bool = False) -> int:
        """An fd of the folder at parts, each step opened with O_NOFOLLOW from the root.

        FileNotFoundError when missing (unless create); ConfigError for a link or a file."""
        fd = os.open(self.root(org_id), DIR_FLAGS)
        try:
            for part in parts:
                try:
                    step = os.open(part, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(part, 0o777, dir_fd=fd)
                    except FileExistsError:
                        pass
                    step = self._step(fd, part, name)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise ConfigError(f"workspace path {name!r}: {exc.strerror}") from None
                    step = self._step(fd, part, name)
                os.close(fd)
                fd = step
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def _step(fd: int, part: str, name: str) -> int:
        try:
            return os.open(part, DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
        kind = os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode
        what = "a link" if stat.S_ISLNK(kind) else "a file"
        raise ConfigError(
            f"workspace {name!r} is not a plain folder: {part!r} is {what} "
            "(links are not followed in workspaces)"
        )
