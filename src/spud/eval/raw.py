"""The raw baseline: plain llama-cpp-python chat completion with tools, no grammar, no feedback."""

from __future__ import annotations

import json
import time
from typing import Any

from spud.core.errors import FormatError
from spud.core.messages import Message, ModelReply, Usage
from spud.core.protocols import ToolSpec
from spud.models.local import LocalModel
from spud.models.toolcall import parse_calls


class RawChatModel:
    """Wraps a loaded LocalModel's llama.cpp instance; sends the GGUF's own chat template.

    Replies are parsed the way an OpenAI-style client of a Qwen model would be: tool calls in
    `<tool_call>` tags (or bare JSON). A reply that holds an invalid call is returned as text,
    marked `invalid_call`, so the run ends there instead of getting feedback.
    """

    def __init__(self, local: LocalModel) -> None:
        self.local = local
        self.name = f"raw:{local.name}"
        self.context_window = local.context_window

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec]) -> int:
        return self.local.count_tokens(messages, tools)

    def complete(
        self, messages: list[Message], tools: list[ToolSpec], exclude: frozenset[str] = frozenset()
    ) -> ModelReply:
        started = time.perf_counter()
        out = self.local.llm.create_chat_completion(
            messages=[_openai(m) for m in messages],
            tools=[{"type": "function", "function": s.model_dump()} for s in tools],
            temperature=self.local.temperature,
            max_tokens=self.local.max_output_tokens,
        )
        text = (out["choices"][0]["message"].get("content") or "").strip()
        usage = Usage(
            prompt_tokens=out["usage"]["prompt_tokens"],
            completion_tokens=out["usage"]["completion_tokens"],
            seconds=time.perf_counter() - started,
        )
        meta: dict[str, Any] = {"raw_text": text}
        if not looks_like_call(text):
            return ModelReply(
                message=Message(role="assistant", content=text, meta=meta), usage=usage
            )
        try:
            calls = parse_calls(text, tools)
        except FormatError as exc:
            meta["invalid_call"] = exc.problem
            return ModelReply(
                message=Message(role="assistant", content=text, meta=meta), usage=usage
            )
        return ModelReply(
            message=Message(role="assistant", tool_calls=calls, meta=meta), usage=usage
        )


def looks_like_call(text: str) -> bool:
    """Whether a reply tries to call a tool (tags, a JSON fence or a bare JSON object)."""
    head = text.lstrip()
    return "<tool_call>" in text or head.startswith(("{", "[", "```json")) or '"name"' in text


def _openai(m: Message) -> dict[str, Any]:
    """One message in the OpenAI chat shape; assistant turns replay the model's own text."""
    if m.role == "assistant":
        text = m.meta.get("raw_text")
        if text is None:
            text = m.content + "".join(
                "<tool_call>\n"
                + json.dumps({"name": c.name, "arguments": c.arguments})
                + "\n</tool_call>"
                for c in m.tool_calls
            )
        return {"role": "assistant", "content": text}
    if m.role == "tool":
        return {"role": "tool", "content": m.content}
    return {"role": m.role, "content": m.content}
