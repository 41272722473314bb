"""Script drafts: a chore or office task done by a script the model writes, run and repaired."""

from __future__ import annotations

import ast
import builtins
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spud.core.context import RAISED_LINE
from spud.core.messages import Message, ModelReply, ToolCall
from spud.core.protocols import Act, TextModel, Verifier
from spud.playbooks.base import show_file, workspace_files
from spud.playbooks.draft import (
    BLOCK,
    REDRAFT_TEMPERATURE,
    closed,
    has_code,
    said,
    syntax_error,
    usage_of,
)
from spud.sandbox.bubblewrap import SCRIPT_HOOK

MAX_DETAIL = 2500
SCRIPT_SYSTEM = "You are an expert Python programmer. You do file and office work with scripts."
SCRIPT_ASK = (
    "Write one Python 3 script that does this task, in one ```python block. It runs in the "
    "workspace folder (the current directory), where the files above are; it writes the "
    "outputs there{libraries}. The block's first line is a comment on what the script does."
)
# A 1.5B asked for memo.docx saved "May sales memo.docx" (the memo's heading), three rounds.
NAMED = ", under the names the task gives them: {names}"
SAVED_ASK = (
    "Write the complete {path} in one ```python block whose first line is a comment on what "
    "it does."
)
SCRIPT_REPAIR = (
    "The script ran. Its output:\n{output}\n\n{files}The checks say:\n{checks}\n\nWrite the "
    "corrected complete script in one ```python block whose first line is a comment on what "
    "was wrong."
)
EARLIER = (
    "A script written for this before failed the same way twice:\n{failure}\nWrite one that "
    "avoids it."
)
# Output checks see that a file exists, not that it is right: a 1.5B's first script often
# runs and makes the file with the wrong content (numbers left as text, a wrong layout), so the
# model is shown what it made, once, beside the task (execution feedback, as in Self-Debugging,
# Chen et al., 2023).
REVIEW = (
    "The script ran and the checks passed. What it made:\n\n{shown}\n\nCompare this with "
    "the task, point by point: names, order, layout, number formats, value types. If all of it "
    "is right, reply with the one word DONE. If anything differs, write the corrected complete "
    "script in one ```python block whose first line is a comment on what was wrong."
)
# Imports a 1.5B's scripts leave out (Font, Workbook and csv, two repairs each in one run),
# by the name the script uses: added above it when the script never binds that name.
IMPORTS = {
    "csv": "import csv",
    "json": "import json",
    "os": "import os",
    "re": "import re",
    "sys": "import sys",
    "math": "import math",
    "glob": "import glob",
    "shutil": "import shutil",
    "Path": "from pathlib import Path",
    "defaultdict": "from collections import defaultdict",
    "Counter": "from collections import Counter",
    "OrderedDict": "from collections import OrderedDict",
    "datetime": "from datetime import datetime",
    "date": "from datetime import date",
    "timedelta": "from datetime import timedelta",
    "pd": "import pandas as pd",
    "np": "import numpy as np",
    "openpyxl": "import openpyxl",
    "Workbook": "from openpyxl import Workbook",
    "load_workbook": "from openpyxl import load_workbook",
    "Font": "from openpyxl.styles import Font",
    "PatternFill": "from openpyxl.styles import PatternFill",
    "Alignment": "from openpyxl.styles import Alignment",
    "get_column_letter": "from openpyxl.utils import get_column_letter",
    "Document": "from docx import Document",
    "Presentation": "from pptx import Presentation",
}
DONE = re.compile(r"#?\s*DONE\b.*", re.IGNORECASE | re.DOTALL)
REVIEW_CHARS = 3000  # of each output shown for review
EARLIER_CHARS = 800
SHOWN_FILES = 15
Stamps = dict[str, tuple[int, int]]  # a file's size and change time, by path
HEREDOC = "SPUD_SCRIPT"
STDIN_FRAME = re.compile(r'^([ \t]*)File "<stdin>", line (\d+).*$', re.MULTILINE)


