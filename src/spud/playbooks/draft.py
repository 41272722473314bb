"""Drafts in the model's own markdown: code merged by name, or a script run; checked, repaired."""

from __future__ import annotations

import ast
import builtins
import io
import math
import re
import shlex
import tokenize
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spud.core.context import RAISED_LINE
from spud.core.messages import Message, ModelReply, ToolCall, Usage
from spud.core.protocols import Act, TextModel, Verifier
from spud.playbooks.base import show_file, workspace_files
from spud.sandbox.bubblewrap import SCRIPT_HOOK
from spud.tools.pymerge import DEFS, MergeError, merge_python

BLOCK = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
DEF_NAME = re.compile(r"^(?:async\s+)?(?:def|class)\s+(\w+)", re.MULTILINE)
SYSTEM = "You are an expert Python programmer. You fix and complete code so that its tests pass."
# The reason goes in a comment at the top of the block: the local model's reply starts inside
# the fence, so "say why, then the code" got a 1.5B's prose as code (four repair rounds of
# tally.py in 100 s, none usable).
ASK = (
    "Reply with the code of {target} to change, in one ```python block: every function, class "
    "or method you change or add, each complete, plus any imports they need. Definitions you "
    "leave out stay as they are; leave out the docstrings too (the file keeps them). The "
    "block's first line is a comment on what must change."
)
REPAIR = (
    "The tests now say:\n{detail}\n\nReply with the corrected definitions in one ```python "
    "block whose first line is a comment on why they fail."
)
FOCUS = (
    "The tests now: {count} fail.\n{failed}\n\nFix {name} first. Its code:\n```python\n"
    "{source}```\nIts failure:\n{failure}\n\nReply with the corrected definitions, without their "
    "docstrings, in one ```python block whose first line is a comment on why {name} fails."
)
FAILED_LINE = re.compile(r"^FAILED [^:\s]+::(\w+)(\[[^\]]*\])?(?: - (.*))?$", re.MULTILINE)
ERROR_LINE = re.compile(r"^ERROR ", re.MULTILINE)
PASSED_RUN = re.compile(r"\b\d+ passed\b(?!.*\b(?:failed|error))")
CODE_NOW = "Now write that code: the corrected definitions in one ```python block."
WORSE = "That change made more tests fail, so the code is back as it was before it. "
TRIES_PER_TEST = 2  # repairs asked for one failing test before another gets its turn
SAME = "That code is what the file already holds: it changed nothing. Look again. "
REDRAFT_TEMPERATURE = 0.7
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
SHOWN_CHARS = 8000  # of each test and source file in a code draft's request
Stamps = dict[str, tuple[int, int]]  # a file's size and change time, by path
HEREDOC = "SPUD_SCRIPT"
PAIRS = {"(": ")", "[": "]", "{": "}"}
CLOSE_WITHIN = 20  # lines after an unclosed bracket where its closers are tried
STDIN_FRAME = re.compile(r'^([ \t]*)File "<stdin>", line (\d+).*$', re.MULTILINE)


