"""File tools for the coding agent: read, list, search, write and exact-match edit."""

from __future__ import annotations

import difflib
import errno
import fnmatch
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, Field

from spud.core.messages import WORKSPACE_ORIGIN, ToolResult
from spud.tools.beneath import READ_FLAGS, Beneath, Located, Missing, Outside, Unusable, read_all

SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", "node_modules", ".mypy_cache", ".ruff_cache"}
READ_MAX_LINES = 400
READ_MAX_CHARS = 20000
LIST_MAX = 300
SEARCH_MAX = 100
SEARCH_MAX_FILE_BYTES = 2_000_000
LINE_MAX_CHARS = 300


def _error(message: str) -> ToolResult:
    return ToolResult(output=message, ok=False)


def _is_binary(data: bytes) -> bool:
    return b"\0" in data[:8192]


def _numbered(lines: list[str], first: int) -> str:
    return "\n".join(f"{n:>6}\t{line}" for n, line in enumerate(lines, start=first))


def _diff(rel: str, old: str | None, new: str) -> str:
    before = [] if old is None else old.splitlines(keepends=True)
    diff = difflib.unified_diff(
        before,
        new.splitlines(keepends=True),
        fromfile="/dev/null" if old is None else f"a/{rel}",
        tofile=f"b/{rel}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in diff)


def glob_match(rel: str, pattern: str) -> bool:
    """Shell-style match of a workspace-relative path; `*` also crosses folders."""
    pattern = pattern.removeprefix("./")
    variants = {pattern, pattern.replace("/**/", "/")}
    if pattern.startswith("**/"):
        variants.add(pattern[3:])
    return any(fnmatch.fnmatchcase(rel, p) for p in variants)


class WorkspaceTool:
    """Shared by the file tools: a workspace held open, and paths resolved safely inside it.

    Files are opened from the workspace's directory fd one O_NOFOLLOW step at a time
    (tools/beneath.py), so a folder or file swapped for a link never leads outside."""

    def __init__(self, workspace: Path, workspace_fd: int | None = None) -> None:
        """workspace_fd: the workspace already open (a task's pinned folder), else its path
        is opened now; either way later swaps of the path do not move the tools."""
        self.workspace = Path(workspace).resolve()
        self._fs: Beneath | None = None
        try:
            self._fs = Beneath(self.workspace, workspace_fd)
        except OSError:
            pass  # opened on first use (e.g. a workspace made after the tools)

    @property
    def fs(self) -> Beneath:
        if self._fs is None:
            self._fs = Beneath(self.workspace)
        return self._fs

    def _outside(self, path: str) -> ToolResult:
        return _error(
            f"refused: {path!r} is outside the workspace; "
            "use paths relative to the workspace (no '..', no links out of it)"
        )

    def locate(self, path: str, create_dirs: bool = False) -> Located | ToolResult:
        """Where a path ends inside the workspace (links followed inside only), or an error."""
        if not path.strip():
            return _error("path is empty; give a path relative to the workspace")
        try:
            return self.fs.locate(path, create_dirs=create_dirs)
        except Outside:
            return self._outside(path)
        except Missing:
            return _error(f"no such file: {path} (use list_files to find files)")
        except Unusable as exc:
            return _error(f"invalid path {path!r}: {exc}")
        except OSError as exc:
            return _error(f"invalid path {path!r}: {exc.strerror}")

    def resolve(self, path: str) -> Path | ToolResult:
        """The real path inside the workspace, or an error result if it would leave it."""
        if not path.strip():
            return _error("path is empty; give a path relative to the workspace")
        try:
            with self.fs.locate(path) as loc:
                return self.workspace.joinpath(*loc.parts)
        except Outside:
            return self._outside(path)
        except Missing:  # the rest does not exist yet, so it holds no link: lexical is exact
            rel = os.path.normpath("/".join(self.fs.split(path)) or ".")
            if rel == ".." or rel.startswith("../"):
                return self._outside(path)
            return self.workspace / rel
        except (Unusable, OSError) as exc:
            return _error(f"invalid path {path!r}: {getattr(exc, 'strerror', None) or exc}")

    def rel(self, target: Path) -> str:
        """A resolved path as the model should write it."""
        return target.relative_to(self.workspace).as_posix() or "."

    def read(self, path: str, max_bytes: int | None = None) -> tuple[bytes | None, str]:
        """A file's bytes and relative path, opened safely; raises Outside, Unusable, OSError."""
        return self.fs.read_file(path, max_bytes)

    def read_or_error(
        self, path: str, hint: str, folder_ok: bool = True
    ) -> tuple[bytes, str] | ToolResult:
        """A regular file's bytes and relative path, or the error result a tool returns."""
        if not path.strip():
            return _error("path is empty; give a path relative to the workspace")
        try:
            data, rel = self.read(path)
        except Outside:
            return self._outside(path)
        except IsADirectoryError:
            if not folder_ok:
                return _error(f"no such file: {path} ({hint})")
            return _error(f"{path} is a folder; use list_files to see what is in it")
        except (Missing, FileNotFoundError, NotADirectoryError):
            return _error(f"no such file: {path} ({hint})")
        except Unusable as exc:
            return _error(f"cannot read {path}: {exc}")
        except OSError as exc:
            return _error(f"cannot read {path}: {exc.strerror}")
        assert data is not None
        return data, rel or "."

    def walk(self) -> Iterator[Path]:
        """Every file under the workspace, sorted, skipping tool folders and outside links."""
        for rel in self.fs.files(SKIP_DIRS):
            yield self.workspace / rel


class ReadFile(WorkspaceTool):
    """read_file: a text file with line numbers, whole or a range of lines."""

    name = "read_file"
    live_args = {"path": "files"}  # the embedded model's grammar offers the files that exist
    risk = "read"
    description = (
        "Read a text file in the workspace. Shows line numbers and the total line count. "
        "Use start_line and end_line to read part of a long file."
    )

    class Args(BaseModel):
        path: str = Field(description="File path relative to the workspace.")
        start_line: int | None = Field(None, ge=1, description="First line to show (1-based).")
        end_line: int | None = Field(None, ge=1, description="Last line to show (inclusive).")

    def run(self, args: Args) -> ToolResult:
        got = self.read_or_error(args.path, "use list_files to find files")
        if isinstance(got, ToolResult):
            return got
        data, rel = got
        if _is_binary(data):
            return _error(f"{rel} is a binary file ({len(data)} bytes); it cannot be shown as text")
        lines = data.decode("utf-8", errors="replace").splitlines()
        total = len(lines)
        if total == 0:
            return ToolResult(output=f"{rel} is empty (0 lines)", data={"path": rel, "lines": 0})
        start = args.start_line or 1
        end = min(args.end_line or total, total)
        if start > total:
            return _error(f"start_line {start} is past the end of {rel} ({total} lines)")
        if end < start:
            return _error(f"end_line {end} is before start_line {start}")
        shown: list[str] = []
        size = 0
        for line in lines[start - 1 : end]:
            if len(shown) >= READ_MAX_LINES or (shown and size + len(line) > READ_MAX_CHARS):
                break
            if len(line) > READ_MAX_CHARS:
                line = line[:READ_MAX_CHARS] + f" [line cut at {READ_MAX_CHARS} characters]"
            shown.append(line)
            size += len(line) + 1
        last = start + len(shown) - 1
        header = f"{rel} ({total} lines)" + (
            f", lines {start}-{last}:" if (start, last) != (1, total) else ":"
        )
        text = f"{header}\n{_numbered(shown, start)}"
        if last < end:
            text += (
                f"\n[cut at line {last} of {total}; read the rest with "
                f"start_line={last + 1} and end_line={min(last + READ_MAX_LINES, end)}]"
            )
        data_out = {"path": rel, "lines": total, "start_line": start, "end_line": last}
        data_out["origin"] = WORKSPACE_ORIGIN  # anyone may have written the file
        return ToolResult(output=text, untrusted=True, data=data_out)


class ListFiles(WorkspaceTool):
    """list_files: files in the workspace matching a glob."""

    name = "list_files"
    risk = "read"
    description = (
        "List files in the workspace whose path matches a glob pattern, e.g. '**/*.py' or "
        "'src/*'. Skips .git, .venv, __pycache__ and node_modules."
    )

    class Args(BaseModel):
        pattern: str = Field("**/*", description="Glob over paths relative to the workspace.")

    def run(self, args: Args) -> ToolResult:
        pattern = args.pattern
        if not any(c in pattern for c in "*?[") and pattern.strip():
            try:
                with self.fs.locate(pattern) as folder:
                    st, parts = folder.lstat(), folder.parts
            except Outside:
                return self._outside(pattern)
            except (Unusable, OSError):
                st, parts = None, ()
            if st is not None and stat.S_ISDIR(st.st_mode):
                pattern = "/".join([*parts, "**/*"])
        matches = [rel for rel in self.fs.files(SKIP_DIRS) if glob_match(rel, pattern)]
        if not matches:
            return ToolResult(output=f"no files match {args.pattern!r}", data={"files": []})
        shown = matches[:LIST_MAX]
        text = "\n".join(shown)
        if len(matches) > LIST_MAX:
            text += (
                f"\n[showing {LIST_MAX} of {len(matches)} files; "
                "use a narrower pattern, e.g. 'src/**/*.py']"
            )
        data = {"files": shown, "total": len(matches), "origin": WORKSPACE_ORIGIN}
        return ToolResult(output=text, untrusted=True, data=data)


class Search(WorkspaceTool):
    """search: lines matching a literal text or a regex in the workspace's text files."""

    name = "search"
    risk = "read"
    description = (
        "Search text files in the workspace for a literal string (or a regular expression "
        "with regex=true). Returns path:line:text for each matching line."
    )

    class Args(BaseModel):
        query: str = Field(description="Text to look for (a Python regex if regex is true).")
        regex: bool = Field(False, description="Treat query as a regular expression.")
        glob: str | None = Field(None, description="Only search files matching this glob.")
        ignore_case: bool = Field(False, description="Match regardless of case.")

    def run(self, args: Args) -> ToolResult:
        if not args.query:
            return _error("query is empty")
        source = args.query if args.regex else re.escape(args.query)
        try:
            pattern = re.compile(source, re.IGNORECASE if args.ignore_case else 0)
        except re.error as exc:
            return _error(f"invalid regex {args.query!r}: {exc}; or search with regex=false")
        hits: list[str] = []
        for rel in self.fs.files(SKIP_DIRS):
            if args.glob and not glob_match(rel, args.glob):
                continue
            try:
                data, _ = self.read(rel, SEARCH_MAX_FILE_BYTES)
            except (Outside, Unusable, OSError):
                continue  # changed while searching
            if data is None or _is_binary(data):
                continue
            for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
                if pattern.search(line):
                    hits.append(f"{rel}:{n}:{line[:LINE_MAX_CHARS]}")
                    if len(hits) > SEARCH_MAX:
                        break
            if len(hits) > SEARCH_MAX:
                break
        if not hits:
            where = f" in files matching {args.glob!r}" if args.glob else ""
            return ToolResult(output=f"no matches for {args.query!r}{where}", data={"matches": 0})
        text = "\n".join(hits[:SEARCH_MAX])
        if len(hits) > SEARCH_MAX:
            text += f"\n[showing the first {SEARCH_MAX} matches; narrow the query or the glob]"
        data = {"matches": min(len(hits), SEARCH_MAX), "origin": WORKSPACE_ORIGIN}
        return ToolResult(output=text, untrusted=True, data=data)


# Binary office files: text written over one destroys it, so these go to the office tools.
OFFICE_WRITERS = {
    ".xlsx": "sheet_write",
    ".xlsm": "sheet_write",
    ".docx": "docx_write",
    ".pptx": "pptx_write",
    ".pdf": "docx_write for a .docx (Spud reads PDFs but does not write them)",
}


class WriteFile(WorkspaceTool):
    """write_file: create or overwrite a whole file, returning the diff."""

    name = "write_file"
    raw_text = "content"  # the embedded model writes it as a fenced block after the call
    risk = "write"
    description = (
        "Create a file, or replace all of its content, in the workspace. Creates missing "
        "folders. To change part of an existing file, use edit_file."
    )

    class Args(BaseModel):
        path: str = Field(description="File path relative to the workspace.")
        content: str = Field(description="The complete new content of the file.")

    def run(self, args: Args) -> ToolResult:
        target = self.resolve(args.path)
        if isinstance(target, ToolResult):
            return target
        if self.fs.is_dir(args.path):
            return _error(f"{args.path} is a folder; give a file path")
        rel = self.rel(target)
        writer = OFFICE_WRITERS.get(target.suffix.lower())
        if writer:
            return _error(
                f"{rel} is a binary {target.suffix} file; write_file would destroy it. "
                f"Use {writer} instead."
            )
        loc = self.locate(args.path, create_dirs=True)
        if isinstance(loc, ToolResult):
            return loc
        with loc:
            rel = loc.rel
            try:
                before = _current(loc)
                self.fs.replace(loc, args.content.encode("utf-8"))
            except IsADirectoryError:
                return _error(f"{args.path} is a folder; give a file path")
            except OSError as exc:
                return _error(f"cannot write {rel}: {exc.strerror}")
        old = None if before is None else before.decode("utf-8", errors="replace")
        diff = _diff(rel, old, args.content)
        lines = len(args.content.splitlines())
        if old is None:
            summary = f"created {rel} ({lines} lines)"
        elif not diff:  # small models copy a file back unchanged: say so plainly
            summary = f"{rel} unchanged: it already holds exactly this text"
        else:
            added, removed = _counts(diff)
            summary = f"wrote {rel} ({lines} lines, +{added} -{removed})"
        # Without this hint a 0.5B rewrote hello.py again and again instead of finishing
        # (a no-op write as a failed call made it worse: finishing after a failure is refused).
        summary += ". If the task is done, call finish."
        return ToolResult(output=summary, data={"path": rel, "diff": diff, "created": old is None})


def _current(loc: Located) -> bytes | None:
    """The file now at a located name (None if there is none), opened without following."""
    try:
        fd = os.open(loc.name, READ_FLAGS, dir_fd=loc.dir_fd)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder")
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return read_all(fd)
    finally:
        os.close(fd)


def _counts(diff: str) -> tuple[int, int]:
    lines = diff.splitlines()
    added = sum(1 for x in lines if x.startswith("+") and not x.startswith("+++"))
    removed = sum(1 for x in lines if x.startswith("-") and not x.startswith("---"))
    return added, removed


class EditFile(WorkspaceTool):
    """edit_file: replace one exact occurrence of a text in a file."""

    name = "edit_file"
    search_replace = ("old", "new")  # the embedded model writes SEARCH/REPLACE blocks
    live_args = {"path": "files"}
    risk = "write"
    description = (
        "Edit a file by replacing an exact piece of text. `old` must appear exactly once in "
        "the file (copy it from read_file output without the line numbers, including "
        "indentation); include surrounding lines to make it unique."
    )

    class Args(BaseModel):
        path: str = Field(description="File path relative to the workspace.")
        old: str = Field(description="The exact text to replace; must occur exactly once.")
        new: str = Field(description="The text to put in its place.")

    def run(self, args: Args) -> ToolResult:
        got = self.read_or_error(args.path, "use write_file to create a file", folder_ok=False)
        if isinstance(got, ToolResult):
            return got
        data, rel = got
        if not args.old:
            return _error("old is empty; give the exact text to replace (or use write_file)")
        if args.old == args.new:
            return _error("old and new are the same; nothing to change")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return _error(f"{rel} is not UTF-8 text; it cannot be edited with edit_file")
        starts = [m.start() for m in re.finditer(re.escape(args.old), text)]
        if not starts:
            hint = _closest(text, args.old)
            return _error(f"old text not found in {rel}; nothing changed.{hint}")
        if len(starts) > 1:
            where = ", ".join(str(text.count("\n", 0, i) + 1) for i in starts[:20])
            return _error(
                f"old text found {len(starts)} times in {rel} (at lines {where}); nothing "
                "changed. Include more surrounding lines in old so it matches exactly once."
            )
        new_text = text[: starts[0]] + args.new + text[starts[0] + len(args.old) :]
        loc = self.locate(rel)
        if isinstance(loc, ToolResult):
            return loc
        with loc:
            try:
                self.fs.replace(loc, new_text.encode("utf-8"))
            except OSError as exc:
                return _error(f"cannot write {rel}: {exc.strerror}")
        diff = _diff(rel, text, new_text)
        line = text.count("\n", 0, starts[0]) + 1
        added, removed = _counts(diff)
        summary = f"edited {rel} at line {line} (+{added} -{removed})"
        return ToolResult(output=summary, data={"path": rel, "diff": diff, "line": line})


def _closest(text: str, old: str) -> str:
    """A hint: the file lines closest to the first line of `old`, with their numbers."""
    wanted = next((x.strip() for x in old.splitlines() if x.strip()), "")
    lines = text.splitlines()
    if not wanted or len(lines) > 20000:
        return ""
    stripped = [x.strip() for x in lines]
    close = difflib.get_close_matches(wanted, stripped, n=3, cutoff=0.6)
    if not close:
        return " Read the file again to copy the exact text."
    numbered = [(i + 1, lines[i]) for i, x in enumerate(stripped) if x in close][:3]
    shown = "\n".join(f"{n:>6}\t{line}" for n, line in numbered)
    return f" Closest lines (check spaces and indentation):\n{shown}"
