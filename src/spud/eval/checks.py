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
    from spud.tools.office.recalc import recalculate
    from spud.tools.office.workbook import OfficeError, load_workbook

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


# -- office documents and served sites -------------------------------------------------------


def _open_sheet(ctx: CheckContext, path: str, sheet: str | None) -> tuple[Any, Any] | str:
    """(workbook, worksheet), or why they cannot be opened."""
    from spud.tools.office.workbook import OfficeError, load_workbook

    try:
        wb = load_workbook(ctx.workspace / path)
    except OfficeError as exc:
        return str(exc)
    if sheet is None:
        return wb, wb.active
    if sheet not in wb.sheetnames:
        return f"{path} has no sheet {sheet!r} (it has {', '.join(wb.sheetnames)})"
    return wb, wb[sheet]


def _cells(rng: str) -> list[list[str]]:
    """The cell names of a block such as 'B2:C5', row by row."""
    from openpyxl.utils import get_column_letter, range_boundaries

    c1, r1, c2, r2 = range_boundaries(rng.replace("$", "").upper())
    return [[f"{get_column_letter(c)}{r}" for c in range(c1, c2 + 1)] for r in range(r1, r2 + 1)]


def _same(got: Any, want: Any, tol: float) -> bool:
    """'' means an empty cell; numbers must be numbers (not text) within tol; text ignores case."""
    if want == "":
        return got is None or (isinstance(got, str) and not got.strip())
    if isinstance(want, int | float) and not isinstance(want, bool):
        if not isinstance(got, int | float) or isinstance(got, bool):
            return False
        return math.isclose(got, want, rel_tol=tol, abs_tol=tol)
    return got is not None and str(got).strip().lower() == str(want).strip().lower()


def range_values(
    ctx: CheckContext,
    path: str,
    range: str,  # noqa: A002 - the name suite files use
    values: list[list[Any]],
    sheet: str | None = None,
    tol: float = 1e-6,
) -> str | None:
    """Every cell of a block, after recalculating the workbook, holds values (rows of cells)."""
    from spud.tools.office.recalc import recalculate

    opened = _open_sheet(ctx, path, sheet)
    if isinstance(opened, str):
        return opened
    wb, ws = opened
    cells = _cells(range)
    if [len(r) for r in cells] != [len(r) for r in values]:
        raise ValueError(f"values do not have the shape of {range}")
    recalc = None
    for names, wants in zip(cells, values, strict=True):
        for name, want in zip(names, wants, strict=True):
            got = ws[name].value
            if isinstance(got, str) and got.startswith("="):
                recalc = recalc or recalculate(wb)
                got = recalc.value(ws.title, name)
            if not _same(got, want, tol):
                return f"{ws.title}!{name} is {got!r}, expected {want!r}"
    return None


def has_formulas(ctx: CheckContext, path: str, range: str, sheet: str | None = None) -> str | None:  # noqa: A002
    """Every cell of a block holds a formula (so it follows changes), not a typed-in value."""
    opened = _open_sheet(ctx, path, sheet)
    if isinstance(opened, str):
        return opened
    _, ws = opened
    for name in (n for row in _cells(range) for n in row):
        value = ws[name].value
        if not (isinstance(value, str) and value.startswith("=")):
            return f"{ws.title}!{name} holds {value!r}, not a formula"
    return None


def cell_format(
    ctx: CheckContext,
    path: str,
    range: str,  # noqa: A002
    sheet: str | None = None,
    number_format: str | None = None,
    bold: bool | None = None,
) -> str | None:
    """Every cell of a block has this number format and/or boldness."""
    opened = _open_sheet(ctx, path, sheet)
    if isinstance(opened, str):
        return opened
    _, ws = opened
    for name in (n for row in _cells(range) for n in row):
        cell = ws[name]
        if number_format is not None and cell.number_format != number_format:
            got = cell.number_format
            return f"{ws.title}!{name} has number format {got!r}, expected {number_format!r}"
        if bold is not None and bool(cell.font.b) != bold:
            return f"{ws.title}!{name} is {'' if cell.font.b else 'not '}bold"
    return None


