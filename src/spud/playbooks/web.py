"""Playbook: web look-ups and forms: open, read the snapshot, act, read back, answer."""

from __future__ import annotations

from pathlib import Path

from spud.playbooks import playbook
from spud.playbooks.base import URL, Brief, inputs_and_outputs, workspace_files
from spud.playbooks.checks import TaskVerifier, outputs_check
from spud.playbooks.task_shapes import shape_checks
from spud.playbooks.value_shapes import value_checks
from spud.playbooks.web_draft import WebDraft
from spud.sandbox.bubblewrap import Sandbox

TOOLS = {
    "browser_open",
    "browser_snapshot",
    "browser_click",
    "browser_type",
    "browser_select",
    "browser_submit",
    "browser_read",
    "browser_back",
    "browser_pages",
    "write_file",
    "read_file",
}


@playbook
class WebWork:
    """Browser tools on; the steps of a look-up or a form, in order."""

    name = "web"

    def score(self, task: str, workspace: Path) -> int:
        return 4 if URL.search(task) else 0

    def brief(self, task: str, workspace: Path, sandbox: Sandbox) -> Brief:
        outputs = inputs_and_outputs(task, workspace_files(workspace))[1]
        prompt = (
            "\nHow to do this task:\n"
            "1. Call browser_open with the address from the task.\n"
            "2. Read the page it shows. To follow a link or press a button, call browser_click "
            "with the element's ref from the page: the page it leads to is shown.\n"
            "3. Forms: browser_type for text fields, browser_select for drop-down lists, "
            "browser_click for checkboxes, then click the submit button.\n"
            "4. Write what the task asks into the file it names with write_file, or give it "
            "in the finish summary. Copy values exactly as the page shows them."
        )
        checks = [outputs_check(workspace, outputs)] if outputs else []
        checks += shape_checks(workspace, task, outputs) + value_checks(workspace, task, outputs)
        verifier = TaskVerifier(checks=checks)
        start = URL.search(task)
        # A text model reads the site first; a script writes the outputs, picks among
        # candidates or looks a value up in the pages' tables (bash runs it).
        opening = (
            WebDraft(task, start.group(0).rstrip(".,;:"), outputs, verifier) if start else None
        )
        return Brief(
            playbook=self.name,
            prompt=prompt,
            verifier=verifier,
            toolsets={"browser"},
            tools=TOOLS | {"bash"},
            opening=opening,
        )
