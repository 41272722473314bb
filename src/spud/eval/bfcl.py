"""BFCL v4 (the `bfcl-eval` package's data) through Spud's model layer, scored by BFCL's checker."""

from __future__ import annotations

import json
import random
import re
import sys
import types
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from pydantic import BaseModel

from spud.core.errors import ConfigError, FormatError
from spud.core.messages import Message, ModelReply
from spud.core.protocols import Model, ToolSpec

CATEGORIES = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "irrelevance",
    "live_simple",
)
# Spud's loop gives each call a result and asks again; BFCL runs nothing, so the result says
# the call was taken. Up to FOLLOW_UPS more replies; a later call stays only if grounded (below).
FOLLOW_UPS = 3
TAKEN = json.dumps({"status": "ok"})
SYSTEM = (
    "You are a helpful assistant with access to functions. Call the functions that answer the "
    "request, with arguments taken from it. If none of the functions fits, answer in text."
)


class BfclCase(BaseModel):
    """One BFCL entry: the question turns, the functions on offer and the accepted answers."""

    id: str
    category: str
    question: list[dict[str, str]]
    functions: list[dict[str, Any]]
    answer: list[dict[str, Any]] = []


@dataclass
class BfclOutcome:
    """What one case gave: the calls (BFCL's format), whether it passed, and why not."""

    passed: bool
    calls: list[dict[str, Any]]
    attempted_call: bool
    schema_valid: bool
    error: str
    reply: Message | None
    turns: list[Message] = field(default_factory=list)  # later replies and the results before them


def _data_dir() -> Any:
    try:
        return resources.files("bfcl_eval") / "data"
    except ModuleNotFoundError:
        raise ConfigError(
            "BFCL needs the bfcl-eval package: pip install --no-deps bfcl-eval==2026.3.23"
        ) from None