def _document_text(ctx: CheckContext, path: str) -> str | None:
    """A .docx or .pptx as the markdown doc_read shows; other files as plain text."""
    from spud.tools.office.documents import docx_markdown, pptx_markdown

    target = ctx.workspace / path
    if not target.is_file():
        return None
    reader = {".docx": docx_markdown, ".pptx": pptx_markdown}.get(target.suffix.lower())
    return reader(target) if reader else ctx.read(path)


def doc_contains(
    ctx: CheckContext, path: str, lines: list[str] = (), regex: str | list[str] = ()
) -> str | None:
    """A document holds each of lines as a whole line (headings as '# ', bullets as '- ')
    and a match of each regex (multiline), as read by doc_read."""
    from spud.tools.office.workbook import OfficeError

    try:
        text = _document_text(ctx, path)
    except OfficeError as exc:
        return str(exc)
    if text is None:
        return f"{path} does not exist"
    have = {line.strip() for line in text.splitlines()}
    for line in lines:
        if line.strip() not in have:
            return f"{path} has no line {line!r}; it reads: {text[:300]!r}"
    for pattern in [regex] if isinstance(regex, str) else regex:
        if not re.search(pattern, text, re.MULTILINE):
            return f"{path} has no match for /{pattern}/; it reads: {text[:300]!r}"
    return None


def slide_titles(ctx: CheckContext, path: str, titles: list[str]) -> str | None:
    """The presentation's slides have exactly these titles, in this order."""
    from spud.tools.office.workbook import OfficeError, check_office_file

    target = ctx.workspace / path
    if not target.is_file():
        return f"{path} does not exist"
    try:
        check_office_file(target, (".pptx",))
        from pptx import Presentation

        slides = Presentation(str(target)).slides
    except (OfficeError, ValueError, KeyError, OSError) as exc:
        return f"{path} is not a readable presentation: {exc}"
    got = [(s.shapes.title.text if s.shapes.title is not None else "").strip() for s in slides]
    return (
        None
        if got == [t.strip() for t in titles]
        else f"{path} has slides {got}, expected {titles}"
    )


def csv_equals(ctx: CheckContext, path: str, rows: list[list[str]]) -> str | None:
    """The CSV file parses to exactly these rows (cells stripped, blank lines ignored)."""
    import csv
    import io

    content = ctx.read(path)
    if content is None:
        return f"{path} does not exist"
    got = [
        [cell.strip() for cell in row]
        for row in csv.reader(io.StringIO(content.lstrip("\ufeff")))
        if any(cell.strip() for cell in row)
    ]
    want = [[str(cell).strip() for cell in row] for row in rows]
    for i, (g, w) in enumerate(zip(got, want, strict=False), 1):
        if g != w:
            return f"{path} row {i} is {g}, expected {w}"
    if len(got) != len(want):
        return f"{path} has {len(got)} rows, expected {len(want)}"
    return None


def site_log(workspace: Path) -> Path:
    """Where the runner records a task's form submissions: beside the workspace, not in it."""
    return workspace.parent / f"{workspace.name}.site-requests.json"


def site_request(
    ctx: CheckContext, path: str, fields: dict[str, str | list[str]], method: str | None = None
) -> str | None:
    """The last form submission to path on the task's site (GET query or POST body) had these
    fields; an expected '' means the field was left out or empty (an unticked checkbox)."""
    import json

    log = site_log(ctx.workspace)
    sent = json.loads(log.read_text()) if log.is_file() else []
    where = "/" + path.lstrip("/")
    mine = [
        r
        for r in sent
        if r["path"] == where and (method is None or r["method"] == method.upper()) and r["fields"]
    ]
    if not mine:
        seen = ", ".join(f"{r['method']} {r['path']}" for r in sent) or "nothing"
        kind = f"{method.upper()} " if method else ""
        return f"no {kind}form submission to {where} (the site received: {seen})"
    got = mine[-1]["fields"]
    for name, want in fields.items():
        values = [v.strip() for v in got.get(name, [])]
        if want == "":
            ok = not any(values)
        else:
            ok = values == ([w.strip() for w in want] if isinstance(want, list) else [want.strip()])
        if not ok:
            return f"the submission to {where} sent {name}={values or 'nothing'}, expected {want!r}"
    return None


CHECKERS.update(
    {
        f.__name__: f
        for f in (
            range_values,
            has_formulas,
            cell_format,
            doc_contains,
            slide_titles,
            csv_equals,
            site_request,
        )
    }
)
