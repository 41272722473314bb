"""A model that plays back recorded replies, for tests and benchmarks of the harness."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from spud.core.errors import ConfigError
from spud.core.messages import Message, ModelReply, ToolCall, Usage
from spud.core.protocols import OnText, ToolSpec
from spud.models.local import render_chatml
from spud.models.toolcall import parse_calls


class ReplayModel:
    """Each reply is a dict: {"calls": [{"name", "arguments"}]}, {"text": raw} or {"answer": s}.

    "text" goes through the same parser as an unconstrained model, so it can produce format
    errors; "answer" is a plain-text reply with no tool call. The reply played is chosen by
    the number of assistant turns already in the list, so a resumed session picks up where
    the recording left off.
    """

    def __init__(
        self, replies: list[dict[str, Any]], name: str = "replay", context_window: int = 32768
    ) -> None:
        for i, reply in enumerate(replies):
            if not isinstance(reply, dict) or not {"calls", "text", "answer"} & set(reply):
                raise ConfigError(
                    f'replay reply {i} must be an object with "calls", "text" or "answer"'
                )
        self.replies = list(replies)
        self.name = name
        self.context_window = context_window

    @classmethod
    def from_file(cls, path: Path) -> ReplayModel:
        try:
            replies = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read replay file {path}: {exc}") from None
        if not isinstance(replies, list):
            raise ConfigError(f"replay file {path} must hold a JSON list of replies")
        return cls(replies, name=f"replay:{path}")

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec]) -> int:
        return len(render_chatml(messages, tools)) // 4

    def complete(
        self, messages: list[Message], tools: list[ToolSpec], exclude: frozenset[str] = frozenset()
    ) -> ModelReply:
        started = time.perf_counter()
        index = sum(1 for m in messages if m.role == "assistant")
        if index >= len(self.replies):
            reply: dict[str, Any] = {
                "calls": [{"name": "finish", "arguments": {"summary": "replay ended"}}]
            }
        else:
            reply = self.replies[index]
        usage = Usage(
            prompt_tokens=self.count_tokens(messages, tools),
            completion_tokens=len(json.dumps(reply)) // 4,
            cost_usd=float(reply.get("cost_usd", 0.0)),
        )
        if "text" in reply:
            message = Message(role="assistant", tool_calls=parse_calls(reply["text"], tools))
        elif "answer" in reply:
            message = Message(role="assistant", content=reply["answer"])
        else:
            calls = [
                ToolCall(name=c["name"], arguments=c.get("arguments", {})) for c in reply["calls"]
            ]
            message = Message(role="assistant", tool_calls=calls)
        usage.seconds = time.perf_counter() - started
        return ModelReply(message=message, usage=usage)

    def answer_or_call(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        exclude: frozenset[str] = frozenset(),
        on_text: OnText | None = None,
    ) -> ModelReply:
        """The next reply; an "answer" is handed to on_text word by word, as if generated."""
        reply = self.complete(messages, tools, exclude)
        if on_text is not None and not reply.message.tool_calls:
            for word in re.findall(r"\s*\S+", reply.message.content):
                on_text(word)
        return reply
