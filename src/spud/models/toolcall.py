"""Reading tool calls out of model text and checking them against the tool schemas."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from spud.core.errors import FormatError
from spud.core.messages import ToolCall
from spud.core.protocols import ToolSpec

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def calls_schema(specs: list[ToolSpec]) -> dict[str, Any]:
    """A JSON schema that admits exactly one valid call of one of these tools."""
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {"name": {"const": s.name}, "arguments": s.parameters},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for s in specs
        ]
    }


def check_call(call: ToolCall, specs: list[ToolSpec]) -> ToolCall:
    """Raise FormatError unless the call names a known tool with schema-valid arguments."""
    spec = next((s for s in specs if s.name == call.name), None)
    if spec is None:
        names = ", ".join(s.name for s in specs)
        raise FormatError(f"there is no tool named {call.name!r}; the tools are {names}")
    try:
        jsonschema.validate(call.arguments, spec.parameters)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "arguments"
        raise FormatError(
            f"the arguments of {call.name} are not valid ({where}: {exc.message})"
        ) from None
    return call


def parse_calls(text: str, specs: list[ToolSpec]) -> list[ToolCall]:
    """Parse calls from free text: <tool_call> tags, ```json fences or bare JSON objects."""
    try:
        return _parse(text, specs)
    except FormatError as exc:
        exc.raw = exc.raw or text
        raise


def _parse(text: str, specs: list[ToolSpec]) -> list[ToolCall]:
    blocks = _TAGGED.findall(text) or _FENCE.findall(text) or [text]
    calls = []
    for block in blocks:
        for item in _decode_all(block.strip()):
            calls.append(check_call(to_call(item, text), specs))
    if not calls:
        raise FormatError("the reply holds no tool call", raw=text)
    return calls


def _decode_all(block: str) -> list[Any]:
    """Every JSON value in a block: one object, a list, or objects one after another."""
    # strict=False: the grammar's string characters include raw newlines, which the model
    # wrote into a bash command (three "Invalid control character" errors ended a run)
    decoder, items, pos = json.JSONDecoder(strict=False), [], 0
    while pos < len(block):
        try:
            value, end = decoder.raw_decode(block, pos)
        except json.JSONDecodeError as exc:
            raise FormatError(
                f"the tool call is not valid JSON ({exc.msg} at character {exc.pos})"
            ) from None
        items += value if isinstance(value, list) else [value]
        pos = end
        while pos < len(block) and block[pos] in " \t\r\n,":
            pos += 1
    return items


def to_call(item: Any, raw: str) -> ToolCall:
    """A decoded JSON value as a ToolCall (not yet checked against the schemas)."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise FormatError('a tool call must be a JSON object with "name" and "arguments"', raw=raw)
    args = item.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args or "{}")
        except json.JSONDecodeError:
            raise FormatError(
                f"the arguments of {item['name']} are not a JSON object", raw=raw
            ) from None
    if not isinstance(args, dict):
        raise FormatError(f"the arguments of {item['name']} must be a JSON object", raw=raw)
    return ToolCall(name=item["name"], arguments=args)
