"""The raw edit format: file text after the call header, as a fenced block or SEARCH/REPLACE."""

from __future__ import annotations

import json
from typing import Any

from spud.core.errors import FormatError
from spud.core.messages import ToolCall
from spud.core.protocols import ToolSpec
from spud.models.toolcall import check_call, to_call

FENCE = "```"
SEARCH, DIVIDER, REPLACE = "<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE"
MAX_BLOCKS = 4  # SEARCH/REPLACE blocks after one header
EDIT_FORMATS = ("raw", "json")

RAW_FILE_NOTE = (
    " The arguments hold only {others}; the file's complete new content follows the JSON, "
    "starting on the next line with a line ``` and ending with a line ```."
)
RAW_EDIT_NOTE = (
    " The arguments hold only {others}; after the JSON come one or more blocks, each made of "
    "a line <<<<<<< SEARCH, then the exact lines to replace (copied from read_file output "
    "without the line numbers, with their indentation; they must occur exactly once in the "
    "file), then a line =======, then the lines to put in their place, then a line "
    ">>>>>>> REPLACE."
)


def is_raw(spec: ToolSpec) -> bool:
    """Whether this tool takes text outside its JSON arguments in the raw format."""
    return bool(spec.raw_text or spec.search_replace)


def raw_args(spec: ToolSpec) -> tuple[str, ...]:
    """The arguments written outside the JSON header."""
    if spec.search_replace:
        return tuple(spec.search_replace)
    return (spec.raw_text,) if spec.raw_text else ()


def header_parameters(spec: ToolSpec) -> dict[str, Any]:
    """The argument schema without the arguments written as raw text."""
    drop = set(raw_args(spec))
    params = dict(spec.parameters)
    params["properties"] = {
        k: v for k, v in spec.parameters.get("properties", {}).items() if k not in drop
    }
    required = [r for r in spec.parameters.get("required", []) if r not in drop]
    if required:
        params["required"] = required
    else:
        params.pop("required", None)
    return params


def prompt_spec(spec: ToolSpec) -> ToolSpec:
    """How a raw-format tool is described to the model: header arguments plus the format."""
    if not is_raw(spec):
        return spec
    params = header_parameters(spec)
    others = " and ".join(f'"{k}"' for k in params["properties"]) or "nothing"
    if spec.search_replace:
        first = spec.description.split(". ")[0].rstrip(".") + "."
        description = first + RAW_EDIT_NOTE.format(others=others)
    else:
        description = spec.description + RAW_FILE_NOTE.format(others=others)
    return spec.model_copy(update={"description": description, "parameters": params})


def tools_note(specs: list[ToolSpec]) -> str:
    """One sentence for the tools header naming the tools whose text follows the JSON."""
    names = [s.name for s in specs if is_raw(s)]
    if not names:
        return ""
    return (
        f" For {' and '.join(names)}, the file text follows the JSON inside the same tags, "
        "as their descriptions say."
    )


# -- grammar -----------------------------------------------------------------------------------


def _lit(text: str) -> str:
    return json.dumps(text)


def line_except(literal: str, prefix: bool = False) -> str:
    """GBNF for one line (without its newline) that is anything but exactly `literal`
    (with prefix, that does not start with it either)."""
    alts = []
    for k, c in enumerate(literal):
        head = f"{_lit(literal[:k])} " if k else ""
        alts.append(f"{head}[^{_class_char(c)}\\n] [^\\n]*")
        if k:
            alts.append(_lit(literal[:k]))
    if not prefix:
        alts.append(f"{_lit(literal)} [^\\n]+")
    return "(" + " | ".join(alts) + ")?"


def _class_char(c: str) -> str:
    return "\\" + c if c in "]\\^-" else c


RAW_RULES = f"""
raw-file ::= "\\n```" [a-zA-Z0-9_.+-]{{0,16}} "\\n" raw-file-line* "```"
raw-file-line ::= {line_except(FENCE, prefix=True)} "\\n"
raw-edits ::= raw-edit raw-edit{{0,{MAX_BLOCKS - 1}}}
raw-edit ::= "\\n{SEARCH}\\n" raw-search-line+ "{DIVIDER}\\n" raw-replace-line* "{REPLACE}"
raw-search-line ::= {line_except(DIVIDER)} "\\n"
raw-replace-line ::= {line_except(REPLACE)} "\\n"
"""


def raw_suffix(spec: ToolSpec) -> str:
    """The GBNF that follows this tool's JSON header in the raw format ("" for none)."""
    if spec.search_replace:
        return " raw-edits"
    if spec.raw_text:
        return " raw-file"
    return ""


# -- parsing -----------------------------------------------------------------------------------


def parse_raw_calls(text: str, specs: list[ToolSpec]) -> list[ToolCall]:
    """Calls from a raw-format reply: JSON headers, each followed by its text if it takes any."""
    try:
        return _parse_raw(text, specs)
    except FormatError as exc:
        exc.raw = exc.raw or text
        raise


