"""Each organisation's workspaces: folders under settings.home that its tasks work in."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pydantic import BaseModel

from spud.core.errors import ConfigError
from spud.service.errors import NotFound


class FileEntry(BaseModel):
    """One entry of a workspace folder."""

    path: str  # relative to the organisation's root
    name: str
    is_dir: bool
    size: int


class Workspaces:
    """Paths inside <home>/workspaces/<org id>; nothing outside it can be named."""

    def __init__(self, home: Path) -> None:
        self.base = Path(home).expanduser().resolve() / "workspaces"

    def root(self, org_id: str) -> Path:
        path = self.base / org_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def resolve(self, org_id: str, relative: str) -> Path:
        """The path for a relative name; absolute paths and escapes ('..') are errors."""
        pure = PurePosixPath(relative.strip() or ".")
        if pure.is_absolute() or ".." in pure.parts or "\x00" in relative:
            raise ConfigError(
                f"workspace path {relative!r} must be relative to your organisation's "
                "workspaces, without '..'"
            )
        root = self.root(org_id)
        path = (root / pure).resolve()
        if not path.is_relative_to(root):  # a symlink pointing out
            raise ConfigError(f"workspace path {relative!r} leads outside your workspaces")
        return path

    def workspace(self, org_id: str, name: str) -> Path:
        """A task's workspace folder, created when new."""
        path = self.resolve(org_id, name or "default")
        if path.exists() and not path.is_dir():
            raise ConfigError(f"workspace {name!r} is a file, not a folder")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def relative(self, org_id: str, path: Path | str) -> str:
        """How a stored absolute workspace path is shown to the organisation."""
        try:
            return str(Path(path).relative_to(self.root(org_id)))
        except ValueError:
            return str(path)

    def list(self, org_id: str, relative: str = "") -> list[FileEntry]:
        """The folder's entries, folders first, then by name."""
        folder = self.resolve(org_id, relative)
        if not folder.is_dir():
            raise NotFound(f"no folder {relative!r} in your workspaces")
        root = self.root(org_id)
        entries = [
            FileEntry(
                path=str(p.relative_to(root)),
                name=p.name,
                is_dir=p.is_dir(),
                size=p.stat().st_size if p.is_file() else 0,
            )
            for p in folder.iterdir()
            if not p.is_symlink()
        ]
        return sorted(entries, key=lambda e: (not e.is_dir, e.name))

    def file(self, org_id: str, relative: str) -> Path:
        """A file to download; a clear error when it is missing or a folder."""
        path = self.resolve(org_id, relative)
        if not path.is_file():
            raise NotFound(f"no file {relative!r} in your workspaces")
        return path
