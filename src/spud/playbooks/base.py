"""What a playbook is and gives a run, plus helpers to read the task and the workspace."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from spud.core.protocols import Opening, Verifier
from spud.sandbox.bubblewrap import Sandbox
from spud.sandbox.policy import Rule

# The system prompt's head when a playbook runs; the playbook's own steps follow it.
SYSTEM_HEAD = """You are Spud, an agent that completes tasks by calling tools.
All file paths are relative to the workspace folder, which is the current directory.
Each reply is exactly one tool call."""
FILE_NAME = re.compile(r"(?<![\w/.@-])((?:[\w-]+/)*[\w.-]+\.[A-Za-z][A-Za-z0-9]{0,4})\b")
URL = re.compile(r"https?://[^\s'\"<>)]+")
# What a file the task asks for is named like (abbreviations, attributes, patterns are not).
FILE_TYPES = set(
    "txt csv tsv json jsonl md rst py js ts html htm css xml yaml yml toml ini cfg conf log "
    "sql sh bat xlsx xlsm xls docx pptx odt ods pdf png jpg jpeg gif svg mp3 mp4 zip gz tar "
    "ics vcf env out dat bak".split()
)
PLACEHOLDER = re.compile(r"YYYY|MMDD|HHMM|\.EXT$|[*<>{}]")
SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", "node_modules", ".venv", ".spud"}


@dataclass
class Brief:
    """What a playbook adds to a run: prompt lines, gathered context, checks, tool sets."""

    playbook: str
    prompt: str
    context: str = ""
    verifier: Verifier | None = None
    toolsets: set[str] = field(default_factory=set)
    tools: set[str] | None = None  # the only tools the model is shown (None: every one)
    rules: list[Rule] = field(default_factory=list)  # policy rules that only tighten
    choices: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # grammar only
    opening: Opening | None = None  # first steps taken for a text model (code drafts)

    def task_text(self, task: str) -> str:
        """The task as the model sees it: the request, then what was gathered for it."""
        if not self.context:
            return task
        return f"{task}\n\n{self.context}"


class Playbook(Protocol):
    """A workflow for one kind of work."""

    name: str

    def score(self, task: str, workspace: Path) -> int:
        """How well this playbook fits (0: not at all)."""
        ...

    def brief(self, task: str, workspace: Path, sandbox: Sandbox) -> Brief:
        """Look at the workspace and build the run's brief (may run read-only commands)."""
        ...


def named_files(task: str) -> list[str]:
    """File names the task mentions, in order, without URLs' paths or duplicates."""
    text = URL.sub(" ", task)
    seen: dict[str, None] = {}
    for match in FILE_NAME.finditer(text):
        name = match.group(1).strip(".")
        if "." in name and not name.replace(".", "").isdigit():
            seen.setdefault(name, None)
    return list(seen)


def inputs_and_outputs(task: str, files: list[str]) -> tuple[list[str], list[str]]:
    """The workspace files the task names (a bare name finds its one file in a folder), and
    the files it asks for: names that do not exist yet and look like files, not an `e.g.`,
    a `self.items`, a `DD.MM.YYYY` or a `IMG_YYYYMMDD.EXT` pattern."""
    present = set(files)
    by_name: dict[str, list[str]] = {}
    for rel in files:
        by_name.setdefault(rel.rsplit("/", 1)[-1], []).append(rel)
    inputs, outputs = [], []
    for name in named_files(task):
        found = [name] if name in present else by_name.get(name, [])
        if len(found) == 1:
            inputs.append(found[0])
        elif not found and _made_file(name):
            outputs.append(name)
    return list(dict.fromkeys(inputs)), outputs


def _made_file(name: str) -> bool:
    ext = name.rsplit(".", 1)[-1]
    return ext.lower() in FILE_TYPES and not PLACEHOLDER.search(name)


def workspace_files(workspace: Path, limit: int = 200) -> list[str]:
    """Relative paths of the files in a workspace (hidden and cache folders skipped)."""
    out: list[str] = []
    for path in sorted(workspace.rglob("*")):
        rel = path.relative_to(workspace)
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and not path.is_symlink():
            out.append(rel.as_posix())
            if len(out) >= limit:
                break
    return out


def show_file(workspace: Path, rel: str, max_chars: int = 6000, text: str | None = None) -> str:
    """A file's text (or the text given for it) in a fenced block under its name, cut with a
    note when long."""
    if text is None:
        try:
            text = (workspace / rel).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return f"{rel}: (not a text file)"
    cut = ""
    if len(text) > max_chars:
        text, cut = text[:max_chars], f"\n[cut at {max_chars} characters; read_file shows more]"
    return f"{rel}:\n```\n{text.rstrip()}\n```{cut}"


def head_lines(workspace: Path, rel: str, lines: int = 12) -> str:
    """The first lines of a text file under its name (for inputs that may be long)."""
    try:
        with (workspace / rel).open(encoding="utf-8") as f:
            first = [next(f, None) for _ in range(lines)]
    except (OSError, UnicodeDecodeError):
        return f"{rel}: (not a text file)"
    kept = "".join(line for line in first if line is not None)
    return f"{rel} (first {lines} lines):\n```\n{kept.rstrip()}\n```"
