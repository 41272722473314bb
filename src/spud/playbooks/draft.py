"""Code drafts in the model's own markdown: definitions merged by name, tested, repaired."""

from __future__ import annotations

import ast
import math
import re
import textwrap
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spud.core.messages import Message, ModelReply, ToolCall, Usage
from spud.core.protocols import Act, TextModel, Verifier
from spud.playbooks.base import show_file
from spud.tools.pymerge import DEFS, MergeError, closed, merge_python, syntax_error

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
# "Fix test_x first", with the test's code shown, got the test itself back from a 1.5B, "fixed"
# (impl-todo-extend: four of eight rounds); the request names the code the test calls instead.
FOCUS = (
    "The tests now: {count} fail.\n{failed}\n\nThe test {name} fails. Its code:\n```python\n"
    "{source}```\nIts failure:\n{failure}\n\nChange {code} so that {name} passes; the tests stay "
    "as they are. Reply with the corrected definitions, without their docstrings, in one "
    "```python block whose first line is a comment on why {name} fails."
)
# A 1.5B shown its own failing code copies it: asked to fix parse_duration it sent the same
# function back five rounds running (impl-duration, 11 tests failing), and the drafts ended. After a
# round without progress the function the failing test calls is shown without its body, to be
# written anew (a fresh sample does as well as a repair for small models: Olausson et al., 2023).
ANEW = (
    "The tests now: {count} fail.\n{failed}\n\n{name} fails. Its code:\n```python\n{source}```\n"
    "Its failure:\n{failure}\n\nThe code of {fn} failed, so its body is left out of {path} "
    "above. Write {fn} anew, another way, without its docstring, in one ```python block whose "
    "first line is a comment on how it works."
)
LEFT_OUT = "...  # left out: write it anew"
SOURCE_FRAME = re.compile(r"^([\w./-]+\.py):\d+: in (\w+)$", re.MULTILINE)
# a traceback Python printed, e.g. of the script a test ran in a subprocess (stderr shown)
SCRIPT_FRAME = re.compile(r'File "([^"]+\.py)", line \d+, in (\w+)')
FAILED_LINE = re.compile(r"^FAILED [^:\s]+::(\w+)(\[[^\]]*\])?(?: - (.*))?$", re.MULTILINE)
ERROR_LINE = re.compile(r"^ERROR ", re.MULTILINE)
PASSED_RUN = re.compile(r"\b\d+ passed\b(?!.*\b(?:failed|error))")
CODE_NOW = "Now write that code: the corrected definitions in one ```python block."
WORSE = "That change made more tests fail, so the code is back as it was before it. "
TRIES_PER_TEST = 2  # repairs asked for one failing test before another gets its turn
SAME = "That code is what the file already holds: it changed nothing. Look again. "
REDRAFT_TEMPERATURE = 0.7
# A round whose greedy draft fixes nothing samples more replies to the same request, each
# tried against the tests (selection by execution, as in CodeT and AlphaCode): the request is
# already in the engine's cache, so another reply costs its decode only.
SAMPLE_TEMPERATURE = 0.8
SHOWN_CHARS = 8000  # of each test and source file in a code draft's request


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
    # code). A repair draft costs the 1.5B 3-13 s with prompt lookup (25-70 s before); the
    # loop's first step after them re-reads the whole context (50-160 s) and has not yet
    # fixed what the drafts could not (impl-todo-extend: a refused finish, then whole-file
    # writes cut at the output cap).
    rounds: int = 12
    varied: int = 2
    max_rounds: int = 40
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
        anew = False  # whether the next round writes the failing function without its code
        for _ in range(self.max_rounds):
            if stalled >= self.rounds:
                return
            if stalled >= self.varied:
                temperature = REDRAFT_TEMPERATURE
            stalled += 1
            chat = [Message(role="system", content=SYSTEM), Message(role="user", content=ask)]
            base = self._snapshot()  # the code the request shows
            text, reply, spent = self._reply(model, chat, temperature)
            unused += spent
            writes, problem = self.merged(text)
            writes = {p: c for p, c in writes.items() if c != self._text(p)}  # no-op writes
            if problem or not writes:  # nothing to run: asked again, more varied
                temperature = REDRAFT_TEMPERATURE  # the same reply again would not help
                anew = not problem  # its own code came back: the next round cannot see it
                ask = self.again(detail, tried, f"{problem} " if problem else SAME, anew)
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
            if not passed and broke(kept_detail, detail):
                passed, detail = self._keep_what_helped(kept, detail, act)
            if not passed and failing(detail) >= best:
                samples = getattr(model, "samples", 1) - 1
                found = self._sample(model, chat, base, best, samples)
                if found is not None:
                    text, writes, more = found
                    meta = {"kind": "draft", "draft": text, "usage": usage_of(more)}
                    meta["sampled"] = True  # not the greedy reply: the one the tests chose
                    for path, content in writes.items():
                        act(
                            ToolCall(
                                name="write_file", arguments={"path": path, "content": content}
                            ),
                            meta,
                        )
                        meta = {"kind": "draft"}
                    passed, detail = self.report()
            if passed and all(c.passed for c in self.verifier.check()):
                summary = f"{said(text)} (changed {', '.join(writes)})".strip()
                act(ToolCall(name="finish", arguments={"summary": summary}), {})
                return
            now, note = failing(detail), ""
            anew = now >= best
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
            ask = self.again(detail, tried, note, anew)

    def _reply(
        self, model: TextModel, chat: list[Message], temperature: float | None
    ) -> tuple[str, ModelReply, list[ModelReply]]:
        """A draft's text and reply, and the replies spent before it: a reply of reasons
        without code is asked, in the same chat, for the code."""
        reply = model.chat(
            chat, max_tokens=self.max_tokens, temperature=temperature, until_block=True
        )
        text = reply.message.content
        if not text.strip() or any(map(has_code, BLOCK.findall(text))):
            return text, reply, []
        more = [
            *chat,
            Message(role="assistant", content=text),
            Message(role="user", content=CODE_NOW),
        ]
        then = model.chat(
            more, max_tokens=self.max_tokens, temperature=temperature, until_block=True
        )
        return f"{text}\n\n{then.message.content}", then, [reply]

    def _sample(
        self,
        model: TextModel,
        chat: list[Message],
        base: dict[str, str | None],
        best: float,
        samples: int,
    ) -> tuple[str, dict[str, str], ModelReply] | None:
        """Up to `samples` more replies to a round's request, each merged into the code the
        request showed and tested; the first with fewer failing tests than `best` (its text,
        writes and reply), or None. The workspace is left as it was."""
        now = self._snapshot()
        found = None
        try:
            for _ in range(samples):
                text, reply, _ = self._reply(model, chat, SAMPLE_TEMPERATURE)
                for path, content in base.items():
                    if content is not None:
                        self._put(path, content)
                writes, problem = self.merged(text)
                if problem or not writes or all(c == base.get(p) for p, c in writes.items()):
                    continue
                for path, content in writes.items():
                    self._put(path, content)
                if failing(self.report()[1]) < best:  # the request's code with the reply in
                    whole = {p: writes.get(p, c) for p, c in base.items() if c is not None}
                    found = text, {p: c for p, c in whole.items() if c != now.get(p)}, reply
                    break
        finally:
            for path, content in now.items():
                if content is not None and content != self._text(path):
                    self._put(path, content)
        return found

    def again(self, output: str, tried: Counter[str], note: str = "", anew: bool = False) -> str:
        """A fresh request: the task, the tests and the code as they are now, what to fix;
        with `anew`, the function the failing test calls is shown without its body."""
        what, blank = self.repair(output, tried, anew)
        return self.asking(note + what, blank)

    def asking(self, what: str, blank: tuple[str, str] = ("", "")) -> str:
        """The task, the tests, the code as it is now (one function's body left out when
        `blank` names its file and it), then what to do. Every round starts with the same task
        and tests, which the engine's KV cache keeps: a 1.5B reads a real-size task and its
        tests (2,000 tokens) in about 40 s on 2 cores."""
        files = [show_file(self.workspace, rel, SHOWN_CHARS) for rel in self.tests]
        for rel in self.sources:
            text = self._text(rel)
            if text is not None and rel == blank[0]:
                text = blanked(text, blank[1])
            files.append(show_file(self.workspace, rel, SHOWN_CHARS, text))
        return "\n\n".join([self.task, *files, what])

    def repair(
        self, output: str, tried: Counter[str] | None = None, anew: bool = False
    ) -> tuple[str, tuple[str, str]]:
        """What to fix next: a failing test (one not yet tried twice) with its code and
        failure, or the whole output when no test can be shown; with `anew`, the function
        to write again without seeing its code, and its file (empty when none is found)."""
        failed = FAILED_LINE.findall(output)
        tried = Counter() if tried is None else tried
        names = [name for name, _, _ in failed]
        name = next((n for n in names if tried[n] < TRIES_PER_TEST), names[0] if names else "")
        source = self._test_source(name) if name else ""
        if not source:
            return REPAIR.format(detail=output), ("", "")
        tried[name] += 1
        listed = "\n".join(
            f"- {n}{case}: {why}" if why else f"- {n}{case}" for n, case, why in failed[:12]
        )
        failure = _section(output, name)
        shown = dict(count=len(failed), failed=listed, source=source, failure=failure, name=name)
        suspect = self._suspect(failure, source)
        if anew and suspect != ("", ""):
            return ANEW.format(**shown, path=suspect[0], fn=suspect[1]), suspect
        code = f"{suspect[1]} in {suspect[0]}" if suspect[0] else " or ".join(self.sources)
        return FOCUS.format(**shown, code=code), ("", "")

    def _suspect(self, failure: str, test: str) -> tuple[str, str]:
        """The source file and function a failing test points at: the last frame of its
        traceback in a source file (also of a script the test ran), else the function it
        calls that a source defines, one named like the test first."""
        found = sorted(
            [*SOURCE_FRAME.finditer(failure), *SCRIPT_FRAME.finditer(failure)], key=re.Match.start
        )
        frames = [
            (rel, m[2])
            for m in found
            for rel in self.sources
            if m[1] == rel or m[1].endswith(f"/{rel}")
        ]
        if frames:
            return frames[-1]
        try:
            tree = ast.parse(textwrap.dedent(test))
        except SyntaxError:
            return "", ""
        calls = [
            node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
        ]
        # test_markdown calls complete() to set up, then to_markdown(): a function named like
        # the test goes first (a 1.5B asked for `complete` anew rewrote it three rounds running)
        tested = {w for n in tree.body if isinstance(n, DEFS) for w in n.name.split("_")[1:]}
        tested = {w for w in tested if len(w) > 2}  # not "by" of test_sorted_by_due_date
        calls.sort(key=lambda name: not tested & set(name.split("_")))
        for name in calls:
            for rel in self.sources:
                if name in defined(self._text(rel) or ""):
                    return rel, name
        return "", ""

    def _keep_what_helped(
        self, kept: dict[str, str | None], detail: str, act: Act
    ) -> tuple[bool, str]:
        """After a draft that broke tests that passed before, each definition it changed is
        put back as it was, one at a time, and stays back where fewer tests then fail: a 1.5B
        asked to fix one function sends the whole module back, another function rewritten
        worse, and the round's fix was undone with it. The tests' result at the end."""
        passed, now = False, failing(detail)
        for path in self.sources:
            before, after = kept.get(path), self._text(path)
            if before is None or after is None or before == after:
                continue
            drafted, back, keys = after, [], changed_units(before, after)
            for key in keys if len(keys) > 1 else []:  # one: the whole draft's undo says so
                trial = swapped(after, before, key)
                if trial is None:
                    continue
                self._put(path, trial)
                tried, output = self.report()
                if failing(output) < now:
                    after, detail, now, passed = trial, output, failing(output), tried
                    back.append(key)
                    if passed:
                        break
            self._put(path, after)
            if after != drafted:  # the session shows the code the tests ran on
                call = ToolCall(name="write_file", arguments={"path": path, "content": after})
                act(call, {"kind": "draft", "undo": True, "put_back": back})
            if passed:
                break
        return passed, detail

    def _put(self, path: str, text: str) -> None:
        """Write a trial version, with the module's compiled copy removed: versions written
        within one second, of one size, would otherwise import the stale one."""
        target = self.workspace / path
        target.write_text(text, encoding="utf-8")
        for cached in (target.parent / "__pycache__").glob(f"{target.stem}.*.pyc"):
            cached.unlink(missing_ok=True)

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


