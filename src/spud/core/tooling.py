"""Turning a tool class into the schema a model sees, and validating its arguments."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from spud.core.protocols import Tool, ToolSpec


def _clean(schema: Any) -> Any:
    """Drop titles and null defaults, and unwrap Optional, so the schema stays short."""
    if isinstance(schema, dict):
        options = schema.get("anyOf")
        if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
            inner = next(o for o in options if o != {"type": "null"})
            rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
            schema = {**inner, **rest}
        return {
            k: _clean(v)
            for k, v in schema.items()
            if k != "title" and not (k == "default" and v is None)
        }
    if isinstance(schema, list):
        return [_clean(v) for v in schema]
    return schema


def args_schema(args: type[BaseModel]) -> dict[str, Any]:
    """A flat JSON schema for a tool's argument model."""
    schema = _clean(args.model_json_schema())
    schema.setdefault("properties", {})
    schema["additionalProperties"] = False
    return schema


def tool_spec(tool: Tool) -> ToolSpec:
    """The name, description and argument schema of a tool."""
    return ToolSpec(name=tool.name, description=tool.description, parameters=args_schema(tool.Args))


def validate_args(tool: Tool, arguments: dict[str, Any]) -> BaseModel:
    """Validate raw arguments; raise ValueError with a short, model-friendly message."""
    try:
        return tool.Args.model_validate(arguments)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"invalid arguments for {tool.name}: {problems}") from None
