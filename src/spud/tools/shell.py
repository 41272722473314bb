"""The bash tool (commands run in the sandbox) and the coding agent's tool set."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from spud.core.errors import SpudError
from spud.core.messages import WORKSPACE_ORIGIN, ToolResult
from spud.core.protocols import Tool
from spud.core.tooling import COMMAND_CHARS
from spud.sandbox.bubblewrap import ExecResult, Sandbox
from spud.tools.files import EditFile, ListFiles, ReadFile, Search, WriteFile

CUT = (
    f"Not run: the command is {COMMAND_CHARS} characters long, as long as one call can write, "
    "so it was cut where the call ended (a cut script can do half of its work). Write a long "
    "script to a file with write_file, then run the file."
)


def describe(result: ExecResult, cap: int, timeout_s: float) -> str:
    """The text the model sees: the output, then the exit code and any limit that was hit."""
    parts = [result.output.rstrip("\n") or "(no output)"]
    if result.truncated:
        parts.append(
            f"[output cut at {cap} bytes of {result.total_bytes}; "
            "redirect to a file and read it with read_file]"
        )
    parts += result.notes
    if result.timed_out:
        parts.append(f"[killed: time limit {timeout_s:g}s reached]")
    else:
        parts.append(f"[exit code {result.exit_code}]")
    return "\n".join(parts)


class Bash:
    """bash: run a shell command in the workspace, inside the sandbox."""

    name = "bash"
    risk = "execute"
    description = (
        "Run a bash command in the workspace (the current folder) inside a sandbox with no "
        "network. Returns the combined stdout and stderr and the exit code."
    )

    class Args(BaseModel):
        command: str = Field(description="The bash command to run.")
        timeout_s: int | None = Field(
            None,
            ge=1,
            le=3600,
            description="Time limit in seconds; can only lower the sandbox's limit.",
        )

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def run(self, args: Args) -> ToolResult:
        if not args.command.strip():
            return ToolResult(output="command is empty", ok=False)
        if len(args.command) == COMMAND_CHARS:  # the grammar's bound: a model's call was cut
            return ToolResult(output=CUT, ok=False)
        timeout = self.sandbox.time_limit(args.timeout_s)  # may lower the limit, never raise it
        try:
            result = self.sandbox.execute(args.command, timeout_s=timeout)
        except (OSError, SpudError) as exc:
            return ToolResult(output=f"could not start the sandbox: {exc}", ok=False)
        text = describe(result, self.sandbox.config.output_cap_bytes, timeout)
        ok = result.exit_code == 0 and not result.timed_out
        data = {**result.model_dump(exclude={"output"}), "origin": WORKSPACE_ORIGIN}
        return ToolResult(output=text, ok=ok, untrusted=True, data=data)  # any file's text


def coding_tools(workspace: Path, sandbox: Sandbox) -> list[Tool]:
    """The coding agent's tools, all bound to one workspace."""
    fd = sandbox.config.workspace_fd  # a task's pinned folder: the same one for every tool
    files = (ReadFile, ListFiles, Search, WriteFile, EditFile)
    return [*(tool(workspace, workspace_fd=fd) for tool in files), Bash(sandbox)]
