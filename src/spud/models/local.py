"""The embedded model: llama.cpp in-process, tool calls constrained by a JSON-schema grammar."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from spud.core.errors import FormatError
from spud.core.messages import Message, ModelReply, Usage
from spud.core.protocols import ToolSpec
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
# One to four calls per reply; small models like to plan "write, run, finish" in one turn.
MULTI_CALL = f"""
root ::= call (call-sep call){{0,{MAX_CALLS_PER_STEP - 1}}}
call-sep ::= "\\n" ("</tool_call>\\n<tool_call>\\n")?
"""
# With answers allowed a reply is tool calls (after Qwen's <tool_call> token, or straight JSON)
# or plain text that starts like prose (not "<", "{", "[" or a code fence).
ANSWER_OR_CALLS = """
reply ::= <tool_call> "\\n" calls | calls | answer
answer ::= [^<{[`] [^<]*
"""


def render_chatml(messages: list[Message], specs: list[ToolSpec], answers: bool = False) -> str:
    """The prompt in ChatML, Qwen's tool format; earlier turns render identically each step."""
    tools = "\n".join(
        json.dumps({"type": "function", "function": s.model_dump()}, separators=(",", ":"))
        for s in specs
    )
    out: list[str] = []
    for i, m in enumerate(messages):
        if m.role == "system":
            out.append(
                f"<|im_start|>system\n{m.content}{TOOLS_HEADER.format(tools=tools)}"
                + (ANSWER_NOTE if answers else "")
                + "<|im_end|>\n"
            )
        elif m.role == "user":
            out.append(f"<|im_start|>user\n{m.content}<|im_end|>\n")
        elif m.role == "assistant":
            out.append(f"<|im_start|>assistant\n{_assistant_text(m)}<|im_end|>\n")
        else:
            first = i == 0 or messages[i - 1].role != "tool"
            last = i == len(messages) - 1 or messages[i + 1].role != "tool"
            out.append(
                ("<|im_start|>user\n" if first else "\n")
                + f"<tool_response>\n{m.content}\n</tool_response>"
                + ("<|im_end|>\n" if last else "")
            )
    return "".join(out)


def _assistant_text(m: Message) -> str:
    if "raw" in m.meta:  # replay exactly what the model produced, so the KV prefix is reused
        return CALL_OPEN + m.meta["raw"] + CALL_CLOSE
    calls = "".join(
        CALL_OPEN + json.dumps({"name": c.name, "arguments": c.arguments}) + CALL_CLOSE
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
    ) -> None:
        from llama_cpp import Llama

        self.name = name
        self.context_window = context_window
        self.temperature = temperature
        self.max_output_tokens = max_output_tokens
        # When True, a reply may be a plain-text answer instead of tool calls (the grammar
        # offers both), e.g. to say that none of the tools fits the request.
        self.allow_answer = allow_answer
        self.llm = Llama(
            model_path=str(path),
            n_ctx=context_window,
            n_threads=threads or os.cpu_count(),  # llama.cpp's default is half the cores
            seed=seed,
            verbose=False,
        )
        self._grammars: dict[str, object] = {}

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=False, special=True)

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec]) -> int:
        return len(self.tokenize(render_chatml(messages, tools, self.allow_answer))) + 8

    def _grammar(self, specs: list[ToolSpec]) -> object:
        from llama_cpp import LlamaGrammar

        key = json.dumps([calls_schema(specs), self.allow_answer])
        if key not in self._grammars:
            gbnf = calls_gbnf(specs)
            if self.allow_answer:
                gbnf = gbnf.replace("root ::=", "calls ::=", 1) + ANSWER_OR_CALLS
                gbnf = gbnf.replace("reply ::=", "root ::=", 1)
            self._grammars[key] = LlamaGrammar.from_string(gbnf, verbose=False)
        return self._grammars[key]

    def complete(
        self, messages: list[Message], tools: list[ToolSpec], exclude: frozenset[str] = frozenset()
    ) -> ModelReply:
        started = time.perf_counter()
        opening = "" if self.allow_answer else CALL_OPEN
        prompt = render_chatml(messages, tools, self.allow_answer)
        prompt += "<|im_start|>assistant\n" + opening
        tokens = self.tokenize(prompt)
        cached = common_prefix(self.llm._input_ids.tolist(), tokens)
        out = self.llm.create_completion(
            tokens,
            max_tokens=self.max_output_tokens,
            temperature=self.temperature,
            grammar=self._grammar([t for t in tools if t.name not in exclude]),
            stop=["<|im_end|>"],
        )
        choice = out["choices"][0]
        raw = choice["text"].strip()
        usage = Usage(
            prompt_tokens=out["usage"]["prompt_tokens"],
            completion_tokens=out["usage"]["completion_tokens"],
            prompt_eval_tokens=len(tokens) - cached,
            seconds=time.perf_counter() - started,
        )
        if choice["finish_reason"] == "length":
            raise FormatError(
                f"the reply was cut at {self.max_output_tokens} tokens; keep arguments shorter "
                "(write big files in several steps)",
                raw=raw,
            )
        if self.allow_answer:
            raw = raw.removeprefix("<tool_call>").strip().removesuffix("</tool_call>").strip()
            if not raw.startswith("{"):
                return ModelReply(message=Message(role="assistant", content=raw), usage=usage)
        calls = parse_calls(CALL_OPEN + raw, tools)
        return ModelReply(
            message=Message(role="assistant", tool_calls=calls, meta={"raw": raw}), usage=usage
        )


def calls_gbnf(specs: list[ToolSpec]) -> str:
    """GBNF for one to four schema-valid calls of these tools, joined by tool_call tags."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    # llama.cpp's converter resolves $ref only at the root, and each tool's schema is nested.
    specs = [s.model_copy(update={"parameters": inline_refs(s.parameters)}) for s in specs]
    schema = json.dumps(calls_schema(specs))  # key order matters: "name" comes first
    gbnf = json_schema_to_gbnf(schema, prop_order=["name", "arguments"])
    return gbnf.replace("root ::=", "call ::=", 1) + MULTI_CALL


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


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens two sequences share (what llama.cpp's KV cache can reuse)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
