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
from spud.sandbox.shellparse import ShellParseError, parse_command

Action = Literal["auto", "ask", "deny"]
Risk = Literal["read", "write", "execute", "send"]  # what a tool declares in its `risk`
# What untrusted content the trajectory holds: none, only the workspace's own files and
# command output, or content from outside (web pages, documents, MCP servers).
Trust = Literal["none", "workspace", "outside"]
STRICTNESS: dict[str, int] = {"auto": 0, "ask": 1, "deny": 2}

_SEPARATORS = re.compile(r"\|\||&&|[;|&\n]")
_SPANNING = frozenset("|;&()")  # a pattern with these is matched against the whole line


def trust_of(untrusted_context: bool | str | None) -> Trust:
    """The agent's untrusted_context as a level: True (or "outside") is outside content,
    "workspace" only the workspace's own, False/None none."""
    if untrusted_context in ("workspace", "none", "outside"):
        return untrusted_context  # type: ignore[return-value]
    return "outside" if untrusted_context else "none"


def strictest(
    results: list[tuple[Action, Rule | None]],
) -> tuple[Action, Rule | None]:
    """The strictest decision (deny over ask over auto); the first of equals."""
    best = results[0]
    for result in results[1:]:
        if STRICTNESS[result[0]] > STRICTNESS[best[0]]:
            best = result
    return best


def command_units(call: ToolCall) -> tuple[list[str | None], list[str], str]:
    """What the rules judge for a call: (subjects, whole lines, problem).

    A shell command gives one subject per simple command it runs (quotes removed, wrappers
    and `sh -c` unwrapped, single spaces), and its whole line as written and normalised
    (for patterns that span commands). Any other call gives its path. `problem` says why
    the call must at least ask: a command that cannot be parsed, or whose program is
    computed when it runs.
    """
    command = call.arguments.get("command")
    if not isinstance(command, str):
        subject = call_subject(call)
        return [subject], [subject] if subject is not None else [], ""
    raw = command.strip()
    try:
        parsed = parse_command(command)
    except ShellParseError as exc:
        parts = [part.strip() for part in _SEPARATORS.split(command) if part.strip()]
        subjects: list[str | None] = list(dict.fromkeys([raw, *parts]))
        return subjects, [raw], f"a command Spud cannot follow ({exc})"
    units: list[str | None] = list(dict.fromkeys(parsed.texts())) or [""]
    problem = "a command whose program is only known when it runs" if parsed.dynamic else ""
    return units, [raw, parsed.line], problem


def call_subject(call: ToolCall) -> str | None:
    """What a rule's pattern is matched against: the shell command, else the path argument."""
    for key in ("command", "path"):
        value = call.arguments.get(key)
        if isinstance(value, str):
            return value
    return None


class Rule(BaseModel):
    """One line of policy: calls to `tool` (a glob) whose subject matches `pattern` get `action`.

    A pattern is a shell-style glob. For bash it is matched against each simple command the
    line runs, parsed as the shell would (`"rm" -rf ~`, `command sudo id`, `bash -c '…'`,
    `$(…)` and doubled spaces all show the real command); a pattern holding `|`, `;`, `&`,
    `(` or `)` is matched against the whole line instead. For other tools it is matched
    against the path argument.

    `untrusted` limits a rule by what the trajectory holds: True, content from outside the
    workspace (web pages, documents, MCP results); "any", also the workspace's own file
    contents and command output; False, no outside content; None, always. `risks` limits
    it to tools that declare one of these risks.
    """

    model_config = ConfigDict(extra="forbid")

    tool: str = "*"
    pattern: str | None = None
    action: Action
    untrusted: Literal["any"] | bool | None = None
    risks: list[Risk] | None = None
    reason: str = ""  # said in approval messages instead of the rule itself

    def applies(self, tool: str, context: Trust, risk: Risk | None = None) -> bool:
        """Whether the rule is about this tool in this context (before its pattern)."""
        want = self.untrusted
        if want is True and context != "outside":
            return False
        if want is False and context == "outside":
            return False
        if want == "any" and context == "none":
            return False
        if self.risks is not None and risk not in self.risks:
            return False
        return fnmatch.fnmatchcase(tool, self.tool)

    def fits(self, subject: str | None, lines: list[str]) -> bool:
        """Whether the pattern matches one subject (or, if it spans commands, the line)."""
        if self.pattern is None:
            return True
        if subject is None:
            return False
        if _SPANNING & set(self.pattern):
            return any(fnmatch.fnmatchcase(line, self.pattern) for line in lines)
        return fnmatch.fnmatchcase(subject, self.pattern)

    def matches(
        self, call: ToolCall, untrusted_context: bool | str = False, risk: Risk | None = None
    ) -> bool:
        """Whether this rule applies to the call (to any command of a shell line)."""
        if not self.applies(call.name, trust_of(untrusted_context), risk):
            return False
        subjects, lines, _ = command_units(call)
        return any(self.fits(s, lines) for s in subjects)

    def describe(self) -> str:
        """A short human-readable form, used in approval reasons."""
        if self.reason:
            return f"{self.reason} -> {self.action}"
        text = self.tool if self.pattern is None else f"{self.tool} '{self.pattern}'"
        if self.risks:
            text += f" ({'/'.join(self.risks)} risk)"
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
# Commands that reach the network: they ask once any untrusted content (even a workspace
# file or a command's output) is in the trajectory, so text planted in a file cannot make
# the agent send the workspace away. Ordinary builds and tests run on.
NETWORK = [
    *(
        f"{tool} *"
        for tool in "curl wget ssh scp sftp rsync nc ncat netcat socat telnet ftp".split()
    ),
    "git push*",
    "git fetch*",
    "git pull*",
    "git clone*",
    "git remote add*",
    "git submodule update*",
    "pip install*",
    "pip3 install*",
    "python -m pip install*",
    "python3 -m pip install*",
    "uv pip install*",
    "npm install*",
    "npm i *",
    "npm publish*",
    "yarn add*",
]


