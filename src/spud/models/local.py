"""The embedded model: llama.cpp in-process, tool calls constrained by a JSON-schema grammar."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from spud.core.errors import FormatError
from spud.core.messages import Message, ModelReply, Usage
from spud.core.protocols import OnText, ToolSpec
from spud.models.edit_format import (
    EDIT_FORMATS,
    RAW_RULES,
    format_call,
    header_parameters,
    is_raw,
    parse_raw_calls,
    prompt_spec,
    raw_suffix,
    tools_note,
)
from spud.models.toolcall import calls_schema, parse_calls

TOOLS_HEADER = """

# Tools

You may call one of these functions. Their signatures are within <tools></tools> XML tags:
<tools>
{tools}
</tools>

Answer with one JSON object holding the function name and its arguments, within \
<tool_call></tool_call> XML tags."""

# When a plain-text answer is allowed, the prompt says when to give one.
ANSWER_NOTE = """ If none of these functions fits the request, do not call any: answer in \
plain text instead."""

CALL_OPEN, CALL_CLOSE = "<tool_call>\n", "\n</tool_call>"
MAX_CALLS_PER_STEP = 4
# Up to max_calls calls per reply (BFCL's parallel cases need several; in agent runs a 0.5B
# used them to chain copies: open, then click every ref of the page in order).
MULTI_CALL = """
root ::= call (call-sep call){{0,{more}}}
call-sep ::= "\\n" ("</tool_call>\\n<tool_call>\\n")?
"""
# In the raw format a write or an edit ends the reply: small models otherwise follow a good
# edit with junk calls (append to the file, rewrite the tests, finish) before seeing its result.
RAW_MULTI_CALL = """
root ::= (plain-call call-sep){{0,{more}}} call
call-sep ::= "\\n" ("</tool_call>\\n<tool_call>\\n")?
"""
# With answers allowed a reply is tool calls (after Qwen's <tool_call> token, or straight JSON)
# or plain text that starts like prose (not "<", "{", "[" or a code fence).
ANSWER_OR_CALLS = """
reply ::= <tool_call> "\\n" calls | calls | answer
answer ::= [^<{[`] [^<]*
"""


def render_chatml(
    messages: list[Message],
    specs: list[ToolSpec],
    answers: bool = False,
    edit_format: str = "json",
) -> str:
    """The prompt in ChatML, Qwen's tool format; earlier turns render identically each step.

    Only the specs' rendered fields count (live choices and grammar limits never show), so the
    system turn stays byte-identical from step to step and its KV cache is reused.
    """
    raw = edit_format == "raw"
    shown = [prompt_spec(s) for s in specs] if raw else specs
    tools = "\n".join(
        json.dumps({"type": "function", "function": s.model_dump()}, separators=(",", ":"))
        for s in shown
    )
    header = TOOLS_HEADER.format(tools=tools) + (tools_note(specs) if raw else "")
    by_name = {s.name: s for s in specs} if raw else {}
    out: list[str] = []
    for i, m in enumerate(messages):
        if m.role == "system":
            out.append(
                f"<|im_start|>system\n{m.content}{header}"
                + (ANSWER_NOTE if answers else "")
                + "<|im_end|>\n"
            )
        elif m.role == "user":
            out.append(f"<|im_start|>user\n{m.content}<|im_end|>\n")
        elif m.role == "assistant":
            out.append(f"<|im_start|>assistant\n{_assistant_text(m, by_name, raw)}<|im_end|>\n")
        else:
            first = i == 0 or messages[i - 1].role != "tool"
            last = i == len(messages) - 1 or messages[i + 1].role != "tool"
            out.append(
                ("<|im_start|>user\n" if first else "\n")
                + f"<tool_response>\n{m.content}\n</tool_response>"
                + ("<|im_end|>\n" if last else "")
            )
    return "".join(out)


def _assistant_text(m: Message, specs: dict[str, ToolSpec], raw: bool) -> str:
    if "raw" in m.meta:  # replay exactly what the model produced, so the KV prefix is reused
        return CALL_OPEN + m.meta["raw"] + CALL_CLOSE
    calls = "".join(
        CALL_OPEN
        + (
            format_call(c, specs.get(c.name))
            if raw
            else json.dumps({"name": c.name, "arguments": c.arguments})
        )
        + CALL_CLOSE
        for c in m.tool_calls
    )
    return m.content + calls


class LocalModel:
    """A GGUF model run by llama-cpp-python in this process."""

    def __init__(
        self,
        path: Path,
        name: str,
        context_window: int = 8192,
        threads: int = 0,
        temperature: float = 0.0,
        max_output_tokens: int = 768,
        seed: int = 0,
        allow_answer: bool = False,
        edit_format: str = "json",
        narrow_args: bool = True,
        max_calls: int = MAX_CALLS_PER_STEP,
        drafts: bool = True,
        lookahead: int = 0,
    ) -> None:
        if edit_format not in EDIT_FORMATS:
            raise ValueError(f"unknown edit format {edit_format!r}; use one of {EDIT_FORMATS}")

        self.name = name
        self.context_window = context_window
        self.temperature = temperature
        self.max_output_tokens = max_output_tokens
        # When True, a reply may be a plain-text answer instead of tool calls (the grammar
        # offers both), e.g. to say that none of the tools fits the request.
        self.allow_answer = allow_answer
        # "raw": write_file content and edit_file edits follow the call header as a fenced
        # block or SEARCH/REPLACE blocks; "json": everything inside the JSON arguments.
        self.edit_format = edit_format
        # Grammar-only limits (lengths, paths without globs, A1 keys) and live choices
        # (existing files, snapshot refs, sheet names); False measures the grammar without them.
        self.narrow_args = narrow_args
        self.max_calls = max_calls  # tool calls one reply may hold
        # Playbooks' first steps ask for code and scripts in plain markdown (see chat)
        self.drafts = drafts
        # Tokens guessed ahead from the prompt and checked in one decode (0: off); see lookup.py
        self.lookahead = lookahead
        self.llm = self._open(path, context_window, threads, seed)
        self._grammars: dict[str, object] = {}

    def _open(self, path: Path, context_window: int, threads: int, seed: int) -> Any:
        """The llama.cpp engine the completions run on: here, the weights in this process
        (a grammar checks the token the model picks rather than masking the whole vocabulary)."""
        from spud.models.grammar_first import GrammarFirstLlama

        return GrammarFirstLlama(
            model_path=str(path),
            n_ctx=context_window,
            n_threads=threads or os.cpu_count(),  # llama.cpp's default is half the cores
            seed=seed,
            verbose=False,
            lookahead=self.lookahead,
        )

    def _compiled(self, gbnf: str) -> object:
        """A grammar in the form the engine takes (llama-cpp-python's LlamaGrammar here)."""
        from llama_cpp import LlamaGrammar

        return LlamaGrammar.from_string(gbnf, verbose=False)

    def forget(self) -> None:
        """Empty the engine's KV cache: the next reply is computed as in a fresh process.

        A reply's greedy picks can differ with what the cache held before (a reused prefix is
        summed in another order than a fresh prefill), so an eval task run after another one
        could decode differently from the same task run alone.
        """
        reset = getattr(self.llm, "reset", None)  # a served engine keeps no cache here
        if reset is not None:
            reset()

    def _cached(self, tokens: list[int]) -> int | None:
        """How many leading prompt tokens the engine's KV cache already holds."""
        return common_prefix(self.llm._input_ids.tolist(), tokens)

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=False, special=True)

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec]) -> int:
        prompt = render_chatml(messages, tools, self.allow_answer, self.edit_format)
        return len(self.tokenize(prompt)) + 8

    def _grammar(self, specs: list[ToolSpec], answers: bool | None = None) -> object:
        answers = self.allow_answer if answers is None else answers
        if not self.narrow_args:
            specs = [s.model_copy(update={"constraints": {}, "choices": {}}) for s in specs]
        key = json.dumps(
            [[grammar_parameters(s, self.edit_format == "raw") for s in specs], answers]
            + [raw_suffix(s) for s in specs]
            + [self.max_calls]
        )
        grammar = self._grammars.get(key)  # (a served model's sessions share this cache)
        if grammar is None:
            if len(self._grammars) >= 64:  # live choices change as files appear
                self._grammars.clear()
            gbnf = calls_gbnf(specs, self.edit_format, self.max_calls)
            if answers:
                gbnf = gbnf.replace("root ::=", "calls ::=", 1) + ANSWER_OR_CALLS
                gbnf = gbnf.replace("reply ::=", "root ::=", 1)
            grammar = self._grammars[key] = self._compiled(gbnf)
        return grammar

    def chat(
        self,
        messages: list[Message],
        max_tokens: int = 2048,
        temperature: float | None = None,
        until_block: bool = False,
    ) -> ModelReply:
        """A free-text reply with no tools and no grammar (code in the model's own markdown);
        a reply wanted as a code block starts with its fence."""
        started = time.perf_counter()
        start = CODE_FENCE if until_block else ""
        prompt = render_chatml(messages, []).replace(TOOLS_HEADER.format(tools=""), "")
        tokens = self.tokenize(prompt + "<|im_start|>assistant\n" + start)
        cached = self._cached(tokens)
        pieces = self.llm.create_completion(
            tokens,
            max_tokens=max_tokens,
            temperature=self.temperature if temperature is None else temperature,
            stop=["<|im_end|>"],
            stream=True,
        )
        text = start
        for n, chunk in enumerate(pieces, 1):
            text += chunk["choices"][0]["text"]
            if until_block and block_closed(text):
                pieces.close()
                break
            if n % RUNAWAY_EVERY == 0 and (loop := runaway(text)):
                text = text[:-loop]  # one copy of the repeated piece stays
                pieces.close()
                break
        usage = Usage(
            prompt_tokens=len(tokens),
            completion_tokens=len(self.tokenize(text)) if text else 0,
            prompt_eval_tokens=None if cached is None else len(tokens) - cached,
            seconds=time.perf_counter() - started,
        )
        return ModelReply(message=Message(role="assistant", content=text.strip()), usage=usage)

    def complete(
        self, messages: list[Message], tools: list[ToolSpec], exclude: frozenset[str] = frozenset()
    ) -> ModelReply:
        return self._reply(messages, tools, exclude, self.allow_answer)

    def answer_or_call(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        exclude: frozenset[str] = frozenset(),
        on_text: OnText | None = None,
    ) -> ModelReply:
        """Tool calls or a plain-text answer (the answer-or-call grammar, whatever
        allow_answer says); the answer's text goes to on_text as it is generated."""
        return self._reply(messages, tools, exclude, True, on_text)

    def _reply(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        exclude: frozenset[str],
        answers: bool,
        on_text: OnText | None = None,
    ) -> ModelReply:
        started = time.perf_counter()
        opening = "" if answers else CALL_OPEN
        prompt = render_chatml(messages, tools, answers, self.edit_format)
        prompt += "<|im_start|>assistant\n" + opening
        tokens = self.tokenize(prompt)
        cached = self._cached(tokens)
        grammar = self._grammar([t for t in tools if t.name not in exclude], answers)
        raw, finish_reason, completion_tokens = self._generate(tokens, grammar, on_text)
        usage = Usage(
            prompt_tokens=len(tokens),
            completion_tokens=completion_tokens,
            prompt_eval_tokens=None if cached is None else len(tokens) - cached,
            seconds=time.perf_counter() - started,
        )
        cut = finish_reason == "length"
        if answers:
            raw = raw.removeprefix("<tool_call>").strip().removesuffix("</tool_call>").strip()
            if not raw.startswith("{"):  # a plain-text answer; one cut at the cap stays one
                meta = {"cut": True} if cut else {}
                message = Message(role="assistant", content=raw, meta=meta)
                return ModelReply(message=message, usage=usage)
        if cut:
            advice = (
                "change part of a file with edit_file instead of writing all of it"
                if self.edit_format == "raw" or any(t.name == "edit_file" for t in tools)
                else "keep arguments shorter (write big files in several steps)"
            )
            raise FormatError(
                f"the reply was cut at {self.max_output_tokens} tokens; {advice}", raw, cut=True
            )
        if self.edit_format == "raw" and any(is_raw(t) for t in tools):
            calls = parse_raw_calls(raw, tools)
        else:
            calls = parse_calls(CALL_OPEN + raw, tools)
        return ModelReply(
            message=Message(role="assistant", tool_calls=calls, meta={"raw": raw}), usage=usage
        )

    def _generate(
        self, tokens: list[int], grammar: object, on_text: OnText | None
    ) -> tuple[str, str | None, int]:
        """The reply's text (stripped), why it ended and its length in tokens.

        With on_text, the completion is streamed and a reply that starts as prose (not a
        call: "<", "{", "[" or a fence) is handed over piece by piece as it is generated.
        """
        settings = dict(
            max_tokens=self.max_output_tokens,
            temperature=self.temperature,
            grammar=grammar,
            stop=["<|im_end|>"],
        )
        if on_text is None:
            out = self.llm.create_completion(tokens, **settings)
            choice = out["choices"][0]
            return (
                choice["text"].strip(),
                choice["finish_reason"],
                out["usage"]["completion_tokens"],
            )
        parts: list[str] = []
        finish_reason = None
        prose: bool | None = None  # undecided until the first visible character
        for chunk in self.llm.create_completion(tokens, stream=True, **settings):
            choice = chunk["choices"][0]
            finish_reason = choice["finish_reason"] or finish_reason
            piece = choice["text"]
            parts.append(piece)
            if prose is None:
                head = "".join(parts).lstrip()
                if head:
                    prose = head[0] not in "<{[`"
                    if prose:
                        on_text(head)
            elif prose and piece:
                on_text(piece)
        text = "".join(parts)
        return text.strip(), finish_reason, len(self.tokenize(text)) if text else 0


def calls_gbnf(
    specs: list[ToolSpec], edit_format: str = "json", max_calls: int = MAX_CALLS_PER_STEP
) -> str:
    """GBNF for one to max_calls schema-valid calls of these tools, joined by tool_call tags.

    Arguments are narrowed by each spec's grammar-only constraints and live choices; in the
    raw edit format a tool's raw text follows its JSON header (see spud.models.edit_format).
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    raw = edit_format == "raw"
    shaped = [s.model_copy(update={"parameters": grammar_parameters(s, raw)}) for s in specs]
    schema = json.dumps(calls_schema(shaped))  # key order matters: "name" comes first
    gbnf = compact(json_schema_to_gbnf(schema, prop_order=["name", "arguments"]))
    keyed = 0
    for i, s in enumerate(shaped):
        for arg, prop in s.parameters.get("properties", {}).items():
            kv = f"alternative-{i}-arguments-{arg}-additional-kv ::= string "
            if prop.get("x-keys") == "a1" and kv in gbnf:
                gbnf = gbnf.replace(kv, kv.replace("string ", "a1-key "), 1)
                keyed += 1
    gbnf += A1_KEY if keyed else ""
    gbnf = bounded_integers(gbnf, shaped)
    alternatives = [f"alternative-{i}" for i in range(len(specs))]
    root = "root ::= " + " | ".join(alternatives)
    if root not in gbnf.splitlines():
        raise ValueError("unexpected grammar from llama.cpp's JSON-schema converter")
    call = " | ".join(
        a + (raw_suffix(s) if raw else "") for a, s in zip(alternatives, specs, strict=True)
    )
    gbnf = gbnf.replace(root, f"call ::= {call}", 1)
    if raw and any(is_raw(s) for s in specs):
        plain = [a for a, s in zip(alternatives, specs, strict=True) if not is_raw(s)]
        if not plain:
            return gbnf + RAW_RULES + "root ::= call\n"
        multi = RAW_MULTI_CALL.format(more=max(0, max_calls - 1))
        return gbnf + RAW_RULES + f"plain-call ::= {' | '.join(plain)}\n" + multi
    return gbnf + MULTI_CALL.format(more=max(0, max_calls - 1))


# An A1 cell address as a JSON object key (sheet_write's cells): "B5", "$AA$10".
A1_KEY = """
a1-key ::= "\\"" [$]? [A-Za-z] [A-Za-z]{0,2} [$]? [1-9] [0-9]{0,6} "\\"" space
"""


def bounded_integers(gbnf: str, specs: list[ToolSpec]) -> str:
    """Each top-level integer argument with a minimum of 0 or more held to its range's digits
    (llama.cpp's converter ignores minimum and maximum: a 1.5B gave bash a 16-digit
    timeout_s three times and the run ended on format errors). Every number the rule allows
    is valid: with a maximum of 3600, up to 999."""
    for i, spec in enumerate(specs):
        for arg, prop in spec.parameters.get("properties", {}).items():
            low, top = prop.get("minimum"), prop.get("maximum")
            if prop.get("type") != "integer" or low is None or low < 0 or low > 1:
                continue
            digits = len(str(int(top))) - 1 if top is not None else 7
            if digits < 1 or (top is not None and 10**digits - 1 > top):
                continue
            tail = f"[0-9]{{0,{digits - 1}}}"
            rule = f"[1-9] {tail}" if low == 1 else f'("0" | [1-9] {tail})'
            kv = f"alternative-{i}-arguments-{arg.replace('_', '-')}-kv ::= "
            lines = gbnf.splitlines()
            for n, line in enumerate(lines):
                if line.startswith(kv) and line.endswith(" integer"):
                    lines[n] = line.removesuffix("integer") + f"{rule} space"
            gbnf = "\n".join(lines) + "\n"
    return gbnf


_NESTED = re.compile(r"\((?P<r>[\w-]+)(?P<opens>(?: \((?P=r))*)\)\?(?P<closes>(?:\)\?)*)")


def compact(gbnf: str) -> str:
    """Rewrite the converter's nested `(x (x (x)?)?)?` (one level per allowed character of a
    maxLength) as GBNF's own `x{0,3}`, so bounded strings do not bloat the grammar text."""

    def short(m: re.Match[str]) -> str:
        depth = 1 + m["opens"].count("(")
        if m["closes"].count(")?") + 1 != depth:
            return m[0]
        return f"{m['r']}{{0,{depth}}}"

    return _NESTED.sub(short, gbnf)


def grammar_parameters(spec: ToolSpec, raw: bool) -> dict[str, Any]:
    """A tool's argument schema as the grammar sees it: header only in the raw format,
    grammar-only constraints applied, and each live choice list as an enum."""
    params = inline_refs(header_parameters(spec) if raw and is_raw(spec) else spec.parameters)
    props = dict(params.get("properties", {}))
    for arg, rule in spec.constraints.items():
        if arg not in props:
            continue
        if "x-keys" in rule:
            props[arg] = {**props[arg], "x-keys": rule["x-keys"]}
        else:
            props[arg] = dict(rule)
    for arg, values in spec.choices.items():
        if arg in props and values:
            props[arg] = {"type": "string", "enum": list(values)}
    return {**params, "properties": props}


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with each local "#/$defs/X" reference replaced by its definition."""
    defs = schema.get("$defs", {})

    def walk(node: Any, depth: int = 0) -> Any:
        if isinstance(node, list):
            return [walk(v, depth) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and depth < 8:
            return walk(defs[ref.removeprefix("#/$defs/")], depth + 1)
        return {k: walk(v, depth) for k, v in node.items() if k != "$defs"}

    return walk(schema)


# A draft's reply begins inside its code block: a 1.5B asked for "a sentence, then the code"
# gave the sentence alone in 5 of 15 replies, or repeated it to the token cap.
CODE_FENCE = "```python\n"
FENCE = re.compile(r"^[ \t]*```[ \t]*(\w*)", re.MULTILINE)
CODE_TAGS = {"python", "python3", "py"}


def block_closed(text: str) -> bool:
    """Whether text holds a whole ```python code block, fences included; an untagged block
    (often a quoted error or output) or one in another language does not count."""
    if not text.endswith("\n"):
        return False
    tags = FENCE.findall(text)
    return any(tags[i].lower() in CODE_TAGS for i in range(0, len(tags) - 1, 2))


RUNAWAY_EVERY = 8  # tokens between checks for a reply that repeats itself
RUNAWAY_UNIT, RUNAWAY_COPIES = 16, 4


def runaway(text: str) -> int:
    """How many trailing characters repeat an earlier piece of the reply (a piece of at
    least 16 characters said 4 times in a row, e.g. one sentence over and over), or 0. A run
    of one or a few characters (a line of '=' in a report script) is not a runaway."""
    tail = text[-4000:]
    for unit in range(RUNAWAY_UNIT, len(tail) // RUNAWAY_COPIES + 1):
        last = tail[-unit:]
        copies = (tail[-(k + 1) * unit : -k * unit] for k in range(1, RUNAWAY_COPIES))
        if len(set(last)) > 4 and all(c == last for c in copies):
            return (RUNAWAY_COPIES - 1) * unit
    return 0


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens two sequences share (what llama.cpp's KV cache can reuse)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
