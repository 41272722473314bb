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
            # a schema's title is a string; a property named "title" (a dict) stays
            if not (k == "title" and isinstance(v, str)) and not (k == "default" and v is None)
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


# A path: no glob characters (no file literally named `**/*.py`), no spaces, quotes, brackets
# or punctuation that small models drag in from the text around a name ("calc.py (first ...").
PATH = r"^[^\x00-\x20\x7f\"\\*?`(){}<>:,;|'!$&=\[\]]{1,200}$"
CELL = r"^[$]?[A-Za-z]{1,3}[$]?[1-9][0-9]{0,6}$"
REF = r"^(f[0-9]{1,3})?e[0-9]{1,6}$"
COMMAND_CHARS = 1200  # a bash command's bound; the tool says when a command reached it
# Grammar-only bounds by argument name: a small model cannot run away in a name, a path or a
# ref (one run spent its whole 768-token reply on a ref of zeros). Never rendered.
ARG_CONSTRAINTS: dict[str, dict[str, Any]] = {
    "path": {"type": "string", "pattern": PATH},
    "ref": {"type": "string", "pattern": REF},
    "anchor": {"type": "string", "pattern": CELL},
    "name": {"type": "string", "minLength": 1, "maxLength": 100},
    "sheet": {"type": "string", "minLength": 1, "maxLength": 31},
    "query": {"type": "string", "minLength": 1, "maxLength": 200},
    "pattern": {"type": "string", "minLength": 1, "maxLength": 200},
    "glob": {"type": "string", "minLength": 1, "maxLength": 200},
    "url": {"type": "string", "minLength": 1, "maxLength": 500},
    "range": {"type": "string", "minLength": 1, "maxLength": 60},
    "data": {"type": "string", "minLength": 1, "maxLength": 60},
    "categories": {"type": "string", "minLength": 1, "maxLength": 60},
    "key": {"type": "string", "minLength": 1, "maxLength": 40},
    "option": {"type": "string", "minLength": 1, "maxLength": 200},
    "style": {"type": "string", "minLength": 1, "maxLength": 60},
    "fill": {"type": "string", "minLength": 1, "maxLength": 20},
    # a runaway one-liner (`sed ... | sed ... | ...` to the output cap) costs minutes of decode,
    # but a short heredoc script must fit (cut at 400, it ran to "delimited by end-of-file")
    "command": {"type": "string", "minLength": 1, "maxLength": COMMAND_CHARS},
    # a finish summary that repeats one sentence to the output cap cost a 1.5B 150 s of decode
    "summary": {"type": "string", "minLength": 1, "maxLength": 600},
    # a cells map: keys are A1 addresses ("x-keys" is read by the grammar builder)
    "cells": {"x-keys": "a1"},
}


def arg_constraints(tool: Tool, schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Grammar-only narrowings for a tool's string arguments (by name; a tool may add more)."""
    out: dict[str, dict[str, Any]] = {}
    for arg, prop in schema.get("properties", {}).items():
        rule = ARG_CONSTRAINTS.get(arg)
        if rule is None or "enum" in prop or "const" in prop:
            continue
        kind = prop.get("type")
        if "x-keys" in rule and kind == "object":
            out[arg] = rule
        elif rule.get("type") == kind:
            out[arg] = rule
    out.update(getattr(tool, "arg_constraints", {}))
    return out


def schema_parameters(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema a tool carries instead of an Args class (an MCP server's), made short:
    titles and `$schema` dropped, an object with properties, no arguments it does not name."""
    schema = _clean({k: v for k, v in schema.items() if k not in ("$schema", "$id")})
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    schema.setdefault("additionalProperties", False)
    return schema


def tool_parameters(tool: Tool) -> dict[str, Any]:
    """A tool's argument schema: from its Args class, else the JSON schema in `parameters`."""
    args = getattr(tool, "Args", None)
    if args is not None:
        return args_schema(args)
    params = getattr(tool, "parameters", None)
    if not isinstance(params, dict):
        raise TypeError(f"tool {tool.name} has neither an Args class nor a parameters schema")
    return schema_parameters(params)


def tool_spec(tool: Tool) -> ToolSpec:
    """The name, description and argument schema of a tool, and its grammar-only extras.

    A tool with a JSON schema instead of an Args class gets no narrowing by argument name
    (those bounds fit Spud's own tools), only the `arg_constraints` it declares itself.
    """
    schema = tool_parameters(tool)
    own = getattr(tool, "Args", None) is not None
    return ToolSpec(
        name=tool.name,
        description=tool.description,
        parameters=schema,
        raw_text=getattr(tool, "raw_text", None),
        search_replace=getattr(tool, "search_replace", None),
        constraints=arg_constraints(tool, schema) if own else getattr(tool, "arg_constraints", {}),
    )


def with_choices(
    specs: list[ToolSpec], tools: dict[str, Tool], messages: list[Any]
) -> list[ToolSpec]:
    """The specs with each tool's live choices for this step (grammar only, never rendered).

    A tool offers them with a `live_args` attribute ({arg: provider name}, see
    spud.core.live) or a `choices(messages)` method returning {arg: [values]}.
    """
    from spud.core.live import tool_choices

    memo: dict[tuple[str, str], list[str] | None] = {}
    out = []
    for spec in specs:
        tool = tools.get(spec.name)
        args = set(spec.parameters.get("properties", {}))
        choices = tool_choices(tool, messages, args, memo) if tool is not None else {}
        out.append(spec.model_copy(update={"choices": choices}) if choices else spec)
    return out


def fixed_choices(specs: list[ToolSpec], fixed: dict[str, dict[str, list[str]]]) -> list[ToolSpec]:
    """The specs with choices set by the run (e.g. a playbook: only these files may be
    written), over the live ones; grammar only, like every choice."""
    if not fixed:
        return specs
    return [
        s.model_copy(update={"choices": {**s.choices, **fixed[s.name]}}) if s.name in fixed else s
        for s in specs
    ]


def validate_args(tool: Tool, arguments: dict[str, Any]) -> Any:
    """Validate raw arguments; raise ValueError with a short, model-friendly message.

    A tool with an Args class gets an instance of it; one with a JSON schema gets the
    arguments dict back once the schema (jsonschema) accepts it.
    """
    if getattr(tool, "Args", None) is None:
        return _validate_schema(tool, arguments)
    try:
        return tool.Args.model_validate(arguments)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"invalid arguments for {tool.name}: {problems}") from None


def _validate_schema(tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    """Check arguments against a tool's JSON schema; every problem named, briefly."""
    import jsonschema

    schema = tool_parameters(tool)
    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validator = cls(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"{tool.name} has an invalid argument schema: {exc.message}") from None
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    if errors:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.absolute_path) or 'arguments'}: {e.message}"
            for e in errors[:5]
        )
        raise ValueError(f"invalid arguments for {tool.name}: {problems}")
    return dict(arguments)