class Policy(BaseModel):
    """Ordered rules; the first that matches decides, otherwise the tool's risk (when
    `by_risk`) or `default_action`."""

    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list)
    default_action: Action = "ask"
    by_risk: bool = False  # unmatched calls to a tool that declares its risk: see risk_action
    # Policies that also decide (a member's own policy under the admin's): strictest wins.
    also: list[Policy] = Field(default_factory=list)

    def decide(
        self, call: ToolCall, untrusted_context: bool | str = False, risk: Risk | None = None
    ) -> tuple[Action, Rule | None]:
        """The action for a call and the rule that chose it (None when a default did).

        A shell line is judged command by command (see command_units): each simple command
        gets the first rule that matches it, and the strictest of their actions wins; a
        line Spud cannot parse, or whose program is computed, asks at least. Policies in
        `also` decide too, and the strictest of all wins.
        """
        subjects, lines, problem = command_units(call)
        results = [self._first(call, s, lines, untrusted_context, risk) for s in subjects]
        if problem:
            results.append(("ask", Rule(tool=call.name, action="ask", reason=problem)))
        results += [p.decide(call, untrusted_context, risk) for p in self.also]
        return strictest(results)

    def _first(
        self,
        call: ToolCall,
        subject: str | None,
        lines: list[str],
        untrusted_context: bool | str,
        risk: Risk | None,
    ) -> tuple[Action, Rule | None]:
        context = trust_of(untrusted_context)
        for rule in self.rules:
            if rule.applies(call.name, context, risk) and rule.fits(subject, lines):
                return rule.action, rule
        if self.by_risk and risk is not None:
            return risk_action(self, call, untrusted_context, risk)
        return self.default_action, None

    def under(self, ceiling: Policy) -> Policy:
        """This policy held under a ceiling (the admin's): the ceiling decides as before,
        and this policy can only make a decision stricter, never looser."""
        return ceiling.model_copy(update={"also": [*ceiling.also, self]})

    @classmethod
    def default(cls) -> Policy:
        """Shell rules for bash; every other tool by its declared risk (see risk_action)."""
        rules = [Rule(tool="bash", pattern=p, action="deny") for p in DESTRUCTIVE]
        # Outside content in the trajectory: whatever writes, runs or sends asks (the
        # browser still reads and clicks: pages are its input; browser_submit asks anyway).
        rules.append(Rule(tool="browser_*", risks=["read", "write"], untrusted=True, action="auto"))
        rules.append(
            Rule(tool="*", risks=["write", "execute", "send"], untrusted=True, action="ask")
        )
        rules.append(Rule(tool="bash", action="ask", untrusted=True))
        rules += [Rule(tool="bash", pattern=p, action="ask", untrusted="any") for p in NETWORK]
        rules += [Rule(tool="bash", pattern=p, action="ask") for p in RISKY]
        rules.append(Rule(tool="bash", action="auto"))
        return cls(rules=rules, default_action="ask", by_risk=True)

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

    def __init__(
        self,
        policy: Policy,
        ask: Ask | None = None,
        auto_approve: bool = False,
        risks: dict[str, Risk | None] | None = None,
    ) -> None:
        self.policy = policy
        self.ask = ask
        self.auto_approve = auto_approve
        self.risks = risks or {}  # tool name -> the risk the tool declares

    def decide(self, call: ToolCall, untrusted_context: bool) -> Approval:
        """Allow or deny one call; "deny" rules hold even with --yes."""
        risk = self.risks.get(call.name)
        action, rule = self.policy.decide(call, untrusted_context, risk)
        why = f"rule {rule.describe()}" if rule else default_reason(self.policy, risk, action)
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


# -- decisions from a tool's declared risk (MCP's readOnly/destructive/openWorld hints) -----

RISK_ACTIONS: dict[str, Action] = {"read": "auto", "write": "auto", "send": "ask"}


def risk_action(
    policy: Policy, call: ToolCall, untrusted_context: bool | str, risk: Risk
) -> tuple[Action, Rule | None]:
    """What a call no rule matched gets from its tool's risk.

    read and write run (every built-in write stays inside the workspace); send asks, as it
    acts for the user outside Spud; execute is judged by the policy's shell rules, as if
    the command were given to bash (no shell rule matching: ask).
    """
    if risk == "execute":
        return shell_action(policy, call, untrusted_context)
    return RISK_ACTIONS.get(risk, "ask"), None


def shell_action(
    policy: Policy, call: ToolCall, untrusted_context: bool | str
) -> tuple[Action, Rule | None]:
    """The policy's decision had the call's command been given to bash (none for bash: ask)."""
    if call.name == "bash":
        return "ask", None
    as_bash = call.model_copy(update={"name": "bash"})
    return policy.decide(as_bash, untrusted_context, "execute")


def default_reason(policy: Policy, risk: Risk | None, action: Action) -> str:
    """Why a call no rule matched got its action, for approval messages."""
    if policy.by_risk and risk is not None:
        return f"{risk} risk -> {action}"
    return f"default action {action}"
