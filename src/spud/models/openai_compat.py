"""Any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server, Ollama) with native tools."""

from __future__ import annotations

import json
import time
from typing import Any

import openai

from spud.core.errors import FormatError, ModelError
from spud.core.messages import Message, ModelReply, ToolCall, Usage
from spud.core.protocols import ToolSpec
from spud.models.toolcall import check_call


def to_openai(messages: list[Message]) -> list[dict[str, Any]]:
    """Spud's message list in the Chat Completions shape."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "assistant":
            item: dict[str, Any] = {
                "role": "assistant",
                "content": m.content or m.meta.get("raw") or "",
            }
            if m.tool_calls:
                item["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                    }
                    for c in m.tool_calls
                ]
            out.append(item)
        elif m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


class OpenAICompatModel:
    """A chat model behind the Chat Completions API, called with the official SDK."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        context_window: int = 128_000,
        temperature: float = 0.0,
        max_output_tokens: int = 2048,
        client: Any = None,
    ) -> None:
        self.name = f"openai:{model}"
        self.model = model
        self.context_window = context_window
        self.temperature = temperature
        self.max_output_tokens = max_output_tokens
        self.client = client or openai.OpenAI(base_url=base_url, api_key=api_key or "none")

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec]) -> int:
        text = json.dumps(to_openai(messages)) + json.dumps([t.model_dump() for t in tools])
        return len(text) // 3

    def complete(
        self, messages: list[Message], tools: list[ToolSpec], exclude: frozenset[str] = frozenset()
    ) -> ModelReply:
        started = time.perf_counter()
        try:
            resp = self.client.chat.completions.create(
                model=self.model,
                messages=to_openai(messages),
                tools=[
                    {"type": "function", "function": t.model_dump()}
                    for t in tools
                    if t.name not in exclude
                ],
                temperature=self.temperature,
                max_tokens=self.max_output_tokens,
            )
        except openai.APIError as exc:
            raise ModelError(f"{self.name} failed: {exc}") from None
        choice = resp.choices[0].message
        calls = []
        for tc in choice.tool_calls or []:
            try:
                args = json.loads(tc.function.arguments or "{}")
            except json.JSONDecodeError:
                raise FormatError(
                    f"the arguments of {tc.function.name} are not valid JSON",
                    raw=tc.function.arguments,
                ) from None
            calls.append(
                check_call(ToolCall(id=tc.id, name=tc.function.name, arguments=args), tools)
            )
        u = resp.usage
        cached = getattr(getattr(u, "prompt_tokens_details", None), "cached_tokens", None) or 0
        usage = Usage(
            prompt_tokens=u.prompt_tokens if u else 0,
            completion_tokens=u.completion_tokens if u else 0,
            prompt_eval_tokens=(u.prompt_tokens - cached) if u else None,
            seconds=time.perf_counter() - started,
        )
        return ModelReply(
            message=Message(role="assistant", content=choice.content or "", tool_calls=calls),
            usage=usage,
        )