def broke(before: str, after: str) -> bool:
    """Whether tests that passed in one pytest output fail in the other (a run that fails
    without naming tests, after one that named its failures, broke them all)."""
    if failing(before) == math.inf:
        return False
    if failing(after) == math.inf:
        return True
    return bool(_failed_names(after) - _failed_names(before))


def _failed_names(output: str) -> set[str]:
    return {name + case for name, case, _ in FAILED_LINE.findall(output)}


def units(source: str) -> dict[str, ast.stmt]:
    """A module's definitions by name: its functions and classes, and each class's methods
    as `Class.method` (a class with methods is the sum of them)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    out: dict[str, ast.stmt] = {}
    for node in tree.body:
        if not isinstance(node, DEFS):
            continue
        methods = (
            [n for n in node.body if isinstance(n, DEFS)] if isinstance(node, ast.ClassDef) else []
        )
        out.update({f"{node.name}.{m.name}": m for m in methods} or {node.name: node})
    return out


def _unit_text(source: str, node: ast.stmt) -> str:
    lines = source.splitlines(keepends=True)
    start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    return "".join(lines[start - 1 : node.end_lineno])


def changed_units(before: str, after: str) -> list[str]:
    """The definitions both versions have whose code differs, in the order of `after`."""
    old, new = units(before), units(after)
    return [
        key
        for key, node in new.items()
        if key in old
        and textwrap.dedent(_unit_text(after, node))
        != textwrap.dedent(_unit_text(before, old[key]))
    ]


def swapped(after: str, before: str, key: str) -> str | None:
    """`after` with its definition `key` as `before` has it (None where either lacks it)."""
    new, old = units(after).get(key), units(before).get(key)
    if new is None or old is None or new.end_lineno is None:
        return None
    lines = after.splitlines(keepends=True)
    start = min([new.lineno, *(d.lineno for d in getattr(new, "decorator_list", []))])
    indent = lines[start - 1][: len(lines[start - 1]) - len(lines[start - 1].lstrip())]
    text = textwrap.indent(textwrap.dedent(_unit_text(before, old)), indent)
    if not text.endswith("\n"):
        text += "\n"
    return "".join([*lines[: start - 1], text, *lines[new.end_lineno :]])


def defined(source: str) -> set[str]:
    """The names of the functions and methods a module defines."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    return {n.name for n in ast.walk(tree) if isinstance(n, functions)}