def _jsonl(path: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_cases(category: str, limit: int | None = None, seed: int = 0) -> list[BfclCase]:
    """A category's cases; with limit, a fixed-seed sample of that many, in file order."""
    if category not in CATEGORIES:
        raise ConfigError(f"unknown BFCL category {category!r}; known: {', '.join(CATEGORIES)}")
    data = _data_dir()
    entries = _jsonl(data / f"BFCL_v4_{category}.json")
    answers_file = data / "possible_answer" / f"BFCL_v4_{category}.json"
    answers = (
        {a["id"]: a["ground_truth"] for a in _jsonl(answers_file)} if answers_file.is_file() else {}
    )
    if limit is not None and limit < len(entries):
        keep = set(random.Random(seed).sample(range(len(entries)), limit))
        entries = [e for i, e in enumerate(entries) if i in keep]
    return [
        BfclCase(
            id=e["id"],
            category=category,
            question=e["question"][0],
            functions=e["function"],
            answer=answers.get(e["id"], []),
        )
        for e in entries
    ]


def tool_specs(functions: list[dict[str, Any]]) -> list[ToolSpec]:
    """BFCL's function docs as JSON-schema tool specs, with BFCL's own type mapping."""
    from bfcl_eval.constants.type_mappings import GORILLA_TO_OPENAPI

    def cast(schema: Any) -> Any:
        if isinstance(schema, list):
            return [cast(v) for v in schema]
        if not isinstance(schema, dict):
            return schema
        out = {k: cast(v) for k, v in schema.items()}
        if isinstance(out.get("type"), str):
            out["type"] = GORILLA_TO_OPENAPI.get(out["type"], out["type"])
        return out

    specs = []
    for f in functions:
        params = cast(f.get("parameters", {}))
        params.setdefault("type", "object")
        params.setdefault("properties", {})
        specs.append(
            ToolSpec(
                name=f["name"],
                description=f.get("description", "") + " Note that the provided function is in "
                "Python 3 syntax.",
                parameters=params,
            )
        )
    return specs


def messages_for(case: BfclCase) -> list[Message]:
    """The system prompt plus the case's turns (live cases may bring their own system turn)."""
    turns = [Message(role=t["role"], content=t["content"]) for t in case.question]
    if turns and turns[0].role == "system":
        return [Message(role="system", content=f"{SYSTEM}\n\n{turns[0].content}"), *turns[1:]]
    return [Message(role="system", content=SYSTEM), *turns]


def ast_checker() -> Any:
    """BFCL's AST checker, imported without its model handlers (90 packages we do not need).

    The checker reads one field of BFCL's model table (`underscore_to_dot`, whether a model
    replaces dots in function names); Spud keeps names as they are, so it is False for us.
    """
    name = "bfcl_eval.constants.model_config"
    if name not in sys.modules:
        stub = types.ModuleType(name)
        stub.MODEL_CONFIG_MAPPING = _NoDotRenaming()  # type: ignore[attr-defined]
        sys.modules[name] = stub
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker as checker

    return checker


class _NoDotRenaming(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> Any:
        return types.SimpleNamespace(underscore_to_dot=False)


def score(case: BfclCase, calls: list[dict[str, Any]]) -> tuple[bool, str]:
    """BFCL's verdict on these calls ([{name: {arg: value}}]); irrelevance wants no call."""
    if case.category == "irrelevance":
        return (not calls, "" if not calls else "called a function on an irrelevant request")
    if not calls:
        return False, "no function call"
    from bfcl_eval.constants.enums import Language

    verdict = ast_checker()(
        case.functions, calls, case.answer, Language.PYTHON, case.category, "spud"
    )
    return bool(verdict["valid"]), "; ".join(map(str, verdict.get("error", [])))[:300]


def follow_ups_for(harness: str) -> int:
    """The raw baseline answers once; Spud's harnesses go on as Spud's loop does."""
    return 0 if harness == "raw" else FOLLOW_UPS


def run_case(model: Model, case: BfclCase, follow_ups: int = 0) -> BfclOutcome:
    """Ask the model and score what it called; with follow_ups, the loop goes on as Spud's does.

    Each call's result is TAKEN and the model may call again, up to follow_ups more replies. A
    later call is kept only when it is grounded in the request: every string and number it
    passes is in the user's words or in an earlier call, and one of them is in the words and
    in no earlier call (a 1.5B asked again invents arguments, e.g. a backup path nobody named,
    or repeats the first call's values through another function).
    """
    specs = tool_specs(case.functions)
    chat = messages_for(case)
    try:
        reply: ModelReply | None = model.complete(chat, specs)
    except FormatError as exc:  # the harness's reply was cut at the output limit
        return BfclOutcome(False, [], True, False, exc.problem, None)
    msg = reply.message
    msg.meta.update(usage=reply.usage.model_dump())
    calls = [{c.name: c.arguments} for c in msg.tool_calls]
    invalid = msg.meta.get("invalid_call")
    attempted = bool(calls) or invalid is not None
    turns = _follow_up(model, chat, specs, msg, calls, follow_ups) if calls else []
    passed, error = score(case, calls)
    if invalid and case.category != "irrelevance":
        error = f"invalid call: {invalid}"
    return BfclOutcome(passed, calls, attempted, attempted and not invalid, error, msg, turns)


def _follow_up(
    model: Model,
    chat: list[Message],
    specs: list[ToolSpec],
    reply: Message,
    calls: list[dict[str, Any]],
    replies: int,
) -> list[Message]:
    """Later replies, each after results for the last one's calls; grounded calls join calls."""
    words = " ".join(m.content for m in chat if m.role == "user").lower()
    turns: list[Message] = []
    for _ in range(replies):
        results = [
            Message(role="tool", tool_call_id=c.id, name=c.name, content=TAKEN)
            for c in reply.tool_calls
        ]
        chat = [*chat, reply, *results]
        turns += results
        try:
            later = model.complete(chat, specs)
        except FormatError:
            break
        reply = later.message
        reply.meta.update(usage=later.usage.model_dump())
        turns.append(reply)
        new = [{c.name: c.arguments} for c in reply.tool_calls]
        kept = [c for c in new if c not in calls and grounded(c, words, calls)]
        if not kept or len(kept) < len(new):
            calls += kept
            break
        calls += kept
    return turns


def grounded(call: dict[str, Any], words: str, earlier: list[dict[str, Any]]) -> bool:
    """Every value of call is in words or an earlier call, and one is new and in words."""
    used = {v for c in earlier for v in _scalars(c)}
    values = _scalars(call)
    if not all(v in used or _said(v, words) for v in values):
        return False
    return any(v not in used and _said(v, words) for v in values)


def _scalars(value: Any) -> set[str]:
    """The strings and numbers inside a call's arguments, as text (booleans and None left out)."""
    if isinstance(value, dict):
        return {s for v in value.values() for s in _scalars(v)}
    if isinstance(value, list):
        return {s for v in value for s in _scalars(v)}
    if isinstance(value, bool) or value is None:
        return set()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip().lower()
    return {text} if text else set()


def _said(value: str, words: str) -> bool:
    if re.fullmatch(r"-?\d+(\.\d+)?", value):  # a number, not part of a longer one
        return re.search(rf"(?<![\d.]){re.escape(value)}(?![\d]|\.\d)", words) is not None
    return value in words
