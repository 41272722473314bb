"""Built-in checker functions: each returns None when the outcome is right, else why not."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spud.core.messages import Message


@dataclass
class CheckContext:
    """What a checker sees: the workspace after the run, the trajectory and how it ended."""

    workspace: Path
    messages: list[Message] = field(default_factory=list)
    status: str = ""
    summary: str = ""
    original: dict[str, str] = field(default_factory=dict)  # the task's files before the run

    def read(self, path: str) -> str | None:
        target = self.workspace / path
        return target.read_text(errors="replace") if target.is_file() else None


def command(
    ctx: CheckContext, run: str, exit: int = 0, output: str | None = None, timeout: float = 60
) -> str | None:
    """Run a shell command in the workspace (with this Python first on PATH)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)
    try:
        proc = subprocess.run(
            run,
            shell=True,
            cwd=ctx.workspace,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return f"`{run}` took more than {timeout:.0f}s"
    text = (proc.stdout + proc.stderr).strip()
    if proc.returncode != exit:
        return f"`{run}` exited {proc.returncode}, expected {exit}: {text[-300:]}"
    if output is not None and output not in text:
        return f"`{run}` output lacks {output!r}: {text[-300:]}"
    return None


def file_exists(ctx: CheckContext, path: str) -> str | None:
    return None if (ctx.workspace / path).exists() else f"{path} does not exist"


def file_absent(ctx: CheckContext, path: str) -> str | None:
    return f"{path} still exists" if (ctx.workspace / path).exists() else None


def file_contains(
    ctx: CheckContext, path: str, text: str | None = None, regex: str | None = None
) -> str | None:
    """The file holds text (exactly) or a match of regex (multiline)."""
    content = ctx.read(path)
    if content is None:
        return f"{path} does not exist"
    if text is not None and text not in content:
        return f"{path} lacks {text!r}"
    if regex is not None and not re.search(regex, content, re.MULTILINE):
        return f"{path} has no match for /{regex}/"
    return None


def file_lacks(ctx: CheckContext, path: str, text: str) -> str | None:
    content = ctx.read(path)
    if content is None:
        return f"{path} does not exist"
    return f"{path} still holds {text!r}" if text in content else None


def file_equals(ctx: CheckContext, path: str, text: str) -> str | None:
    """The file's content, ignoring surrounding whitespace, is exactly text."""
    content = ctx.read(path)
    if content is None:
        return f"{path} does not exist"
    if content.strip() != text.strip():
        return f"{path} is {content.strip()[:120]!r}, expected {text.strip()[:120]!r}"
    return None


def file_unchanged(ctx: CheckContext, path: str) -> str | None:
    """The file is as the task gave it (e.g. the tests a fix must not edit)."""
    content = ctx.read(path)
    if content is None:
        return f"{path} was deleted"
    return None if content == ctx.original.get(path) else f"{path} was changed"


def cell_value(
    ctx: CheckContext, path: str, cell: str, value: Any, sheet: str | None = None, tol: float = 1e-6
) -> str | None:
    """A cell's value after recalculating every formula in the workbook."""
    from spud.tools.sheets import OfficeError, load_workbook, recalculate

    try:
        wb = load_workbook(ctx.workspace / path)
    except OfficeError as exc:
        return str(exc)
    ws = wb[sheet] if sheet else wb.active
    if sheet and sheet not in wb.sheetnames:
        return f"{path} has no sheet {sheet!r}"
    raw = ws[cell].value
    got = (
        recalculate(wb).value(ws.title, cell)
        if isinstance(raw, str) and raw.startswith("=")
        else raw
    )
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            ok = math.isclose(float(got), float(value), rel_tol=tol, abs_tol=tol)
        except (TypeError, ValueError):
            ok = False
    else:
        ok = str(got).strip().lower() == str(value).strip().lower()
    return None if ok else f"{ws.title}!{cell} is {got!r}, expected {value!r}"


def answer_contains(ctx: CheckContext, text: str) -> str | None:
    """The final answer (finish summary) mentions text, case-insensitively."""
    if text.lower() in ctx.summary.lower():
        return None
    return f"the answer {ctx.summary[:160]!r} does not mention {text!r}"


def called(ctx: CheckContext, tool: str, args: dict[str, Any] | None = None) -> str | None:
    """Some call of tool had (at least) these arguments."""
    for m in ctx.messages:
        for c in m.tool_calls:
            if c.name == tool and all(c.arguments.get(k) == v for k, v in (args or {}).items()):
                return None
    return f"no call {tool}({args or ''})"


def not_called(ctx: CheckContext, tool: str) -> str | None:
    made = any(c.name == tool for m in ctx.messages for c in m.tool_calls)
    return f"{tool} was called" if made else None


def status(ctx: CheckContext, value: str = "finished") -> str | None:
    return None if ctx.status == value else f"the run ended {ctx.status!r}, expected {value!r}"


CHECKERS: dict[str, Callable[..., str | None]] = {
    f.__name__: f
    for f in (
        command,
        file_exists,
        file_absent,
        file_contains,
        file_lacks,
        file_equals,
        file_unchanged,
        cell_value,
        answer_contains,
        called,
        not_called,
        status,
    )
}


def run_checks(
    ctx: CheckContext, checks: list[dict[str, Any]], checkers: dict[str, Callable[..., str | None]]
) -> str | None:
    """The first failing check's reason, or None when all pass; a checker bug fails the task."""
    for check in checks:
        args = {k: v for k, v in check.items() if k != "fn"}
        try:
            problem = checkers[check["fn"]](ctx, **args)
        except Exception as exc:
            problem = f"checker {check['fn']} failed: {type(exc).__name__}: {exc}"
        if problem:
            return problem
    return None
