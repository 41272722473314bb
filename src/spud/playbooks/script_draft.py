"""Script drafts: a chore or office task done by a script the model writes, run and repaired."""

from __future__ import annotations

import ast
import builtins
import hashlib
import json
import re
import shlex
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spud.core.context import RAISED_LINE
from spud.core.errors import LimitReached
from spud.core.messages import Message, ModelReply, ToolCall
from spud.core.protocols import Act, TextModel, Verifier
from spud.playbooks import expected as by_hand
from spud.playbooks.base import workspace_files
from spud.playbooks.draft import BLOCK, REDRAFT_TEMPERATURE, has_code, said, usage_of
from spud.sandbox.bubblewrap import SCRIPT_HOOK
from spud.tools.pymerge import closed, syntax_error

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
PUT_BACK = "Spud put {files} back as it was before the script: the next script starts from it.\n"
EARLIER = (
    "A script written for this before failed the same way twice:\n{failure}\nWrite one that "
    "avoids it."
)
# Output checks see that a file exists, not that it is right: a 1.5B's first passing script
# often makes the file with the wrong content (numbers left as text, a wrong order), and shown
# its outputs it did not see what was wrong (a review of them, tried on 5 December, corrected
# none). So while time is left, fresh drafts run too, and the outputs most passing drafts agree
# on stand (selection by execution agreement: AlphaCode's clustering; MBR-exec, Shi et al.,
# 2022). Only where a run leaves every file it found as it was, so each starts from the same.
# On the 10 untuned dev tasks no draft of a failing task was right, so voting changed no
# outcome and cost time: it is for effort medium and high (the harness's draft_votes).
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
EARLIER_CHARS = 800
# Rounds drafted after a passing script whose output differs from the hand's head
# (expected.py), repairs told the difference; a passing draft that agrees stands first.
HAND_ROUNDS = 3
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
    # 20 rounds instead of 10 turned the held-out runs' repetition stops into time-outs, with
    # no pass more and the median run 3.3 -> 4.9 minutes (docs/eval.md, 7 December, evening).
    rounds: int = 10
    max_tokens: int = 2048

    def __call__(self, model: TextModel, act: Act) -> None:
        named = NAMED.format(names=", ".join(self.outputs)) if self.outputs else ""
        what = self.ask or SCRIPT_ASK.format(libraries=named + self.libraries)
        if self.save_as:
            what = SAVED_ASK.format(path=self.save_as)
        brief = f"{self.task}\n\n{self.shown}".rstrip()  # the task and what it works on
        ask = f"{brief}\n\n{what}"
        chat = [Message(role="system", content=SCRIPT_SYSTEM), Message(role="user", content=ask)]
        unused: list[ModelReply] = []
        scripts: set[str] = set()
        failures: set[str] = set()
        temperature = None  # the model's own; for a fresh start, more varied
        votes = Votes(stamps(self.workspace), self.save_as)
        hand: by_hand.Expected | None = None
        hand_asked, hand_rounds, told, differed = False, 0, "", ""

        def fresh() -> list[Message]:
            """A new chat, told how an earlier output differed from the hand while none agrees."""
            if not differed or votes.agreed or hand is None:
                return chat[:2]
            note = by_hand.EARLIER.format(path=hand.path, diff=differed)
            return [chat[0], Message(role="user", content=f"{ask}\n\n{note}")]

        started = time.monotonic()
        books = self._books()  # the workbooks as they were, put back after a failed draft
        try:
            for done in range(self.rounds):
                now = stamps(self.workspace) if votes.groups else None
                differs = hand is not None and votes.groups and not votes.agreed
                wanted = differs and hand_rounds < HAND_ROUNDS
                most = getattr(model, "votes", 1)
                if votes.settled(most, now, _seconds_left(model), started, done, wanted):
                    break
                hand_rounds += bool(differs)
                reply = model.chat(
                    chat, max_tokens=self.max_tokens, temperature=temperature, until_block=True
                )
                text = reply.message.content
                chat.append(Message(role="assistant", content=text))
                script, problem = script_in(text)
                if problem:
                    temperature = REDRAFT_TEMPERATURE  # the same reply again would not help
                    chat.append(Message(role="user", content=problem))
                    unused.append(reply)
                    continue
                if script in scripts:
                    # The same script again (a 1.5B repeated one 5 times, told it had failed):
                    # a new chat without the old scripts to copy, sampled more freely. For small
                    # models fresh samples do as well as repairs (Olausson et al., 2023). A passing
                    # script drafted again votes again for its outputs, without a run.
                    votes.again(with_imports(script))
                    chat, temperature = fresh(), REDRAFT_TEMPERATURE
                    unused.append(reply)
                    continue
                temperature = None
                scripts.add(script)
                script = with_imports(script)
                meta = {"kind": "draft", "draft": text, "usage": usage_of(*unused, reply)}
                if told:
                    meta["by_hand"], told = told, ""  # what the hand's head said differed
                unused = []
                if self.save_as:
                    votes.now = ""  # the saved script is about to be another's
                ran, code, before = self._run(script, meta, act)
                checks = self.verifier.check()
                if ran.meta.get("ok") and all(c.passed for c in checks):
                    made = self.outputs or list(changed(before, stamps(self.workspace)))
                    key = outputs_key(self.workspace, made, ran.content or "", self.save_as)
                    summary = said(text) or "The script ran and its outputs were checked."
                    votes.add(script, key, summary)  # before a question that may run out of time
                    if (
                        not hand_asked
                        and getattr(model, "by_hand", False)
                        and votes.unchanged(stamps(self.workspace))
                    ):
                        hand_asked = True  # once, and only where a repair starts from the same
                        hand, asked = by_hand.ask(
                            model, chat[0], brief, self.workspace, self.outputs, self.task
                        )
                        unused += [asked] if asked else []  # counted with the next draft
                    diff = by_hand.difference(hand, self.workspace) if hand else ""
                    if hand and (copies := by_hand.copied(script, self.shown, self.task)):
                        values = ", ".join(repr(v) for v in copies[:4])
                        diff = "\n".join(filter(None, [by_hand.COPIED.format(values=values), diff]))
                    if hand is not None and not diff:
                        votes.agreed.add(key)
                    elif diff and not votes.agreed and hand_rounds < HAND_ROUNDS:
                        request = by_hand.repair(hand, self.workspace, diff)
                        chat.append(Message(role="user", content=request))
                        told = differed = diff  # shown with the next draft's step
                        continue
                    chat, temperature = fresh(), REDRAFT_TEMPERATURE  # the next: a fresh draft
                    continue
                votes.now = ""  # what the workspace holds is no passing draft's
                back = self._put_back(books)
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
                if back:
                    repair = PUT_BACK.format(files=", ".join(back)) + repair
                chat.append(Message(role="user", content=repair))
        except LimitReached:
            # the time ran out while more drafts were asked for: the outputs there stand if
            # they are a passing draft's (putting the chosen ones back would need a run)
            if not votes.now:
                raise
            votes.only = votes.now
        if chosen := votes.chosen():
            key, script, summary, agreeing = chosen
            if votes.now != key:  # a later draft's outputs are there: the chosen one's return
                self._run(script, {"kind": "draft", "chosen": True}, act)
            if agreeing == 1 and votes.total > 1:  # the checks cannot tell which is right
                summary += (
                    f" (unsure: {votes.total} passing drafts made {len(votes.groups)} different "
                    "outputs; these are the first one's, check them)"
                )
            elif votes.total > 1:
                summary += f" ({agreeing} of {votes.total} passing drafts made these outputs)"
            meta = {"kind": "draft", "drafts_passed": votes.total, "agreeing": agreeing}
            act(ToolCall(name="finish", arguments={"summary": summary}), meta)

    def _books(self) -> dict[str, bytes]:
        """The input workbooks' bytes before any draft ran."""
        if self.workspace is None:
            return {}
        out = {}
        for rel in self.sheets:
            try:
                out[rel] = (self.workspace / rel).read_bytes()
            except OSError:
                continue
        return out

    def _put_back(self, books: dict[str, bytes]) -> list[str]:
        """The input workbooks a failed draft changed or removed, put back as they were (a
        1.5B's pandas to_excel left a workbook with its one new sheet, and every later draft
        read that); the ones put back."""
        back = []
        for rel, data in books.items():
            path = self.workspace / rel if self.workspace else None
            if path is None:
                continue
            try:
                if path.is_file() and path.read_bytes() == data:
                    continue
                path.write_bytes(data)
            except OSError:
                continue
            back.append(rel)
        return back

    def _run(
        self, script: str, meta: dict[str, Any], act: Act
    ) -> tuple[Message, str, Stamps | None]:
        """Run a script (saved first when the task asks for a script file), with a move of a
        misnamed output; its result, the code that ran and the workspace's stamps before."""
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
        return ran, code, before


