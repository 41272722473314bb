"""The one message list: prompt, trajectory, audit record and training data."""

from __future__ import annotations

import json
import uuid
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
    level: bool | str = False
    for m in messages:
        if m.untrusted:
            if m.meta.get("origin") != WORKSPACE_ORIGIN:
                return True
            level = WORKSPACE_ORIGIN
    return level


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
