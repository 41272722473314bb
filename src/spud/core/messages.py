"""The one message list: prompt, trajectory, audit record and training data."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

Role = Literal["system", "user", "assistant", "tool"]


def new_id(prefix: str = "call") -> str:
    """A short unique id, e.g. for tool calls."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class ToolCall(BaseModel):
    """A request from the model to run one tool."""

    id: str = Field(default_factory=new_id)
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    def signature(self) -> str:
        """Canonical text of name and arguments, used to spot repeated calls."""
        return self.name + json.dumps(self.arguments, sort_keys=True)


class Message(BaseModel):
    """One entry of the trajectory."""

    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    untrusted: bool = False
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def kind(self) -> str:
        """What this message is beyond its role (e.g. 'format_error', 'finish')."""
        return str(self.meta.get("kind", ""))


# ToolResult.data["origin"] for untrusted output that comes from the workspace itself (its
# files, command output): text anyone who wrote into the workspace may have planted, but
# not content from outside (web pages, documents, MCP results), which has no origin set.
WORKSPACE_ORIGIN = "workspace"


def untrusted_context(messages: list[Message]) -> bool | str:
    """What untrusted content a trajectory holds, for the approver: True when content from
    outside the workspace is there, "workspace" when only the workspace's own is, else False."""
    return Trajectory.of(messages).untrusted


class Trajectory(list[Message]):
    """A run's message list that keeps up, as it grows, what every step asks of it.

    The latest user turn, each call's result, the untrusted content and the repeated calls
    are brought up to date from the messages appended since the last question, so a step
    costs the same at step 200 as at step 2. A list changed otherwise is read again.
    """

    def __init__(self, messages: Iterable[Message] = ()) -> None:
        super().__init__(messages)
        self._forget()

    @classmethod
    def of(cls, messages: list[Message]) -> Trajectory:
        """messages itself, up to date, if it is a Trajectory; else one read from it."""
        if isinstance(messages, Trajectory):
            messages._catch_up()
            return messages
        trajectory = cls(messages)
        trajectory._catch_up()
        return trajectory

    @property
    def last_user_turn(self) -> int:
        """Index of the latest user message that is a real turn (not a format-error note)."""
        return self._last_user

    @property
    def untrusted(self) -> bool | str:
        return self._untrusted

    def results(self) -> dict[str | None, Message]:
        """The latest tool result for each call id (a copy)."""
        return dict(self._results)

    def repeats(self, call: ToolCall, result_hash: str) -> int:
        """How many times this call has now given this result (1 = first time)."""
        for earlier_hash, earlier in self._unsigned:  # signatures are written out when asked
            key = (earlier_hash, earlier.signature())
            self._repeats[key] = self._repeats.get(key, 0) + 1
        self._unsigned.clear()
        return self._repeats.get((result_hash, call.signature()), 0) + 1

    def _forget(self) -> None:
        self._seen, self._last = 0, None
        self._last_user = 0
        self._results: dict[str | None, Message] = {}
        self._calls: dict[str, ToolCall] = {}
        self._untrusted: bool | str = False
        self._repeats: dict[tuple[str, str], int] = {}  # (result hash, call signature)
        self._unsigned: list[tuple[str, ToolCall]] = []  # results not in _repeats yet

    def _catch_up(self) -> None:
        seen = self._seen
        if len(self) < seen or (seen and self[seen - 1] is not self._last):
            self._forget()
            seen = 0
        for i in range(seen, len(self)):
            self._note(i, self[i])
        self._seen, self._last = len(self), self[-1] if self else None

    def _note(self, i: int, m: Message) -> None:
        if m.role == "user" and m.kind != "format_error":
            self._last_user = i
        elif m.role == "assistant":
            self._calls.update((c.id, c) for c in m.tool_calls)
        elif m.role == "tool":
            self._results[m.tool_call_id] = m
            call = self._calls.get(m.tool_call_id or "")
            result_hash = m.meta.get("result_hash")
            if call is not None and result_hash is not None:
                self._unsigned.append((result_hash, call))
        if m.untrusted and self._untrusted is not True:
            self._untrusted = m.meta.get("origin") != WORKSPACE_ORIGIN or WORKSPACE_ORIGIN


class ToolResult(BaseModel):
    """What a tool hands back: text for the model, data for people and checks."""

    output: str
    ok: bool = True
    untrusted: bool = False
    data: dict[str, Any] = Field(default_factory=dict)


class Usage(BaseModel):
    """Token, cost and time accounting for one model call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_eval_tokens: int | None = None  # tokens actually evaluated (prefix cache)
    cost_usd: float = 0.0
    seconds: float = 0.0


class ModelReply(BaseModel):
    """The assistant message a model produced, and what it cost."""

    message: Message
    usage: Usage = Field(default_factory=Usage)