@dataclass
class Votes:
    """The passing drafts of one task, grouped by what their outputs hold."""

    initial: Stamps | None  # the workspace's files before any draft ran
    save_as: str | None = None
    groups: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # key: (script, said)
    keys: dict[str, str] = field(default_factory=dict)  # a passing script's outputs' key
    now: str = ""  # the key of what the workspace holds ("" after a failing run)
    only: str = ""  # the key that must stand (the time ran out with its outputs there)
    agreed: set[str] = field(default_factory=set)  # keys whose outputs agree with the hand

    @property
    def total(self) -> int:
        return sum(len(g) for g in self.groups.values())

    def add(self, script: str, key: str, summary: str) -> None:
        self.groups.setdefault(key, []).append((script, summary))
        self.keys[script] = self.now = key

    def unchanged(self, now: Stamps | None) -> bool:
        """Whether every file that was there before the drafts is as it was."""
        if self.initial is None or now is None:
            return False
        return all(now.get(p) == s for p, s in self.initial.items() if p != self.save_as)

    def again(self, script: str) -> None:
        if (key := self.keys.get(script)) is not None:
            self.groups[key].append(self.groups[key][0])

    def settled(
        self,
        most: int,
        now: Stamps | None,
        left: float | None,
        started: float,
        rounds: int,
        wanted: bool = False,
    ) -> bool:
        """Whether drafting stops here: no pass yet goes on; a pass stops it when more drafts
        cannot change the choice (unless drafts are wanted: no pass agrees with the hand yet),
        when a run changed the files drafts start from, or when the time left is under two
        rounds at the pace so far."""
        if not self.groups:
            return False
        sizes = sorted((len(g) for g in self.groups.values()), reverse=True) + [0]
        if sizes[0] >= sizes[1] + max(most - self.total, 0) and not wanted:
            return True
        if not self.unchanged(now):
            return True  # a run changed or removed a file that was there: drafts would differ
        pace = (time.monotonic() - started) / max(rounds, 1)
        return left is not None and left < 2 * pace

    def chosen(self) -> tuple[str, str, str, int] | None:
        """The first draft of the largest group (the earliest group on a tie), or of the group
        that must stand."""
        if not self.groups:
            return None
        if self.only:
            key, group = self.only, self.groups[self.only]
        else:
            agreeing = {k: g for k, g in self.groups.items() if k in self.agreed}
            key, group = max((agreeing or self.groups).items(), key=lambda kv: len(kv[1]))
        return key, group[0][0], group[0][1], len(group)


