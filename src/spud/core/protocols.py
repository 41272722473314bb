"""The Protocols the agent loop runs over: Model, Tool, Store, Approver."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from spud.core.messages import Message, ModelReply, ToolCall, ToolResult


class ToolSpec(BaseModel):
    """What the model sees of a tool: a name, a description and a JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]
    # For the embedded model's grammar only; never rendered (model_dump leaves them out).
    # raw_text: the string argument written as a fenced block after the call header.
    raw_text: str | None = Field(None, exclude=True)
    # search_replace: the (old, new) arguments written as SEARCH/REPLACE blocks.
    search_replace: tuple[str, str] | None = Field(None, exclude=True)
    # constraints: per argument, a JSON schema that narrows it in the grammar (lengths, patterns).
    constraints: dict[str, dict[str, Any]] = Field(default_factory=dict, exclude=True)
    # choices: per argument, the values valid at this step (files that exist, refs on the page).
    choices: dict[str, list[str]] = Field(default_factory=dict, exclude=True)


@runtime_checkable
class Model(Protocol):
    """Anything that turns a message list into the next assistant message."""

    name: str
    context_window: int

    def complete(
        self, messages: list[Message], tools: list[ToolSpec], exclude: frozenset[str] = frozenset()
    ) -> ModelReply:
        """Return the next assistant message; raise FormatError if it is not valid.

        Tools named in exclude stay described but must not be called in this reply.
        """
        ...

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec]) -> int:
        """How many prompt tokens these messages take for this model."""
        ...


# Records one call as a step of the run and runs it like the model's own; returns its result.
Act = Callable[[ToolCall, dict[str, Any]], Message]


class Opening(Protocol):
    """First steps a playbook takes for a text model (e.g. drafts asked for in markdown)."""

    def __call__(self, model: TextModel, act: Act) -> None: ...


@runtime_checkable
class TextModel(Protocol):
    """A model that can also reply in free text, with no tools (a playbook's drafts)."""

    drafts: bool  # whether playbooks draft in plain text with this model (measured per model)

    def chat(
        self,
        messages: list[Message],
        max_tokens: int = 2048,
        temperature: float | None = None,
        until_block: bool = False,
    ) -> ModelReply:
        """The next assistant message as plain text (markdown, code blocks); temperature None
        is the model's own setting; until_block asks for a ```python block and ends the reply
        where it closes (what a model says after the code is not read, and costs decode time);
        a model that can be made to start its reply inside the block is."""
        ...


# Receives a plain-text answer's text, piece by piece, as the model generates it.
OnText = Callable[[str], None]


@runtime_checkable
class AnsweringModel(Protocol):
    """A model that, when asked, may answer in plain text instead of calling a tool (chat)."""

    def answer_or_call(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        exclude: frozenset[str] = frozenset(),
        on_text: OnText | None = None,
    ) -> ModelReply:
        """Tool calls, or a plain-text answer (content, no calls) streamed to on_text."""
        ...


@runtime_checkable
class Tool(Protocol):
    """A small class with a name, a description and typed arguments."""

    name: str
    description: str
    Args: type[BaseModel]

    def run(self, args: Any) -> ToolResult:
        """Run with validated arguments (an instance of Args)."""
        ...


class SessionInfo(BaseModel):
    """A stored session without its messages."""

    id: str
    task: str
    workspace: str
    model: str
    status: str
    created_at: datetime
    updated_at: datetime
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    summary: str = ""
    toolsets: list[str] = []  # the tool sets it was given, when recorded


@runtime_checkable
class Store(Protocol):
    """Where sessions and their messages live; each append is committed on return."""

    def create_session(self, task: str, workspace: str, model: str) -> str: ...

    def append(self, session_id: str, message: Message) -> int:
        """Persist one message (committed before returning: a killed process loses nothing;
        a power cut may lose the step in progress); return its index."""
        ...

    def messages(self, session_id: str) -> list[Message]: ...

    def get_session(self, session_id: str) -> SessionInfo: ...

    def list_sessions(self, limit: int = 50) -> list[SessionInfo]: ...

    def update_session(self, session_id: str, **fields: Any) -> None:
        """Set status, summary, steps or token totals."""
        ...


Decision = Literal["allow", "deny"]


class Approval(BaseModel):
    """Whether a tool call may run, and why."""

    decision: Decision
    reason: str = ""


@runtime_checkable
class Approver(Protocol):
    """Decides whether a tool call may run (policy as data, plus a human if asked)."""

    def decide(self, call: ToolCall, untrusted_context: bool | str) -> Approval:
        """untrusted_context: True (outside content in the trajectory), "workspace" (only
        the workspace's own file contents and command output) or False (none)."""
        ...


class CheckResult(BaseModel):
    """One check of a task's outcome (tests run, an output file verified) and what it found."""

    name: str
    passed: bool
    detail: str = ""


@runtime_checkable
class Verifier(Protocol):
    """Checks a task's outcome from the workspace; the loop asks it before finishing."""

    def check(self) -> list[CheckResult]:
        """Run every check that applies now; an empty list means nothing could be checked."""
        ...

    def after_change(self) -> str:
        """A short result of the quick check after a file changed ("" when there is none)."""
        ...
