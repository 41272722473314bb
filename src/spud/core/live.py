"""Live choices: the argument values valid at this step (files, page refs, sheet names).

The grammar-only narrowing of core.tooling.with_choices; it reads the workspace and the
message list, and imports no tool module.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spud.core.messages import Message

MAX_CHOICES = 300  # more than this and the grammar falls back to the free pattern
SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", "node_modules", ".mypy_cache", ".ruff_cache"}
REF_IN_SNAPSHOT = re.compile(r"\[ref=((?:f\d+)?e\d+)\]")
BROWSER_RESULTS = 20  # how far back to look for the latest snapshot
MAX_WORKBOOKS = 20
WORKBOOK_MAX_BYTES = 5_000_000

Provider = Callable[[Any, list[Message]], list[str] | None]
_SHEETS: dict[tuple[str, float, int], list[str]] = {}


def existing_files(tool: Any, messages: list[Message]) -> list[str] | None:
    """Workspace-relative paths of the files there now (None when there are too many)."""
    workspace = Path(getattr(tool, "workspace", "")).resolve()
    found: list[str] = []
    for root, dirs, files in os.walk(workspace):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            path = Path(root, name)
            if path.is_symlink() and not path.resolve().is_relative_to(workspace):
                continue
            found.append(path.relative_to(workspace).as_posix())
            if len(found) > MAX_CHOICES:
                return None
    return found


def snapshot_refs(tool: Any, messages: list[Message]) -> list[str] | None:
    """Element refs shown by the latest browser result that showed any (None before one)."""
    seen = 0
    for m in reversed(messages):
        if m.role != "tool" or not (m.name or "").startswith("browser"):
            continue
        refs = list(dict.fromkeys(REF_IN_SNAPSHOT.findall(m.content)))
        if refs:
            return refs[:MAX_CHOICES] if len(refs) <= MAX_CHOICES else None
        seen += 1
        if seen >= BROWSER_RESULTS:
            break
    return None


def sheet_names(tool: Any, messages: list[Message]) -> list[str] | None:
    """Sheet names of the workbooks in the workspace (None if there are none or too many)."""
    files = existing_files(tool, messages)
    books = [f for f in files or [] if f.lower().endswith((".xlsx", ".xlsm"))]
    if not books or len(books) > MAX_WORKBOOKS:
        return None
    workspace = Path(tool.workspace)
    names: list[str] = []
    for rel in books:
        names += _workbook_sheets(workspace / rel)
    names = list(dict.fromkeys(names))
    return names if names and len(names) <= MAX_CHOICES else None


def _workbook_sheets(path: Path) -> list[str]:
    try:
        st = path.stat()
    except OSError:
        return []
    key = (str(path), st.st_mtime, st.st_size)
    if key not in _SHEETS:
        _SHEETS[key] = []
        if st.st_size <= WORKBOOK_MAX_BYTES:
            try:
                import openpyxl

                wb = openpyxl.load_workbook(path, read_only=True)
                _SHEETS[key] = list(wb.sheetnames)
                wb.close()
            except Exception:  # noqa: BLE001 - a broken workbook offers no choices
                pass
    return _SHEETS[key]


PROVIDERS: dict[str, Provider] = {
    "files": existing_files,
    "refs": snapshot_refs,
    "sheets": sheet_names,
}


def tool_choices(
    tool: Any,
    messages: list[Message],
    args: set[str] | None = None,
    memo: dict[tuple[str, str], list[str] | None] | None = None,
) -> dict[str, list[str]]:
    """A tool's live choices: from its `choices(messages)` method or its `live_args` names.

    Only arguments in args (when given) are looked up; memo shares one lookup per provider
    and workspace among the tools of a step.
    """
    method = getattr(tool, "choices", None)
    if callable(method):
        return {k: list(v) for k, v in method(messages).items() if v}
    memo = {} if memo is None else memo
    out: dict[str, list[str]] = {}
    for arg, kind in getattr(tool, "live_args", {}).items():
        if args is not None and arg not in args:
            continue
        key = (kind, str(getattr(tool, "workspace", "")))
        if key not in memo:
            memo[key] = PROVIDERS[kind](tool, messages)
        if memo[key]:
            out[arg] = list(memo[key] or [])
    return out
