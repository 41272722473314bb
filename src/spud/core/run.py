"""What a run is given and gives back: prompts, limits, harness switches, the finish tool."""

from __future__ import annotations

import time
from contextvars import ContextVar

from pydantic import BaseModel, Field, PrivateAttr

from spud.core.errors import LimitReached
from spud.core.messages import Message, ToolCall, ToolResult, Usage
from spud.core.protocols import Approval, CheckResult

SYSTEM_PROMPT = """You are Spud, an agent that completes tasks by calling tools.
All file paths are relative to the workspace folder, which is the current directory.
Each reply is exactly one tool call. Work in small steps: look at the files you need,
make changes with write_file or edit_file, run commands with bash to check that they work,
then call finish with a short summary of what you did."""

CHAT_PROMPT = """You are Spud, a helpful assistant that can also use tools.
When you can answer from what you know (facts, arithmetic, explanations, advice), answer
directly in plain text, without calling any tool: to "What is 7 * 6?" reply "7 * 6 = 42." \
Use a tool only when the request needs
one: files in the workspace, commands, the web, or what you remember about the user.
Never create or change a file unless the user asks for it. After using tools, answer in
plain text."""


class RunResult(BaseModel):
    """How a run ended."""

    session_id: str
    status: str  # finished | check_failed | limit:<which> | repetition | format_errors | ...
    summary: str = ""
    checks: list[CheckResult] = Field(default_factory=list)
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0

    _seen: int = PrivateAttr(0)  # messages the totals cover
    _last: Message | None = PrivateAttr(None)  # the last of them
    _totals: Usage = PrivateAttr(default_factory=Usage)
    _assistants: int = PrivateAttr(0)

    def count(self, messages: list[Message]) -> None:
        """Set steps, tokens and cost from the stored messages (a resumed run counts on).

        The list only grows during a run, so only messages added since the last count are
        read; a list that is not a continuation of the counted one is counted afresh.
        """
        seen = self._seen
        if len(messages) < seen or (seen and messages[seen - 1] is not self._last):
            self._totals, self._assistants, seen = Usage(), 0, 0
        for m in messages[seen:]:
            if m.role != "assistant":
                continue
            if not m.meta.get("undo"):  # putting back the best code so far is not a step
                self._assistants += 1
            if "usage" in m.meta:
                u = Usage.model_validate(m.meta["usage"])
                self._totals.prompt_tokens += u.prompt_tokens
                self._totals.completion_tokens += u.completion_tokens
                self._totals.cost_usd += u.cost_usd
        self._seen, self._last = len(messages), messages[-1] if messages else None
        self.steps = self._assistants
        self.prompt_tokens = self._totals.prompt_tokens
        self.completion_tokens = self._totals.completion_tokens
        self.cost_usd = self._totals.cost_usd


class Limits(BaseModel):
    """What one run may spend before it stops with a clear status."""

    max_steps: int = 30
    max_tokens: int = 300_000
    max_cost_usd: float = 2.0
    max_seconds: float = 1800.0
    max_output_tokens: int = 768
    max_tool_output_chars: int = 6000

    def check(self, result: RunResult, elapsed: float) -> None:
        """Raise LimitReached when the run has used up a budget."""
        if result.steps >= self.max_steps:
            raise LimitReached("step", f"{result.steps} of {self.max_steps} steps used")
        tokens = result.prompt_tokens + result.completion_tokens
        if tokens >= self.max_tokens:
            raise LimitReached("token", f"{tokens} of {self.max_tokens} tokens used")
        if result.cost_usd >= self.max_cost_usd:
            spent = f"${result.cost_usd:.4f} of ${self.max_cost_usd:.2f} spent"
            raise LimitReached("cost", spent)
        if elapsed >= self.max_seconds:
            raise LimitReached("time", f"{elapsed:.0f}s of {self.max_seconds:.0f}s used")


# When the running run's time is up (time.monotonic()), for a model that can stop there: a
# local model's reply stops at its next decode step instead of running past the limit (a
# 1.5B's 768-token reply ended 240 s runs at up to 296 s).
DEADLINE: ContextVar[float | None] = ContextVar("spud_run_deadline", default=None)


def past_deadline() -> None:
    """Raise LimitReached("time") when the running run's time is up."""
    deadline = DEADLINE.get()
    if deadline is not None and time.monotonic() >= deadline:
        raise LimitReached("time", "the time was up during the model's reply")


class Harness(BaseModel):
    """Opt-in helps for small models; `spud eval --harness spud-check` measures them."""

    self_check: bool = False  # the first finish after changes is refused once, with a review
    rerun_guard: bool = False  # a failed command is not rerun while nothing has changed
    verify: bool = True  # run the task's checks (from its playbook) before finishing
    check_repairs: int = 2  # failing checks sent back for a repair before the run gives up
    check_after_change: bool = True  # the quick check's result follows every file change
    draft_votes: int = 1  # passing script drafts whose outputs vote (effort medium, high: 3)
    by_hand: bool = False  # a passing script's output is held against its head worked by hand
    # replies tried against the tests in a code round whose draft fixes nothing (medium, high: 3)
    code_samples: int = 1


class Finish:
    """The tool that ends a run with a summary (or, in chat, the answer)."""

    name = "finish"
    description = "Finish the task. Give a short summary of what was done, or the answer."

    class Args(BaseModel):
        summary: str = Field(description="What was done, or the answer to the user.")

    def run(self, args: Args) -> ToolResult:
        return ToolResult(output="finished")


class AllowAll:
    """An approver that allows every call (tests and trusted batch jobs)."""

    def decide(self, call: ToolCall, untrusted_context: bool | str) -> Approval:
        return Approval(decision="allow")
