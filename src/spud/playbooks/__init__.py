"""Playbooks: workflows for common kinds of work, chosen from the task text and the workspace.

Each playbook is one module in this package that registers itself with `@playbook`; adding a
module adds a playbook and touches nothing else. The general loop stays the fallback.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from pathlib import Path

from spud.playbooks.base import Brief, Playbook
from spud.sandbox.bubblewrap import Sandbox

__all__ = ["Brief", "Playbook", "brief_for", "check", "choose", "playbook", "registered"]

_PLAYBOOKS: dict[str, Playbook] = {}
_LOADING = threading.RLock()
_LOADED: list[bool] = []
# modules of this package that are not playbooks
_SUPPORT = {
    "base",
    "cells_draft",
    "checks",
    "draft",
    "expected",
    "script_draft",
    "sheet_shapes",
    "task_shapes",
    "web_draft",
    "web_rows",
}


def playbook(cls: type) -> type:
    """Class decorator: register one instance of a playbook under its name."""
    instance = cls()
    _PLAYBOOKS[instance.name] = instance
    return cls


def registered() -> dict[str, Playbook]:
    """Every playbook, by name (the package's modules are imported on first use, once: a
    second thread waits rather than choosing among the half that registered so far)."""
    with _LOADING:
        if not _LOADED:
            for info in pkgutil.iter_modules(__path__):
                if info.name not in _SUPPORT:
                    importlib.import_module(f"{__name__}.{info.name}")
            _LOADED.append(True)
    return dict(_PLAYBOOKS)


def choose(task: str, workspace: Path) -> Playbook | None:
    """The playbook that fits this task best, or None for the general loop."""
    scored = [(pb.score(task, workspace), name, pb) for name, pb in registered().items()]
    best = max(scored, default=(0, "", None), key=lambda t: (t[0], t[1]))
    return best[2] if best[0] > 0 else None


def brief_for(
    task: str, workspace: Path, sandbox: Sandbox, name: str | None = None
) -> Brief | None:
    """The brief of the named playbook (or the best fit); None when no playbook applies."""
    check(name)
    if name == "none":
        return None
    book = registered()[name] if name else choose(task, workspace)
    return book.brief(task, workspace, sandbox) if book else None


def check(name: str | None) -> None:
    """A playbook name must be registered, "none", or empty (chosen from the task)."""
    if name and name != "none" and name not in registered():
        from spud.core.errors import ConfigError

        known = ", ".join(sorted(registered()))
        raise ConfigError(f"unknown playbook {name!r}; known: {known}, none")