@dataclass
class CodeDraft:
    """Rounds of draft, merge, test: the code playbook's first steps on a text model."""

    workspace: Path
    task: str
    sources: list[str]  # the files a draft may change, the first being the default target
    verifier: Verifier
    report: Callable[[], tuple[bool, str]]  # the tests run now: passed, and their output
    tests: list[str] = field(default_factory=list)  # the test files (to show a failing test)
    # Rounds without fewer failing tests before the loop takes over; after `varied` of them
    # the drafts are sampled more freely (at temperature 0 the same prompt gives the same
    # code). A draft costs the 1.5B 25-70 s; the loop's first step after them re-reads the
    # whole context (160 s for fix-ledger) and has not yet fixed what the drafts could not.
    rounds: int = 5
    varied: int = 2
    max_rounds: int = 8
    max_tokens: int = 2048

    def __call__(self, model: TextModel, act: Act) -> None:
        """Each round asks afresh (the files as they are now, the failure to fix): a small
        model shown its own earlier reply copies it. A round that makes more tests fail is
        undone."""
        target = " or ".join(self.sources)
        _, detail = self.report()  # the tests' output for the code as it is now
        ask = self.asking(f"Test result now:\n{detail}\n\n{ASK.format(target=target)}")
        unused: list[ModelReply] = []  # replies without usable code: counted with the next write
        temperature = None  # the model's own; after a draft that changed nothing, more varied
        best, kept = failing(detail), self._snapshot()  # fewest failing tests, and that code
        kept_detail, stalled = detail, 0  # its output; rounds since the failures last fell
        tried: Counter[str] = Counter()  # repairs asked per failing test
        for _ in range(self.max_rounds):
            if stalled >= self.rounds:
                return
            if stalled >= self.varied:
                temperature = REDRAFT_TEMPERATURE
            stalled += 1
            chat = [Message(role="system", content=SYSTEM), Message(role="user", content=ask)]
            reply = model.chat(
                chat, max_tokens=self.max_tokens, temperature=temperature, until_block=True
            )
            text = reply.message.content
            if text.strip() and not any(map(has_code, BLOCK.findall(text))):  # reasons, no code
                chat += [
                    Message(role="assistant", content=text),
                    Message(role="user", content=CODE_NOW),
                ]
                unused.append(reply)
                reply = model.chat(
                    chat, max_tokens=self.max_tokens, temperature=temperature, until_block=True
                )
                text = f"{text}\n\n{reply.message.content}"
            writes, problem = self.merged(text)
            writes = {p: c for p, c in writes.items() if c != self._text(p)}  # no-op writes
            if problem or not writes:  # nothing to run: asked again, more varied
                temperature = REDRAFT_TEMPERATURE  # the same reply again would not help
                ask = self.again(detail, tried, f"{problem} " if problem else SAME)
                unused.append(reply)
                continue
            meta: dict[str, Any] = {
                "kind": "draft",
                "draft": text,
                "usage": usage_of(*unused, reply),
            }
            if unused:  # the replies that gave nothing to run, kept for whoever reads the run
                meta["unused"] = [r.message.content for r in unused]
            unused, temperature = [], None
            for path, content in writes.items():
                act(ToolCall(name="write_file", arguments={"path": path, "content": content}), meta)
                meta = {"kind": "draft"}  # the reply's text and cost go with its first write
            passed, detail = self.report()
            if passed and all(c.passed for c in self.verifier.check()):
                summary = f"{said(text)} (changed {', '.join(writes)})".strip()
                act(ToolCall(name="finish", arguments={"summary": summary}), {})
                return
            now, note = failing(detail), ""
            if now < best:  # progress: kept, and the drafts go on
                best, kept, kept_detail, stalled = now, self._snapshot(), detail, 0
            elif now > best:  # worse: the best code so far comes back
                for path, content in kept.items():
                    if content is not None and content != self._text(path):
                        call = ToolCall(
                            name="write_file", arguments={"path": path, "content": content}
                        )
                        act(call, {"kind": "draft", "undo": True})
                detail, note = kept_detail, WORSE
            ask = self.again(detail, tried, note)

    def again(self, output: str, tried: Counter[str], note: str = "") -> str:
        """A fresh request: the task, the tests and the code as they are now, what to fix."""
        return self.asking(note + self.repair(output, tried))

    def asking(self, what: str) -> str:
        """The task, the tests, the code as it is now, then what to do. Every round starts
        with the same task and tests, which the engine's KV cache keeps: a 1.5B reads a
        real-size task and its tests (2,000 tokens) in about 40 s on 2 cores."""
        files = [
            show_file(self.workspace, rel, SHOWN_CHARS) for rel in [*self.tests, *self.sources]
        ]
        return "\n\n".join([self.task, *files, what])

    def repair(self, output: str, tried: Counter[str] | None = None) -> str:
        """What to fix next: a failing test (one not yet tried twice) with its code and
        failure, or the whole output when no test can be shown."""
        failed = FAILED_LINE.findall(output)
        tried = Counter() if tried is None else tried
        names = [name for name, _, _ in failed]
        name = next((n for n in names if tried[n] < TRIES_PER_TEST), names[0] if names else "")
        source = self._test_source(name) if name else ""
        if not source:
            return REPAIR.format(detail=output)
        tried[name] += 1
        listed = "\n".join(
            f"- {n}{case}: {why}" if why else f"- {n}{case}" for n, case, why in failed[:12]
        )
        failure = _section(output, name)
        return FOCUS.format(
            count=len(failed), failed=listed, source=source, failure=failure, name=name
        )

    def _snapshot(self) -> dict[str, str | None]:
        return {path: self._text(path) for path in self.sources}

    def _text(self, path: str) -> str | None:
        try:
            return (self.workspace / path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def _test_source(self, name: str) -> str:
        for rel in self.tests:
            try:
                text = (self.workspace / rel).read_text(encoding="utf-8")
                tree = ast.parse(text)
            except (OSError, UnicodeDecodeError, SyntaxError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef) and node.name == name:
                    lines = text.splitlines(keepends=True)
                    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                    return "".join(lines[start - 1 : node.end_lineno])  # with its cases
        return ""

    def merged(self, reply: str) -> tuple[dict[str, str], str]:
        """The files a reply's code blocks make, by name, or why there are none."""
        blocks, problem = _definitions(reply)
        if problem:
            return {}, problem
        out: dict[str, str] = {}
        for block in blocks:
            path = self._target(block)
            try:
                before = out.get(path) or (self.workspace / path).read_text(encoding="utf-8")
                block = without_reason(block, before)
                out[path] = merge_python(before, block, module=Path(path).stem)
            except (OSError, UnicodeDecodeError) as exc:
                return {}, f"{path} cannot be read: {exc}"
            except MergeError as exc:
                return {}, f"Your code could not be used: {exc}. Reply with valid Python."
        return out, ""

    def _target(self, block: str) -> str:
        """The source file that defines most of the block's names (the first one if none)."""
        names = set(DEF_NAME.findall(block))

        def overlap(path: str) -> int:
            try:
                text = (self.workspace / path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return 0
            return len(names & set(DEF_NAME.findall(text)))

        return max(self.sources, key=lambda p: (overlap(p), -self.sources.index(p)))


def without_reason(block: str, before: str) -> str:
    """The block without its opening comment lines (the reason the ask puts there), unless
    the file holds them: a 1.5B's whole-file reply carried its reason into shipping.py."""
    kept = {line.rstrip() for line in before.splitlines()}
    lines = block.splitlines(keepends=True)
    n = 0
    while n < len(lines):
        line = lines[n].strip()
        if line and not (line.startswith("#") and lines[n].rstrip() not in kept):
            break
        n += 1
    return "".join(lines[n:])


def failing(output: str) -> float:
    """How many tests fail in pytest's output; a run that fails without naming one (a syntax
    or import error) counts as worse than any."""
    count = len(FAILED_LINE.findall(output)) + len(ERROR_LINE.findall(output))
    return count or (0 if PASSED_RUN.search(output) else math.inf)


def usage_of(*replies: ModelReply) -> dict[str, Any]:
    total = Usage()
    for r in replies:
        for name in ("prompt_tokens", "completion_tokens", "cost_usd", "seconds"):
            setattr(total, name, getattr(total, name) + getattr(r.usage, name))
    return total.model_dump()


def _section(output: str, name: str, limit: int = 1500) -> str:
    """pytest's traceback section for one test (its `___ name ___` header to the next)."""
    header = re.search(rf"^_{{3,}} (?:\w+\.)?{name}(?:\[[^\]]*\])? _{{3,}}$", output, re.MULTILINE)
    if header is None:
        return "(see the list above)"
    rest = output[header.end() :]
    end = re.search(r"^(?:_{3,} |={3,})", rest, re.MULTILINE)
    return rest[: end.start() if end else limit].strip()[-limit:]


def _definitions(reply: str) -> tuple[list[str], str]:
    """The reply's code blocks that define code, or why there are none.

    Blocks that do not parse (test output, shell lines) and blocks that only define tests or
    define nothing (a copy of the tests, a usage example) are left out.
    """
    found, error = [], ""
    for block in BLOCK.findall(reply):
        try:
            tree = ast.parse(block)
        except SyntaxError as exc:
            if (fixed := closed(block, exc)) is None:
                error = error or _syntax(block, exc)
                continue
            block, tree = fixed, ast.parse(fixed)
        names = [n.name for n in tree.body if isinstance(n, DEFS)]
        if any(not n.startswith("test") for n in names):
            found.append(block)
    if found:
        return found, ""
    if error:
        return [], f"Your code is not valid Python ({error}). Reply with corrected code."
    return [], "Your reply had no ```python block defining the code. Reply with the code in one."


def closed(code: str, exc: SyntaxError) -> str | None:
    """The code with the brackets it left open closed, when that is all that is wrong.

    A 1.5B's tally.py was right but for one `print(json.dumps({...})` without its last `)`;
    asked to fix it, the model replied with comments only (40 s a round). The closers go at
    the end of the first line, from the opener's on, after which the code compiles.
    """
    if "was never closed" not in str(exc.msg) or not exc.lineno:
        return None
    lines = code.splitlines()
    start = exc.lineno - 1
    for end in range(start, min(start + CLOSE_WITHIN, len(lines))):
        opened = _open_brackets("\n".join(lines[start : end + 1]))
        if not opened:
            continue
        line = lines[end].rstrip()
        closers = "".join(PAIRS[b] for b in reversed(opened))
        head, colon = (line[:-1], ":") if line.endswith(":") else (line, "")
        candidate = [*lines[:end], head + closers + colon, *lines[end + 1 :]]
        fixed = "\n".join(candidate) + ("\n" if code.endswith("\n") else "")
        try:
            compile(fixed, "draft", "exec")
        except SyntaxError:
            continue
        return fixed
    return None


def _open_brackets(text: str) -> list[str]:
    """The brackets still open at the end of text (those inside strings and comments aside)."""
    stack: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.OP and tok.string in PAIRS:
                stack.append(tok.string)
            elif tok.type == tokenize.OP and tok.string in PAIRS.values() and stack:
                stack.pop()
    except (tokenize.TokenError, SyntaxError):
        pass  # the end of the text inside an open bracket: the stack is what is open
    return stack


def _syntax(code: str, exc: SyntaxError) -> str:
    """A syntax error with its line, for the model to see what Python 3.11 refused."""
    lines = code.splitlines()
    at = lines[exc.lineno - 1].strip() if exc.lineno and exc.lineno <= len(lines) else ""
    shown = f" `{at[:160]}`" if at else ""
    return f"line {exc.lineno}{shown}: {exc.msg} (this is Python 3.11)"


def has_code(block: str) -> bool:
    """Whether a block has a line of code: a 1.5B asked for a comment then the code often
    wrote the comment and closed the block."""
    return any(line.strip() and not line.strip().startswith("#") for line in block.splitlines())


def said(reply: str) -> str:
    """What the model said it does: the reply's first line before its code, else the code's
    opening comment, shortened."""
    words = reply.split("```")[0].strip().splitlines()
    first = words[0].strip() if words else ""
    if not first and (blocks := BLOCK.findall(reply)) and blocks[0].strip():
        line = blocks[0].strip().splitlines()[0]
        first = line.lstrip("#").strip() if line.startswith("#") else ""
    return first if len(first) <= 200 else first[:197] + "..."


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
                error = _syntax(block, exc)
                continue
            block = fixed
        if HEREDOC not in block:
            return block.rstrip("\n"), ""
    return "", f"The script is not valid Python ({error}). Reply with the corrected script."
