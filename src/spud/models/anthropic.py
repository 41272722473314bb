"""Anthropic's Messages API with native tool use, through the official SDK."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic

from spud.core.errors import ModelError
from spud.core.messages import Message, ModelReply, ToolCall, Usage
from spud.core.protocols import ToolSpec
from spud.models.toolcall import check_call


def to_anthropic(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """The system text, and the turns with tool results merged into user turns."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "assistant":
            blocks: list[dict[str, Any]] = []
            text = m.content or m.meta.get("raw") or ""
            if text:
                blocks.append({"type": "text", "text": text})
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                for c in m.tool_calls
            ]
            turns.append(
                {"role": "assistant", "content": blocks or [{"type": "text", "text": "…"}]}
            )
            continue
        block = (
            {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
            if m.role == "tool"
            else {"type": "text", "text": m.content}
        )
        if turns and turns[-1]["role"] == "user":
            turns[-1]["content"].append(block)
        else:
            turns.append({"role": "user", "content": [block]})
    return system, turns


class AnthropicModel:
    """A Claude model; tool calls come back as tool_use blocks."""

    def __init__(
        self,
        model: str,
        api_key: str | None = None,
        context_window: int = 200_000,
        max_output_tokens: int = 4096,
        client: Any = None,
    ) -> None:
        self.name = f"anthropic:{model}"
        self.model = model
        self.context_window = context_window
        self.max_output_tokens = max_output_tokens
        self.client = client or anthropic.Anthropic(api_key=api_key)

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec]) -> int:
        system, turns = to_anthropic(messages)
        return (
            len(system) + len(json.dumps(turns)) + len(json.dumps([t.model_dump() for t in tools]))
        ) // 3

    def complete(
        self, messages: list[Message], tools: list[ToolSpec], exclude: frozenset[str] = frozenset()
    ) -> ModelReply:
        started = time.perf_counter()
        system, turns = to_anthropic(messages)
        try:
            resp = self.client.messages.create(
                model=self.model,
                system=system,
                messages=turns,
                tools=[
                    {"name": t.name, "description": t.description, "input_schema": t.parameters}
                    for t in tools
                    if t.name not in exclude
                ],
                max_tokens=self.max_output_tokens,
            )
        except anthropic.APIError as exc:
            raise ModelError(f"{self.name} failed: {exc}") from None
        text = "".join(b.text for b in resp.content if b.type == "text")
        calls = [
            check_call(ToolCall(id=b.id, name=b.name, arguments=dict(b.input)), tools)
            for b in resp.content
            if b.type == "tool_use"
        ]
        usage = Usage(
            prompt_tokens=resp.usage.input_tokens,
            completion_tokens=resp.usage.output_tokens,
            prompt_eval_tokens=resp.usage.input_tokens
            - (getattr(resp.usage, "cache_read_input_tokens", 0) or 0),
            seconds=time.perf_counter() - started,
        )
        return ModelReply(
            message=Message(role="assistant", content=text, tool_calls=calls), usage=usage
        )
