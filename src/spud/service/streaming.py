"""Chat that streams: plain-text answers piece by piece, and each tool step as it happens."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from spud.core.messages import Message, ModelReply
from spud.core.protocols import AnsweringModel, Model, OnText, ToolSpec

# One chat event: {"text": piece} of the answer, or {"step": {...}} for a tool step.
OnEvent = Callable[[dict[str, Any]], None]
SHOWN_ARGS = 200


# Words of a request that asks for files to be written or changed.
ASKS_TO_WRITE = re.compile(
    r"\b(write|writes|create|save|edit|change|modify|fix|update|rename|delete|remove|append|"
    r"replace|refactor|implement|generate|file|files|folder|script|program)\b|\.\w{1,5}\b",
    re.IGNORECASE,
)


def asks_to_write(messages: list[Message]) -> bool:
    """Whether the latest user turn asks for something to be written (a file, a fix)."""
    for m in reversed(messages):
        if m.role == "user" and m.kind != "format_error":
            return bool(ASKS_TO_WRITE.search(m.content))
    return False


class Answering:
    """A chat's view of a model: each reply may be a plain-text answer, streamed to on_text.

    Tool calls stay possible; the loop turns a plain-text reply into the turn's answer. The
    writers (tools that write files) may not be called on a turn that does not ask for it.
    """

    def __init__(
        self,
        inner: AnsweringModel | Model,
        on_text: OnText | None = None,
        writers: frozenset[str] = frozenset(),
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.context_window = inner.context_window
        self.on_text = on_text
        self.writers = writers

    def complete(
        self, messages: list[Message], tools: list[ToolSpec], exclude: frozenset[str] = frozenset()
    ) -> ModelReply:
        if self.writers and not asks_to_write(messages):
            exclude = exclude | self.writers
        if isinstance(self.inner, AnsweringModel):
            return self.inner.answer_or_call(messages, tools, exclude, self.on_text)
        return self.inner.complete(messages, tools, exclude)  # remote models answer in text

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec]) -> int:
        return self.inner.count_tokens(messages, tools)


def step_of(m: Message) -> dict[str, Any] | None:
    """A tool step as a chat shows it live: the call, then its result (None: not a step)."""
    if m.role == "assistant":
        calls = [c for c in m.tool_calls if c.name != "finish"]
        if not calls:
            return None
        shown = [{"tool": c.name, "args": _args(c.arguments)} for c in calls]
        return {"calls": shown}
    if m.role == "tool" and m.name != "finish":
        return {"tool": m.name, "ok": bool(m.meta.get("ok")), "result": m.content[:SHOWN_ARGS]}
    return None


def _args(arguments: dict[str, Any]) -> str:
    text = json.dumps(arguments, ensure_ascii=False)
    return text if len(text) <= SHOWN_ARGS else text[:SHOWN_ARGS] + "…"


class ChatStream:
    """The callbacks one chat turn streams through: on_text for the answer, on_message for
    the steps; what was streamed is kept, so the final answer is not sent twice."""

    def __init__(self, on_event: OnEvent) -> None:
        self.on_event = on_event
        self.streamed = ""

    def on_text(self, piece: str) -> None:
        self.streamed += piece
        self.on_event({"text": piece})

    def on_message(self, m: Message) -> None:
        step = step_of(m)
        if step is not None:
            self.on_event({"step": step})
        if m.role == "assistant" and not m.meta.get("text_answer"):
            self.streamed = ""  # an answer streamed before a call was not the final one

    def rest(self, answer: str) -> str:
        """What of the final answer has not been streamed yet (all of it if it differs)."""
        done = self.streamed.strip()
        if done and answer.startswith(done):
            return answer[len(done) :]
        return answer