def _seconds_left(model: TextModel) -> float | None:
    left = getattr(model, "left", None)
    return left() if callable(left) else None


def changed(before: Stamps | None, after: Stamps | None) -> list[str]:
    """The files created or changed between two stamps."""
    if before is None or after is None:
        return []
    return [p for p in after if before.get(p) != after[p]]


def outputs_key(workspace: Path | None, paths: list[str], printed: str, save_as: str | None) -> str:
    """A digest of what the outputs hold, the same for outputs equal in content: JSON parsed,
    line ends and trailing space left out, office files without their save time; what the
    run printed when it wrote no file."""
    digest = hashlib.sha256()
    kept = sorted(p for p in paths if p != save_as)
    for rel in kept:
        digest.update(rel.encode() + b"\0" + content_of(workspace / rel if workspace else None))
    if not kept:
        digest.update(printed.replace("\r\n", "\n").strip().encode())
    return digest.hexdigest()


def content_of(path: Path | None) -> bytes:
    """A file's content as outputs are compared (see outputs_key); b"" when it is missing."""
    if path is None or not path.is_file():
        return b""
    data = path.read_bytes()
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                return b"".join(
                    n.encode() + z.read(n) for n in sorted(z.namelist()) if "docProps/" not in n
                )
        except (zipfile.BadZipFile, OSError):
            return data
    if path.suffix.lower() == ".json":
        try:
            return json.dumps(json.loads(data), sort_keys=True).encode()
        except (ValueError, UnicodeDecodeError):
            return data
    return b"\n".join(line.rstrip() for line in data.replace(b"\r\n", b"\n").strip().split(b"\n"))


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