@dataclass
class ScriptDraft:
    """Rounds of script, run, check: a chore or office playbook's first steps on a text model."""

    task: str
    shown: str  # what the playbook gathered (files, inputs' heads, workbook grids)
    verifier: Verifier
    libraries: str = ""  # e.g. "; openpyxl is installed"
    # When the task asks for a script file: the draft is saved there and run by this command.
    save_as: str | None = None
    run: str | None = None
    ask: str | None = None  # what to write, when not SCRIPT_ASK's words
    prelude: str = ""  # code run before the script (e.g. data it needs), not shown to it
    sheets: list[str] = field(default_factory=list)  # workbooks the hook loads into SHEETS
    workspace: Path | None = None  # where the script runs: the files it made are shown to it
    outputs: list[str] = field(default_factory=list)  # the files the task asks for, by name
    # The loop after failed drafts cuts a 1.5B's scripts at 400 characters and repeats them
    # (4 of 4 dev runs it took over ended without a pass): drafts go on while time is left.
    rounds: int = 10
    max_tokens: int = 2048

    def __call__(self, model: TextModel, act: Act) -> None:
        named = NAMED.format(names=", ".join(self.outputs)) if self.outputs else ""
        what = self.ask or SCRIPT_ASK.format(libraries=named + self.libraries)
        if self.save_as:
            what = SAVED_ASK.format(path=self.save_as)
        ask = f"{self.task}\n\n{self.shown}\n\n{what}".replace("\n\n\n\n", "\n\n")
        chat = [Message(role="system", content=SCRIPT_SYSTEM), Message(role="user", content=ask)]
        unused: list[ModelReply] = []
        scripts: set[str] = set()
        failures: set[str] = set()
        temperature = None  # the model's own; for a fresh start, more varied
        passed = ""  # what the model said of the script whose outputs pass the checks now
        review: dict[str, Any] = {}  # the reply to the review of those outputs
        reviewed = False  # its outputs were shown to it once
        for _ in range(self.rounds):
            reply = model.chat(
                chat, max_tokens=self.max_tokens, temperature=temperature, until_block=True
            )
            text = reply.message.content
            chat.append(Message(role="assistant", content=text))
            script, problem = script_in(text)
            # the review found nothing to change (the local model's reply starts in a fence,
            # so its DONE comes as a "script")
            if passed and (problem or script in scripts or DONE.fullmatch(script.strip())):
                review = {"kind": "draft", "draft": text, "usage": usage_of(*unused, reply)}
                break
            if problem:
                temperature = REDRAFT_TEMPERATURE  # the same reply again would not help
                chat.append(Message(role="user", content=problem))
                unused.append(reply)
                continue
            if script in scripts:
                # The same script again (a 1.5B repeated one 5 times, told it had failed):
                # a new chat without the old scripts to copy, sampled more freely. For small
                # models fresh samples do as well as repairs (Olausson et al., 2023).
                chat, temperature = chat[:2], REDRAFT_TEMPERATURE
                unused.append(reply)
                continue
            temperature = None
            scripts.add(script)
            script = with_imports(script)
            meta = {"kind": "draft", "draft": text, "usage": usage_of(*unused, reply)}
            unused = []
            code = script
            if self.save_as:
                save = {"path": self.save_as, "content": script + "\n"}
                act(ToolCall(name="write_file", arguments=save), meta)
                command, meta = self.run or f"python3 {self.save_as}", {"kind": "draft"}
            else:
                code = given(script, self.prelude, self.sheets)
                if self.prelude:
                    code = f"{self.prelude}\n{code}"
                # under a hook that prints, after a crash's traceback, the values where it
                # failed (a 1.5B indexed lines[1] of a file it had not seen, five rounds)
                books = ["--sheets", *self.sheets] if self.sheets else []
                hook = shlex.join(["python3", str(SCRIPT_HOOK), *books])
                command = f"{hook} <<'{HEREDOC}'\n{code}\n{HEREDOC}"
            before = stamps(self.workspace)
            ran = act(ToolCall(name="bash", arguments={"command": command}), meta)
            if ran.meta.get("ok") and (moves := misnamed(self.outputs, before, self.workspace)):
                act(ToolCall(name="bash", arguments={"command": moves}), {"kind": "draft"})
            checks = self.verifier.check()
            passed = ""
            if ran.meta.get("ok") and all(c.passed for c in checks):
                passed = said(text) or "The script ran and its outputs were checked."
                made = [o for o in self.outputs if o != self.save_as]  # a saved script was run
                shown = "" if reviewed else made_text(self.workspace, made)
                if not shown:
                    break
                reviewed = True
                chat.append(Message(role="user", content=REVIEW.format(shown=shown)))
                continue
            failed = "\n".join(f"- {c.name}: {c.detail}" for c in checks if not c.passed)
            output = ran.content or ""
            failure = f"{crash(output)}\n{failed}"
            if failure in failures:
                # The same failure after a repair (a 1.5B kept int() on a CSV's header row
                # through three repairs): a fresh chat, as for a repeated script, told what
                # failed but not shown the script to copy.
                shown = last_frame(with_source(output, code))
                earlier = EARLIER.format(failure="\n".join(filter(None, [shown, failed])))
                chat = [chat[0], Message(role="user", content=f"{ask}\n\n{earlier}")]
                temperature = REDRAFT_TEMPERATURE
                continue
            failures.add(failure)
            if not self.save_as:
                output = with_source(output, code)
            repair = SCRIPT_REPAIR.format(
                output=output[-MAX_DETAIL:],
                files=made_files(before, stamps(self.workspace)),
                checks=failed or "- all passed",
            )
            chat.append(Message(role="user", content=repair))
        if passed:
            act(ToolCall(name="finish", arguments={"summary": passed}), review)


