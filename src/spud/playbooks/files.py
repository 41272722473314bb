"""Playbook: file chores: inspect the inputs, write a script, run it, check the output."""

from __future__ import annotations

import re
from pathlib import Path

from spud.playbooks import playbook
from spud.playbooks.base import Brief, head_lines, inputs_and_outputs, workspace_files
from spud.playbooks.checks import TaskVerifier, command_check, outputs_check
from spud.playbooks.script_draft import ScriptDraft
from spud.playbooks.task_shapes import shape_checks
from spud.playbooks.value_shapes import value_checks
from spud.sandbox.bubblewrap import Sandbox

# A command the task asks to run: in backticks, or "run python3 x.py" in the text.
# The 1.5B's pandas went wrong where plain Python would not: a merge's qty_x/qty_y read as
# qty_a, a markdown table read with read_csv, then read_html, counts over a filtered frame.
PLAIN = (
    "; use Python's standard library (csv, json, re, pathlib, shutil) and plain loops, not pandas"
)
RUN = re.compile(r"`((?:python3?|bash|sh|node) [^`]+)`|\brun (python3? [\w./-]+\.py)\b")
CHORE_WORDS = re.compile(
    r"\b(files?|folders?|director(?:y|ies)|csv|json|logs?|rename|move|convert|count|extract|"
    r"merge|replace|report|lines?|script)\b",
    re.IGNORECASE,
)


@playbook
class FileChores:
    """Look at the inputs first; for anything bigger than one edit, a script that is run."""

    name = "files"

    def score(self, task: str, workspace: Path) -> int:
        return 2 if CHORE_WORDS.search(task) else 0

    def brief(self, task: str, workspace: Path, sandbox: Sandbox) -> Brief:
        files = workspace_files(workspace, limit=80)
        inputs, outputs = inputs_and_outputs(task, workspace_files(workspace))
        parts = ["Files in the workspace:\n" + ("\n".join(files) or "(none)")]
        for rel in (inputs or files)[:4]:
            parts.append(head_lines(workspace, rel, 12))
        prompt = (
            "\nHow to do this task:\n"
            "1. The workspace's files and the start of the inputs are shown below.\n"
            "2. If the work touches more than a few lines, write a Python script with write_file "
            "and run it with bash (python3 and the script's name).\n"
            "3. Read the output file back and compare it with what the task asks for; fix "
            "the script and run it again if it differs.\n"
            "4. When the output is right, call finish."
        )
        checks = [outputs_check(workspace, outputs)] if outputs else []
        checks += shape_checks(workspace, task, outputs) + value_checks(workspace, task, outputs)
        run = RUN.search(task)
        command = None
        if run:  # the task names the command that shows the work is right
            command = run.group(1) or run.group(2)
            checks.append(command_check(sandbox, command))
            prompt += f"\n5. Before finishing, run `{command}` with bash and read its output."
        verifier = TaskVerifier(checks=checks)
        shown = "\n\n".join(parts) if files else ""
        # A text model first writes one script for the chore, run and checked, when the task
        # names files to read or make, or speaks of the workspace's files by a folder or a
        # kind they have ("the logs folder", "every CSV"); a task that only says "convert" is
        # left to the tools (an MCP time conversion).
        opening = None
        if inputs or outputs or speaks_of(task, files):
            opening = ScriptDraft(
                task,
                shown,
                verifier,
                PLAIN,
                save_as=_script_asked(outputs),
                run=command,
                workspace=workspace,
                outputs=outputs,
            )
        return Brief(
            playbook=self.name,
            opening=opening,
            prompt=prompt,
            # an empty workspace has nothing to show (a 0.5B copied the note into its file)
            context="Spud looked at the workspace before you start.\n\n" + "\n\n".join(parts)
            if files
            else "",
            verifier=verifier,
        )


def _script_asked(outputs: list[str]) -> str | None:
    """The one Python file the task asks to create: the draft is that script itself, which
    makes the other outputs when run (a 1.5B asked for dedupe.py and contacts_clean.csv ran
    four scripts inline and never wrote dedupe.py)."""
    scripts = [o for o in outputs if o.endswith(".py")]
    return scripts[0] if len(scripts) == 1 else None


def speaks_of(task: str, files: list[str]) -> bool:
    """Whether the task names a folder of the workspace or a kind of file it holds."""
    folders = {part for rel in files for part in rel.split("/")[:-1]}
    kinds = {rel.rsplit(".", 1)[-1] for rel in files if "." in rel.rsplit("/", 1)[-1]}
    words = set(re.findall(r"[\w-]+", task.lower()))
    return bool(words & {w.lower() for w in folders | kinds})
