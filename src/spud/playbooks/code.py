"""Playbook: implement or fix code against the tests in the workspace."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from spud.core.protocols import Opening
from spud.playbooks import playbook
from spud.playbooks.base import Brief, named_files, show_file, workspace_files
from spud.playbooks.checks import (
    TaskVerifier,
    command_check,
    quiet_pytest,
    summarise,
    tests_quick,
    unchanged_check,
)
from spud.playbooks.draft import CodeDraft
from spud.playbooks.script_draft import ScriptDraft
from spud.sandbox.bubblewrap import Sandbox
from spud.sandbox.policy import Rule

TEST_FILE = re.compile(r"(^|/)(test_[^/]*\.py|[^/]*_test\.py)$")
IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", re.MULTILINE)
COMMAND = re.compile(r"`([^`]*pytest[^`]*)`")
CODE_WORDS = re.compile(
    r"\b(tests?|pytest|implement|fix|bug|function|class|method|pass(?:es)?|stub|refactor)\b",
    re.IGNORECASE,
)
QUICK = "python -m pytest -q --tb=line -rf -p no:cacheprovider"
MAX_CONTEXT = 14000
# The files and the test result are already shown and the tests rerun after every change:
# without bash, a small model edits instead of rerunning the tests.
TOOLS = {"read_file", "write_file", "edit_file"}


def find_tests(workspace: Path) -> list[str]:
    return [f for f in workspace_files(workspace) if TEST_FILE.search(f)]


@playbook
class CodeAgainstTests:
    """Gather the code, the tests and the failures first; one focused edit at a time."""

    name = "code"

    def score(self, task: str, workspace: Path) -> int:
        if not find_tests(workspace):
            return 0
        files = set(workspace_files(workspace))
        names_code = any(n.endswith(".py") and n in files for n in named_files(task))
        return 3 if CODE_WORDS.search(task) or names_code else 1

    def brief(self, task: str, workspace: Path, sandbox: Sandbox) -> Brief:
        tests = find_tests(workspace)
        named = [f for f in named_files(task) if f in set(workspace_files(workspace))]
        tests = [t for t in named if t in tests] or tests
        sources = _sources(workspace, task, tests)
        command = _command(task)
        quick = tests_quick(sandbox, QUICK)
        parts, used = [], 0
        for rel in [*sources, *tests][:6]:
            shown = show_file(workspace, rel, max_chars=max(2000, MAX_CONTEXT - used))
            used += len(shown)
            parts.append(shown)
        report = _report(sandbox, command)
        parts.append(f"Test result now (`{command}`):\n{report()[1]}")
        target = ", ".join(sources) or "the code under test"
        test_names = ", ".join(tests[:3])
        prompt = (
            "\nHow to do this task:\n"
            f"1. The tests in {test_names} say what {target} must do. Do not change the tests.\n"
            f"2. Change {target}: edit_file replaces exact text, write_file rewrites a whole "
            "file. Make one focused change at a time.\n"
            "3. After every change the tests run by themselves and you see the result: fix "
            "the first failure, then the next.\n"
            "4. When the tests pass, call finish with a one-line summary."
        )
        context = "Spud gathered these files and ran the tests before you start.\n\n" + (
            "\n\n".join(parts)
        )
        verifier = TaskVerifier(
            checks=[command_check(sandbox, command), unchanged_check(workspace, tests)],
            quick=quick,
        )
        why = f"the tests say what the code must do: change {target}, not the tests"
        rules = [
            Rule(tool=tool, pattern=test, action="deny", reason=f"{test} holds tests; {why}")
            for test in tests
            for tool in ("write_file", "edit_file")
        ]
        # A text model first drafts the code in markdown; the loop goes on if needed. When the
        # tests import no module of the workspace by its path (a package under src/ being
        # renamed), a script does the work (a 1.5B's loop rewrote one __init__.py three times).
        opening: Opening = CodeDraft(workspace, task, sources, verifier, report, tests)
        if not sources:
            listing = "Files in the workspace:\n" + "\n".join(workspace_files(workspace, 80))
            opening = ScriptDraft(task, f"{listing}\n\n{context}", verifier, workspace=workspace)
        return Brief(
            playbook=self.name,
            opening=opening,
            prompt=prompt,
            context=context,
            verifier=verifier,
            tools=TOOLS if sources else None,
            rules=rules,
            # the embedded model's grammar offers only the code's files to write and edit
            choices={t: {"path": sources} for t in ("write_file", "edit_file")} if sources else {},
        )


def _report(sandbox: Sandbox, command: str) -> Callable[[], tuple[bool, str]]:
    """The tests run now: whether they pass, and the failures (first tracebacks, then all)."""
    short = f"{command} --tb=short -rfE" if "pytest" in command else command

    def run() -> tuple[bool, str]:
        res = sandbox.execute(quiet_pytest(short), timeout_s=min(120, sandbox.config.timeout_s))
        passed = res.exit_code == 0 and not res.timed_out
        return passed, failures(res.output) if not passed else summarise(res.output, True)

    return run


def failures(output: str, head: int = 1600, tail: int = 1400) -> str:
    """pytest's output cut to what a repair needs: the first tracebacks and the summary."""
    text = output.strip()
    if len(text) <= head + tail:
        return text
    at = text.find("short test summary info")
    summary = text[text.rfind("\n", 0, at) + 1 :] if at >= 0 else text[-tail:]
    return f"{text[:head]}\n[...]\n{summary[-tail:]}"


def _command(task: str) -> str:
    """The test command the task names, or pytest's default run."""
    match = COMMAND.search(task)
    return match.group(1).strip() if match else "python -m pytest -q"


def _sources(workspace: Path, task: str, tests: list[str]) -> list[str]:
    """The modules to change: named in the task, or imported by the tests, that exist."""
    files = set(workspace_files(workspace))
    out = [f for f in named_files(task) if f.endswith(".py") and f in files and f not in tests]
    for test in tests:
        try:
            text = (workspace / test).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for match in IMPORT.finditer(text):
            module = (match.group(1) or match.group(2)).replace(".", "/")
            for candidate in (f"{module}.py", f"{module}/__init__.py"):
                if candidate in files and candidate not in out and candidate not in tests:
                    out.append(candidate)
    return out