def blanked(source: str, name: str) -> str:
    """The module with the body of its function or method `name` left out (its signature and
    docstring kept); unchanged when there is no such function or nothing to leave out."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            body = node.body
            if body and ast.get_docstring(node) is not None:
                body = body[1:]
            if not body or node.end_lineno is None:
                return source
            lines = source.splitlines(keepends=True)
            first = lines[body[0].lineno - 1]
            indent = first[: len(first) - len(first.lstrip())]
            start, end = body[0].lineno - 1, node.end_lineno
            return "".join([*lines[:start], f"{indent}{LEFT_OUT}\n", *lines[end:]])
    return source


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
    found, error, tests = [], "", []
    for block in BLOCK.findall(reply):
        try:
            tree = ast.parse(block)
        except SyntaxError as exc:
            if (fixed := closed(block, exc)) is None:
                error = error or syntax_error(block, exc)
                continue
            block, tree = fixed, ast.parse(fixed)
        names = [n.name for n in tree.body if isinstance(n, DEFS)]
        if any(not n.startswith("test") for n in names):
            found.append(block)
        tests += names
    if found:
        return found, ""
    if tests:
        return [], (
            f"Your block defined {', '.join(tests[:3])}: tests, which stay as they are. Reply "
            "with the code the tests call, the definitions that make them pass."
        )
    if error:
        return [], f"Your code is not valid Python ({error}). Reply with corrected code."
    return [], "Your reply had no ```python block defining the code. Reply with the code in one."


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