def _parse_raw(text: str, specs: list[ToolSpec]) -> list[ToolCall]:
    by_name = {s.name: s for s in specs}
    decoder = json.JSONDecoder(strict=False)  # raw newlines in strings, as the grammar allows
    calls: list[ToolCall] = []
    pos = _skip(text, 0)
    while pos < len(text):
        if text[pos] != "{":
            raise FormatError("a tool call must start with a JSON object", raw=text)
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise FormatError(
                f"the tool call is not valid JSON ({exc.msg} at character {exc.pos})", raw=text
            ) from None
        call = to_call(item, text)
        spec = by_name.get(call.name)
        if (
            spec is not None
            and spec.search_replace
            and spec.search_replace[0] not in call.arguments
        ):
            edits, pos = _read_edits(text, pos, spec)
            calls += [_with(call, {**call.arguments, **e}) for e in edits]
        elif spec is not None and spec.raw_text and spec.raw_text not in call.arguments:
            content, pos = _read_file(text, pos, spec)
            calls.append(_with(call, {**call.arguments, spec.raw_text: content}))
        else:
            calls.append(call)
        pos = _skip(text, pos)
    if not calls:
        raise FormatError("the reply holds no tool call", raw=text)
    return [check_call(c, specs) for c in calls]


def _with(call: ToolCall, arguments: dict[str, Any]) -> ToolCall:
    return ToolCall(name=call.name, arguments=arguments)


def _skip(text: str, pos: int) -> int:
    """Past whitespace and <tool_call> tags."""
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
        elif text.startswith("<tool_call>", pos):
            pos += len("<tool_call>")
        elif text.startswith("</tool_call>", pos):
            pos += len("</tool_call>")
        else:
            break
    return pos


def _lines_from(text: str, pos: int) -> tuple[list[str], int]:
    """The lines after the header's own line, and the offset of the first of them."""
    end = text.find("\n", pos)
    if end < 0 or text[pos:end].strip():
        return [], pos
    return text[end + 1 :].split("\n"), end + 1


def _read_file(text: str, pos: int, spec: ToolSpec) -> tuple[str, int]:
    lines, start = _lines_from(text, pos)
    if not lines or not lines[0].startswith(FENCE):
        raise FormatError(
            f"{spec.name} needs the file content after the JSON, starting with a line ``` "
            "and ending with a line ```",
            raw=text,
        )
    try:
        close = lines.index(FENCE, 1)
    except ValueError:
        raise FormatError(f"the file content of {spec.name} has no closing ``` line") from None
    body = lines[1:close]
    content = "".join(line + "\n" for line in body)
    used = sum(len(line) + 1 for line in lines[: close + 1])
    return content, start + used - 1


def _read_edits(text: str, pos: int, spec: ToolSpec) -> tuple[list[dict[str, str]], int]:
    old_arg, new_arg = spec.search_replace or ("old", "new")
    lines, start = _lines_from(text, pos)
    edits: list[dict[str, str]] = []
    i = 0
    while i < len(lines) and lines[i] == SEARCH:
        try:
            mid = lines.index(DIVIDER, i + 1)
            end = lines.index(REPLACE, mid + 1)
        except ValueError:
            raise FormatError(
                f"a {SEARCH} block of {spec.name} needs a line {DIVIDER} and then a line {REPLACE}"
            ) from None
        edits.append(
            {old_arg: "\n".join(lines[i + 1 : mid]), new_arg: "\n".join(lines[mid + 1 : end])}
        )
        i = end + 1
        if i < len(lines) and lines[i] == "" and i + 1 < len(lines) and lines[i + 1] == SEARCH:
            i += 1  # a blank line between blocks
    if not edits:
        raise FormatError(
            f"{spec.name} needs, after the JSON, a line {SEARCH}, the exact lines to replace, "
            f"a line {DIVIDER}, the new lines and a line {REPLACE}",
            raw=text,
        )
    used = sum(len(line) + 1 for line in lines[:i])
    return edits, start + used - 1


# -- rendering earlier calls -------------------------------------------------------------------


def format_call(call: ToolCall, spec: ToolSpec | None) -> str:
    """A call as the raw format writes it (plain JSON when the tool takes no raw text)."""
    args = dict(call.arguments)
    if spec is not None and spec.search_replace:
        old, new = (args.get(k) for k in spec.search_replace)
        if isinstance(old, str) and isinstance(new, str) and _fits_edit(old, new):
            head = {k: v for k, v in args.items() if k not in spec.search_replace}
            block = "\n".join([SEARCH, old, DIVIDER] + ([new] if new else []) + [REPLACE])
            return _header(call.name, head) + "\n" + block
    if spec is not None and spec.raw_text:
        content = args.get(spec.raw_text)
        if isinstance(content, str) and FENCE not in content.split("\n"):
            head = {k: v for k, v in args.items() if k != spec.raw_text}
            body = content if content.endswith("\n") or not content else content + "\n"
            return _header(call.name, head) + f"\n{FENCE}\n{body}{FENCE}"
    return _header(call.name, args)


def _fits_edit(old: str, new: str) -> bool:
    return bool(old) and DIVIDER not in old.split("\n") and REPLACE not in new.split("\n")


def _header(name: str, arguments: dict[str, Any]) -> str:
    return json.dumps({"name": name, "arguments": arguments})