def made_text(workspace: Path | None, outputs: list[str]) -> str:
    """The text outputs as they are now, each under its name (office files are not text)."""
    if workspace is None:
        return ""
    shown = [
        show_file(workspace, rel, REVIEW_CHARS) for rel in outputs if (workspace / rel).is_file()
    ]
    return "\n\n".join(s for s in shown if not s.endswith("(not a text file)"))


def stamps(workspace: Path | None) -> Stamps | None:
    """Each workspace file's size and change time, to see what a script made."""
    if workspace is None:
        return None
    out = {}
    for rel in workspace_files(workspace, limit=2000):
        st = (workspace / rel).stat()
        out[rel] = (st.st_size, st.st_mtime_ns)
    return out


def misnamed(outputs: list[str], before: Stamps | None, workspace: Path | None) -> str:
    """A command that moves each missing output into place from the one file of its kind
    the script just created under another name; empty when there is none to move."""
    if before is None or workspace is None:
        return ""
    created = [p for p in (stamps(workspace) or {}) if p not in before and p not in outputs]
    moves = []
    for out in outputs:
        kind = Path(out).suffix.lower()
        if not kind or (workspace / out).exists():
            continue
        same = [p for p in created if Path(p).suffix.lower() == kind]
        wanted = [o for o in outputs if Path(o).suffix.lower() == kind]
        if len(same) == 1 and len(wanted) == 1:
            moves.append(shlex.join(["mv", "--", same[0], out]))
    return " && ".join(moves)


def made_files(before: Stamps | None, after: Stamps | None) -> str:
    """What a script created, changed and removed, in a few lines (a 1.5B asked for
    photos/2024/03/x.jpg did not see that it had written photos/2024/x.jpg)."""
    if before is None or after is None:
        return ""
    kinds = {
        "created": [p for p in after if p not in before],
        "changed": [p for p in after if p in before and after[p] != before[p]],
        "removed": [p for p in before if p not in after],
    }
    lines = []
    for kind, paths in kinds.items():
        if paths:
            more = f" and {len(paths) - SHOWN_FILES} more" if len(paths) > SHOWN_FILES else ""
            lines.append(f"Files it {kind}: {', '.join(paths[:SHOWN_FILES])}{more}")
    return "\n".join(lines or ["It created, changed or removed no file."]) + "\n\n"


def last_frame(output: str) -> str:
    """A crash's last frame, its error and the values the hook printed; empty without one."""
    at = output.rfind('\n  File "')
    return output[at + 1 :].rstrip()[:EARLIER_CHARS] if crash(output) and at >= 0 else ""


def crash(output: str) -> str:
    """The exception line of a traceback in a run's output (the error without its values),
    empty when the run did not crash."""
    found = RAISED_LINE.findall(output)
    return found[-1] if found else ""


def with_source(output: str, code: str) -> str:
    """A traceback of a script run from stdin, with the source line of each of its frames
    (python prints none for stdin, and "line 32" alone did not help a 1.5B find its bug)."""
    lines = code.splitlines()

    def shown(m: re.Match[str]) -> str:
        n = int(m[2])
        source = lines[n - 1].strip() if 0 < n <= len(lines) else ""
        return f"{m[0]}\n{m[1]}  {source}" if source else m[0]

    return STDIN_FRAME.sub(shown, output)


def with_imports(script: str) -> str:
    """The script with the imports it needs and lacks added on top (see IMPORTS); a name it
    binds anywhere, or a builtin, is left alone."""
    try:
        tree = ast.parse(script)
    except SyntaxError:
        return script
    used: set[str] = set()
    bound = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    wanted = [IMPORTS[n] for n in sorted(used - bound) if n in IMPORTS]
    return "\n".join([*wanted, script]) if wanted else script


def given(script: str, prelude: str, sheets: list[str] | None = None) -> str:
    """The script without its own top-level assignments to the names the prelude (or the
    hook's SHEETS) defines (a small model copies the data it was told it has, often cut short)."""
    names = {
        t.id
        for node in ast.parse(prelude).body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    } | ({"SHEETS"} if sheets else set())
    if not names:
        return script
    lines = script.splitlines(keepends=True)
    for node in reversed(ast.parse(script).body):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id in names for t in targets):
            del lines[node.lineno - 1 : node.end_lineno]
    return "".join(lines)


def script_in(reply: str) -> tuple[str, str]:
    """The reply's longest Python block that compiles, or why there is none."""
    blocks = sorted((b for b in BLOCK.findall(reply) if has_code(b)), key=len, reverse=True)
    if not blocks:
        return "", "Your reply had no ```python block. Reply with the script in one."
    error = f"it holds the line {HEREDOC}"
    for block in blocks:
        try:
            compile(block, "script", "exec")
        except SyntaxError as exc:
            if (fixed := closed(block, exc)) is None:
                error = syntax_error(block, exc)
                continue
            block = fixed
        if HEREDOC not in block:
            return block.rstrip("\n"), ""
    return "", f"The script is not valid Python ({error}). Reply with the corrected script."
