"""Approval policy as data: rules decide auto, ask or deny for each tool call."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spud.core.errors import ConfigError
from spud.core.messages import ToolCall
from spud.core.protocols import Approval

Action = Literal["auto", "ask", "deny"]

_SEPARATORS = re.compile(r"\|\||&&|[;|&\n]")


def call_subject(call: ToolCall) -> str | None:
    """What a rule's pattern is matched against: the shell command, else the path argument."""
    for key in ("command", "path"):
        value = call.arguments.get(key)
        if isinstance(value, str):
            return value
    return None


class Rule(BaseModel):
    """One line of policy: calls to `tool` (a glob) whose subject matches `pattern` get `action`.

    A pattern is a shell-style glob. "ask" and "deny" rules match the whole command or any
    part of it between `;`, `&&`, `||`, `|`, `&` and newlines; "auto" rules must match the
    whole command. `untrusted` limits a rule to trajectories with (True) or without (False)
    untrusted content; None means either.
    """

    model_config = ConfigDict(extra="forbid")

    tool: str = "*"
    pattern: str | None = None
    action: Action
    untrusted: bool | None = None

    def matches(self, call: ToolCall, untrusted_context: bool) -> bool:
        """Whether this rule applies to the call."""
        if self.untrusted is not None and self.untrusted != untrusted_context:
            return False
        if not fnmatch.fnmatchcase(call.name, self.tool):
            return False
        if self.pattern is None:
            return True
        subject = call_subject(call)
        if subject is None:
            return False
        subjects = [subject.strip()]
        if self.action != "auto":
            subjects += [part.strip() for part in _SEPARATORS.split(subject)]
        return any(fnmatch.fnmatchcase(s, self.pattern) for s in subjects if s)

    def describe(self) -> str:
        """A short human-readable form, used in approval reasons."""
        text = self.tool if self.pattern is None else f"{self.tool} '{self.pattern}'"
        if self.untrusted:
            text += " (untrusted context)"
        return f"{text} -> {self.action}"


DESTRUCTIVE = [
    "rm -rf /*",
    "rm -fr /*",
    "rm -rf ~*",
    "rm -fr ~*",
    "rm -rf $HOME*",
    "sudo *",
    "su *",
    "*curl *|*sh*",
    "*wget *|*sh*",
    "mkfs*",
    "dd *of=/dev/*",
    ":(){*",
    "chmod -R * /",
    "chown -R * /",
    "shutdown*",
    "reboot*",
    "git push --force*",
    "git push -f*",
]
RISKY = ["rm *", "git push*", "git reset --hard*", "git clean *"]
READ_ONLY = ["read_file", "list_files", "search"]
WRITES = ["write_file", "edit_file"]


class Policy(BaseModel):
    """Ordered rules; the first that matches decides, otherwise `default_action`."""

    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list)
    default_action: Action = "ask"

    def decide(self, call: ToolCall, untrusted_context: bool = False) -> tuple[Action, Rule | None]:
        """The action for a call and the rule that chose it (None when the default did)."""
        for rule in self.rules:
            if rule.matches(call, untrusted_context):
                return rule.action, rule
        return self.default_action, None

    @classmethod
    def default(cls) -> Policy:
        """Reads and edits in the workspace run; risky shell commands ask; destructive deny."""
        rules = [Rule(tool="bash", pattern=p, action="deny") for p in DESTRUCTIVE]
        rules.append(Rule(tool="bash", action="ask", untrusted=True))
        rules += [Rule(tool="bash", pattern=p, action="ask") for p in RISKY]
        rules.append(Rule(tool="bash", action="auto"))
        rules += [Rule(tool=name, action="auto") for name in READ_ONLY + WRITES]
        return cls(rules=rules, default_action="ask")

    @classmethod
    def from_file(cls, path: Path) -> Policy:
        """Load a policy from a .json or .toml file: `default_action` and `rules`."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read policy file {path}: {exc.strerror}") from None
        try:
            if path.suffix == ".toml":
                data = tomllib.loads(text)
            elif path.suffix == ".json":
                data = json.loads(text)
            else:
                raise ConfigError(f"policy file {path} must end in .json or .toml")
            return cls.model_validate(data)
        except (ValueError, ValidationError) as exc:
            raise ConfigError(f"invalid policy file {path}: {exc}") from None


Ask = Callable[[ToolCall, str], bool]


class PolicyApprover:
    """The Approver: a policy decides; "ask" goes to a human, or to --yes, or is denied."""

    def __init__(self, policy: Policy, ask: Ask | None = None, auto_approve: bool = False) -> None:
        self.policy = policy
        self.ask = ask
        self.auto_approve = auto_approve

    def decide(self, call: ToolCall, untrusted_context: bool) -> Approval:
        """Allow or deny one call; "deny" rules hold even with --yes."""
        action, rule = self.policy.decide(call, untrusted_context)
        why = f"rule {rule.describe()}" if rule else f"default action {action}"
        if action == "auto":
            return Approval(decision="allow", reason=f"allowed by {why}")
        if action == "deny":
            return Approval(decision="deny", reason=f"denied by policy ({why})")
        if self.auto_approve:
            return Approval(decision="allow", reason=f"approved by --yes ({why})")
        if self.ask is None:
            return Approval(
                decision="deny",
                reason=f"{call.name} needs approval ({why}) and no one is here to approve it; "
                "re-run with --yes or approve it",
            )
        if self.ask(call, why):
            return Approval(decision="allow", reason=f"approved by the user ({why})")
        return Approval(decision="deny", reason=f"declined by the user ({why})")
