"""Raw chat completions: OpenAI-shaped messages and tools straight to a model adapter."""

from __future__ import annotations

import json
from typing import Any

from spud.core.errors import ConfigError
from spud.core.messages import Message, ModelReply, ToolCall
from spud.core.protocols import ToolSpec
from spud.service.modelpool import ModelPool

# Spud's adapters reply with tool calls (the local one only can); a plain answer is a call to
# this tool, turned back into message content.
RESPOND = ToolSpec(
    name="respond",
    description="Answer the user directly with text (when no other tool is needed).",
    parameters={
        "type": "object",
        "properties": {"text": {"type": "string", "description": "The answer."}},
        "required": ["text"],
    },
)
DEFAULT_SYSTEM = "You are a helpful assistant."


class ContextTooLong(ConfigError):
    """The messages do not fit the model's context window."""


def text_of(content: Any) -> str:
    """Message content as text: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


def to_messages(raw: list[dict[str, Any]]) -> list[Message]:
    """OpenAI chat messages as Spud messages (a system message first, always)."""
    out: list[Message] = []
    for i, m in enumerate(raw):
        role = "system" if m["role"] == "developer" else m["role"]
        if role == "assistant":
            calls = []
            for c in m.get("tool_calls") or []:
                try:
                    args = json.loads(c["function"].get("arguments") or "{}")
                except json.JSONDecodeError:
                    raise ConfigError(
                        f"messages[{i}].tool_calls: the arguments of {c['function']['name']} "
                        "are not valid JSON"
                    ) from None
                calls.append(ToolCall(id=c["id"], name=c["function"]["name"], arguments=args))
            out.append(
                Message(role="assistant", content=text_of(m.get("content")), tool_calls=calls)
            )
        elif role == "tool":
            out.append(
                Message(
                    role="tool", content=text_of(m.get("content")), tool_call_id=m["tool_call_id"]
                )
            )
        else:
            out.append(Message(role=role, content=text_of(m.get("content"))))
    if not out or out[0].role != "system":
        out.insert(0, Message(role="system", content=DEFAULT_SYSTEM))
    return out


def plan_tools(
    tools: list[dict[str, Any]], tool_choice: Any
) -> tuple[list[ToolSpec], frozenset[str]]:
    """The tool specs to offer and those excluded, from OpenAI's `tools` and `tool_choice`."""
    specs = [
        ToolSpec(
            name=t["function"]["name"],
            description=t["function"].get("description") or "",
            parameters=t["function"].get("parameters") or {"type": "object", "properties": {}},
        )
        for t in tools
    ]
    names = [s.name for s in specs]
    choice = tool_choice if tool_choice is not None else "auto"
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        if wanted not in names:
            raise ConfigError(f"tool_choice names {wanted!r}, which is not among the tools")
        return specs, frozenset(n for n in names if n != wanted)
    if choice == "required":
        if not specs:
            raise ConfigError('tool_choice "required" needs at least one tool')
        return specs, frozenset()
    respond = [] if RESPOND.name in names else [RESPOND]
    if choice == "none":
        return specs + respond, frozenset(names)
    return specs + respond, frozenset()


def complete(
    pool: ModelPool,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    tool_choice: Any,
) -> ModelReply:
    """One completion from a model the server offers; plain answers come back as content."""
    llm = pool.get(model)
    history = to_messages(messages)
    specs, exclude = plan_tools(tools, tool_choice)
    needed = llm.count_tokens(history, specs)
    if needed >= llm.context_window:
        raise ContextTooLong(
            f"the messages take {needed} tokens; {model} has a context window of "
            f"{llm.context_window}"
        )
    reply = llm.complete(history, specs, exclude)
    message = reply.message
    if RESPOND in specs:
        answers = [c for c in message.tool_calls if c.name == RESPOND.name]
        message.tool_calls = [c for c in message.tool_calls if c.name != RESPOND.name]
        message.content = "\n".join(
            [message.content, *(str(c.arguments.get("text", "")) for c in answers)]
        ).strip()
    return reply
