"""Benchmarks the embedded model path: Spud vs raw llama.cpp, prefix-cache reuse, loop overhead."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from spud.config import Settings
from spud.core.agent import SYSTEM_PROMPT, Agent, Finish, Limits
from spud.core.errors import FormatError, SpudError
from spud.core.messages import Message, ModelReply, ToolResult
from spud.core.protocols import ToolSpec
from spud.core.tooling import tool_spec
from spud.models.local import CALL_OPEN, LocalModel, common_prefix, render_chatml
from spud.models.registry import get_spec, model_path, sha256_file
from spud.models.replay import ReplayModel
from spud.store.sql import SqlStore

N_CTX = 8192
DECODE_TOKENS = 64
TRAJECTORY_STEPS = 10
TRAJECTORY_MAX_OUTPUT = 96  # Spud's default is 768; lower to bound the run time
HARNESS_STEPS = 200
TASK = (
    "The tests in tests/test_fizzbuzz.py fail. Read fizzbuzz.py and the tests, fix the bug "
    "in fizzbuzz.py, then run the tests with python3 -m pytest -q to check that they pass."
)
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


# -- helpers ----------------------------------------------------------------------------------


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def coding_specs(workspace: Path) -> list[ToolSpec]:
    """The coding agent's tool specs plus finish, exactly as the Agent hands them to a model."""
    try:
        from spud.sandbox.bubblewrap import Sandbox, SandboxConfig
        from spud.tools.shell import coding_tools

        tools: list[Any] = coding_tools(workspace, Sandbox(SandboxConfig(workspace=workspace)))
    except SpudError:  # no bubblewrap: the specs only need the classes
        from spud.tools.files import EditFile, ListFiles, ReadFile, Search, WriteFile
        from spud.tools.shell import Bash

        tools = [ReadFile, ListFiles, Search, WriteFile, EditFile, Bash]
    return [tool_spec(t) for t in [*tools, Finish()]]


def eog_bias(llm: Any) -> dict[int, float]:
    """A logit bias that bans the end-of-generation tokens, so decoding runs to max_tokens."""
    ids = {llm.token_eos()}
    for text in ("<|im_end|>", "<|endoftext|>"):
        toks = llm.tokenize(text.encode(), add_bos=False, special=True)
        if len(toks) == 1:
            ids.add(toks[0])
    return {i: -1000.0 for i in ids}


def fs_type(path: str) -> str:
    """The filesystem type of the mount holding path (Linux), e.g. ext4 or tmpfs."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _dev, mount, fstype, *_ = line.split()
            if Path(path).is_relative_to(mount) and len(mount) > len(best):
                best, kind = mount, fstype
    except (OSError, ValueError):
        pass
    return kind


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def machine_info(path: Path, expected_sha: str) -> dict[str, Any]:
    import llama_cpp

    err.log("hashing the model file")
    digest = sha256_file(path)
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "llama_cpp_python": llama_cpp.__version__,
        "llama_system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
        "model_file": str(path),
        "model_bytes": path.stat().st_size,
        "model_sha256_prefix": digest[:12],
        "model_sha256_matches_registry": digest == expected_sha,
        "loadavg_start": list(os.getloadavg()),
    }


# -- 1. prefill and decode: Spud vs raw llama-cpp-python --------------------------------------


def bench_throughput(
    path: Path, name: str, specs: list[ToolSpec], repeats: int
) -> tuple[dict[str, Any], LocalModel]:
    from llama_cpp import Llama

    messages = [Message(role="system", content=SYSTEM_PROMPT), Message(role="user", content=TASK)]
    err.log("loading raw llama-cpp-python and Spud's LocalModel")
    spud = LocalModel(path, name, context_window=N_CTX, seed=0)
    # The same threads as Spud, and llama-cpp-python's default (half the cores) for reference.
    raw = Llama(
        model_path=str(path), n_ctx=N_CTX, seed=0, verbose=False, n_threads=spud.llm.n_threads
    )
    threads_default = Llama(model_path=str(path), n_ctx=N_CTX, seed=0, verbose=False)
    prompt = render_chatml(messages, specs) + "<|im_start|>assistant\n" + CALL_OPEN
    tokens = spud.tokenize(prompt)
    grammar = spud._grammar(specs)
    stop = ["<|im_end|>"]
    ban = eog_bias(raw)

    def raw_call(llm: Any, max_tokens: int, **kw: Any) -> Callable[[], int]:
        def run() -> int:
            out = llm.create_completion(
                tokens, max_tokens=max_tokens, temperature=0, stop=stop, **kw
            )
            return int(out["usage"]["completion_tokens"])

        return run

    def spud_call(max_tokens: int) -> Callable[[], int]:
        def run() -> int:
            spud.max_output_tokens = max_tokens
            try:
                return spud.complete(messages, specs).usage.completion_tokens
            except FormatError:  # cut at max_tokens (the prefill run always is)
                return max_tokens

        return run

    # name -> (llm whose cache is reset, prefill fn, decode fn, what it is)
    variants: dict[str, tuple[Any, Callable[[], int] | None, Callable[[], int], str]] = {
        "raw": (
            raw,
            raw_call(raw, 1),
            raw_call(raw, DECODE_TOKENS, logit_bias=ban),
            "Llama.create_completion(prompt tokens), no grammar; end-of-generation tokens "
            "banned by logit_bias during the decode run so it always makes max_tokens",
        ),
        "raw+grammar": (
            raw,
            raw_call(raw, 1, grammar=grammar),
            raw_call(raw, DECODE_TOKENS, grammar=grammar),
            "Llama.create_completion(prompt tokens, grammar=LocalModel._grammar(specs))",
        ),
        "spud": (
            spud.llm,
            spud_call(1),
            spud_call(DECODE_TOKENS),
            "LocalModel.complete(messages, specs): render, tokenize, grammar, parse",
        ),
        "raw default threads": (
            threads_default,
            None,
            raw_call(threads_default, DECODE_TOKENS, logit_bias=ban),
            f"as raw but with llama-cpp-python's default n_threads "
            f"({threads_default.n_threads}); decode only (prefill uses n_threads_batch="
            "cpu_count in every variant)",
        ),
    }
    err.log(f"warming up ({len(tokens)} prompt tokens)")
    for llm in (raw, spud.llm, threads_default):
        llm.reset()
        llm.create_completion(tokens[:32], max_tokens=2, temperature=0)
    threads_default.reset()
    threads_default.create_completion(tokens, max_tokens=1, temperature=0)  # cache its prompt once
    # What the model does unconstrained after Spud's "<tool_call>\n" prefill (prompt cached).
    natural = raw.create_completion(tokens, max_tokens=DECODE_TOKENS, temperature=0, stop=stop)

    samples: dict[str, dict[str, list[float]]] = {
        v: {"prefill_s": [], "decode_s": [], "decode_tokens": []} for v in variants
    }
    for r in range(repeats):
        err.log(f"throughput repeat {r + 1}/{repeats}")
        for v, (llm, prefill, decode, _) in variants.items():  # round-robin against drift
            if prefill is not None:
                llm.reset()  # so the whole prompt is evaluated
                seconds, _n = timed(prefill)
                samples[v]["prefill_s"].append(seconds)
            seconds, n = timed(decode)  # the prompt is cached now: only decoding
            samples[v]["decode_s"].append(seconds)
            samples[v]["decode_tokens"].append(n)

    results: dict[str, Any] = {}
    for v, s in samples.items():
        prefill_rates = [len(tokens) / t for t in s["prefill_s"]]
        decode_rates = [n / t for n, t in zip(s["decode_tokens"], s["decode_s"], strict=True)]
        results[v] = {
            "what": variants[v][3],
            **s,
            "prefill_tok_s": prefill_rates,
            "decode_tok_s": decode_rates,
            "prefill_tok_s_median": median(prefill_rates),
            "decode_tok_s_median": median(decode_rates),
            "prefill_tok_s_best": max(prefill_rates, default=float("nan")),
            "decode_tok_s_best": max(decode_rates, default=float("nan")),
        }
    out = {
        "prompt_tokens": len(tokens),
        "decode_max_tokens": DECODE_TOKENS,
        "n_threads": raw.n_threads,
        "n_threads_batch": raw.n_threads_batch,
        "repeats": repeats,
        "method": {
            "prefill": "llm.reset(), then one call with max_tokens=1; prefill tok/s = prompt "
            "tokens / wall time of that call (includes sampling one token; for spud also "
            "render + tokenize, and the FormatError raised for the cut reply)",
            "decode": f"right after the prefill call, the same prompt again with max_tokens="
            f"{DECODE_TOKENS}; the whole prompt is cached so llama.cpp evaluates no prompt "
            "tokens; decode tok/s = completion tokens / wall time of that call (about one "
            "single-token forward pass plus one sampling step per token). Grammar runs stop "
            "where the grammar ends (fewer tokens than max_tokens)",
            "order": "variants round-robin inside each repeat; medians over repeats",
            "ratio": "a / b of tok/s, on medians and on bests (fastest repeat: the least "
            "disturbed by other load on a shared machine)",
        },
        "variants": results,
        "ratios": {stat: ratios(results, stat) for stat in ("median", "best")},
        "unconstrained_natural_reply": {
            "completion_tokens": natural["usage"]["completion_tokens"],
            "text": natural["choices"][0]["text"][:200],
            "finish_reason": natural["choices"][0]["finish_reason"],
        },
    }
    del raw, threads_default
    return out, spud


def ratios(results: dict[str, Any], stat: str) -> dict[str, float]:
    def rate(variant: str, kind: str) -> float:
        return results[variant][f"{kind}_tok_s_{stat}"]

    pairs = {
        "prefill spud / raw": ("spud", "raw", "prefill"),
        "prefill spud / raw+grammar": ("spud", "raw+grammar", "prefill"),
        "prefill raw+grammar / raw": ("raw+grammar", "raw", "prefill"),
        "decode spud / raw": ("spud", "raw", "decode"),
        "decode spud / raw+grammar": ("spud", "raw+grammar", "decode"),
        "decode raw+grammar / raw": ("raw+grammar", "raw", "decode"),
        "decode raw / raw default threads": ("raw", "raw default threads", "decode"),
    }
    return {k: ratio(rate(a, kind), rate(b, kind)) for k, (a, b, kind) in pairs.items()}


def show_throughput(t: dict[str, Any]) -> None:
    table = Table(
        title=f"1. prefill / decode ({t['prompt_tokens']} prompt tokens, median of "
        f"{t['repeats']}, n_threads={t['n_threads']}, n_threads_batch={t['n_threads_batch']})"
    )
    cols = ("variant", "prefill s", "prefill tok/s", "best", "decode tokens", "decode tok/s")
    for col in (*cols, "best "):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for v, r in t["variants"].items():
        has = bool(r["prefill_s"])
        table.add_row(
            v,
            f"{median(r['prefill_s']):.2f}" if has else "-",
            f"{r['prefill_tok_s_median']:.1f}" if has else "-",
            f"{r['prefill_tok_s_best']:.1f}" if has else "-",
            f"{median(r['decode_tokens']):.0f}",
            f"{r['decode_tok_s_median']:.1f}",
            f"{r['decode_tok_s_best']:.1f}",
        )
    console.print(table)
    table = Table(title="1b. throughput ratios (a / b of tok/s; >1 means a is faster)")
    for col in ("a / b", "on medians", "on bests"):
        table.add_column(col, justify="left" if col == "a / b" else "right")
    for k, val in t["ratios"]["median"].items():
        table.add_row(k, f"{val:.3f}", f"{t['ratios']['best'][k]:.3f}")
    console.print(table)
    nat = t["unconstrained_natural_reply"]
    console.print(
        f"unconstrained reply after the <tool_call> prefill: {nat['completion_tokens']} tokens, "
        f"finish={nat['finish_reason']}, text={nat['text'][:60]!r}"
    )


# -- 2. prefix-cache reuse over a trajectory --------------------------------------------------

FAKE_OUTPUTS: dict[str, list[str]] = {
    "list_files": [
        "README.md\nfizzbuzz.py\npyproject.toml\ntests/__init__.py\ntests/test_fizzbuzz.py\n"
        "tests/conftest.py\n.gitignore\nrequirements-dev.txt\n(8 files)",
    ],
    "read_file": [
        '     1\t"""FizzBuzz for the numbers 1..n."""\n     2\t\n     3\t\n'
        "     4\tdef fizzbuzz(n: int) -> list[str]:\n     5\t    out = []\n"
        "     6\t    for i in range(1, n):\n     7\t        if i % 15 == 0:\n"
        '     8\t            out.append("FizzBuzz")\n     9\t        elif i % 3 == 0:\n'
        '    10\t            out.append("Buzz")\n    11\t        elif i % 5 == 0:\n'
        '    12\t            out.append("Fizz")\n    13\t        else:\n'
        "    14\t            out.append(str(i))\n    15\t    return out\n(15 lines)",
        "     1\tfrom fizzbuzz import fizzbuzz\n     2\t\n     3\t\n"
        "     4\tdef test_length():\n     5\t    assert len(fizzbuzz(15)) == 15\n     6\t\n\n"
        "     7\tdef test_words():\n     8\t    out = fizzbuzz(15)\n"
        '     9\t    assert out[2] == "Fizz" and out[4] == "Buzz" and out[14] == "FizzBuzz"\n'
        "(9 lines)",
    ],
    "search": [
        "fizzbuzz.py:4: def fizzbuzz(n: int) -> list[str]:\n"
        "tests/test_fizzbuzz.py:1: from fizzbuzz import fizzbuzz\n"
        "tests/test_fizzbuzz.py:5:     assert len(fizzbuzz(15)) == 15\n"
        "tests/test_fizzbuzz.py:8:     out = fizzbuzz(15)\n(4 matches in 2 files)",
    ],
    "write_file": ["wrote fizzbuzz.py (15 lines, 402 bytes)"],
    "edit_file": [
        "edited fizzbuzz.py: replaced 1 occurrence at lines 9-12\n--- diff ---\n"
        '-            out.append("Buzz")\n+            out.append("Fizz")'
    ],
    "bash": [
        "FF                                                                       [100%]\n"
        "=================================== FAILURES ===================================\n"
        "_________________________________ test_length __________________________________\n"
        "    def test_length():\n>       assert len(fizzbuzz(15)) == 15\nE       assert 14 == 15\n"
        "tests/test_fizzbuzz.py:5: AssertionError\n"
        "FAILED tests/test_fizzbuzz.py::test_length - assert 14 == 15\n"
        "FAILED tests/test_fizzbuzz.py::test_words - IndexError: list index out of range\n"
        "2 failed in 0.03s\n[exit code 1]",
        "..                                                                       [100%]\n"
        "2 passed in 0.02s\n[exit code 0]",
    ],
    "finish": [
        "Not finished: tests/test_fizzbuzz.py still fails (2 failed). Fix fizzbuzz.py, run "
        "the tests, then call finish."
    ],
}


def fake_output(tool: str, step: int) -> str:
    options = FAKE_OUTPUTS.get(tool, [f"{tool}: done"])
    return options[step % len(options)]


def bench_prefix_cache(model: LocalModel, specs: list[ToolSpec]) -> dict[str, Any]:
    model.max_output_tokens = TRAJECTORY_MAX_OUTPUT
    messages = [Message(role="system", content=SYSTEM_PROMPT), Message(role="user", content=TASK)]
    snapshots: list[list[Message]] = []
    steps: list[dict[str, Any]] = []
    model.llm.reset()  # step 1 starts from an empty cache

    def step_once(msgs: list[Message]) -> tuple[float, ModelReply | None, str, FormatError | None]:
        started = time.perf_counter()
        try:
            reply = model.complete(msgs, specs)
            return time.perf_counter() - started, reply, reply.message.meta["raw"], None
        except FormatError as exc:
            return time.perf_counter() - started, None, exc.raw, exc

    for i in range(TRAJECTORY_STEPS):
        err.log(f"trajectory step {i + 1}/{TRAJECTORY_STEPS} (prefix cache kept)")
        snapshots.append(list(messages))
        toks = model.tokenize(
            render_chatml(messages, specs) + "<|im_start|>assistant\n" + CALL_OPEN
        )
        kv = model.llm._input_ids.tolist()
        common = common_prefix(kv, toks)
        seconds, reply, raw, exc = step_once(messages)
        row: dict[str, Any] = {"step": i + 1, "kv_tokens_before": len(kv), "raw": raw}
        if reply is not None:
            u = reply.usage
            row.update(
                prompt_tokens=u.prompt_tokens,
                prompt_eval_tokens=u.prompt_eval_tokens,
                completion_tokens=u.completion_tokens,
                seconds=seconds,
                tools=[c.name for c in reply.message.tool_calls],
            )
            messages.append(reply.message)
            for call in reply.message.tool_calls:
                messages.append(
                    Message(
                        role="tool",
                        name=call.name,
                        tool_call_id=call.id,
                        content=fake_output(call.name, i),
                        meta={"ok": True},
                    )
                )
        else:  # what the Agent does with a format error (no Usage comes back with it)
            row.update(
                prompt_tokens=len(toks),
                prompt_eval_tokens=len(toks) - min(common, len(toks) - 1),
                completion_tokens=TRAJECTORY_MAX_OUTPUT,
                seconds=seconds,
                tools=["format_error"],
            )
            messages.append(Message(role="assistant", meta={"kind": "format_error", "raw": raw}))
            messages.append(
                Message(
                    role="user",
                    content="Your reply was not a valid tool call: "
                    f"{getattr(exc, 'problem', exc)}. Reply with one tool call.",
                    meta={"kind": "format_error"},
                )
            )
        steps.append(row)

    for i, msgs in enumerate(snapshots):
        err.log(f"trajectory step {i + 1}/{TRAJECTORY_STEPS} (no reuse: cache reset)")
        model.llm.reset()
        seconds, reply, raw, _exc = step_once(msgs)
        steps[i]["noreuse_seconds"] = seconds
        steps[i]["noreuse_prompt_eval_tokens"] = (
            reply.usage.prompt_eval_tokens if reply is not None else steps[i]["prompt_tokens"]
        )
        steps[i]["same_reply_without_reuse"] = raw == steps[i]["raw"]

    prev_ctx = 0
    for row in steps:
        evaluated = row["prompt_eval_tokens"]
        row["cached_tokens"] = None if evaluated is None else row["prompt_tokens"] - evaluated
        row["prev_ctx_tokens"] = prev_ctx  # what the KV cache held: last prompt + its reply
        row["lost_tokens"] = (
            None if row["cached_tokens"] is None else max(0, prev_ctx - row["cached_tokens"])
        )
        prev_ctx = row["prompt_tokens"] + row["completion_tokens"]

    def total(key: str) -> float:
        return sum(r[key] or 0 for r in steps)

    prompt_total = total("prompt_tokens")
    return {
        "steps": steps,
        "max_output_tokens": TRAJECTORY_MAX_OUTPUT,
        "method": "one trajectory made by the real LocalModel.complete, fake tool results "
        "appended (no tool is run); prompt_eval_tokens is LocalModel's Usage (prompt minus the "
        "common prefix with llm._input_ids, as llama-cpp-python reuses it). The no-reuse "
        "baseline replays the same message lists with llm.reset() before each step. "
        "lost_tokens = tokens of the previous prompt+reply that were in the KV cache but had to "
        "be evaluated again. A reply cut at max_output_tokens raises FormatError, which carries "
        "no Usage: for those rows the bench computes the same common prefix itself, counts the "
        "cap as completion tokens, and appends what the Agent appends (the raw reply and a "
        "format-error note)",
        "totals": {
            "prompt_tokens": prompt_total,
            "evaluated_with_reuse": total("prompt_eval_tokens"),
            "evaluated_without_reuse": total("noreuse_prompt_eval_tokens"),
            "evaluated_fraction_with_reuse": ratio(total("prompt_eval_tokens"), prompt_total),
            "evaluated_fraction_without_reuse": ratio(
                total("noreuse_prompt_eval_tokens"), prompt_total
            ),
            "lost_tokens": total("lost_tokens"),
            "seconds_with_reuse": total("seconds"),
            "seconds_without_reuse": total("noreuse_seconds"),
            "speedup": ratio(total("noreuse_seconds"), total("seconds")),
            "replies_identical": all(r["same_reply_without_reuse"] for r in steps),
        },
    }


def show_prefix_cache(p: dict[str, Any]) -> None:
    table = Table(title="2. prefix-cache reuse over a 10-step trajectory")
    cols = ("step", "tools", "prompt", "eval", "cached", "prev ctx", "lost", "out", "s")
    for col in (*cols, "eval (reset)", "s (reset)", "same"):
        table.add_column(col, justify="left" if col in ("tools", "same") else "right")
    for r in p["steps"]:
        table.add_row(
            str(r["step"]),
            ",".join(r["tools"]),
            str(r["prompt_tokens"]),
            str(r["prompt_eval_tokens"]),
            str(r["cached_tokens"]),
            str(r["prev_ctx_tokens"]),
            str(r["lost_tokens"]),
            str(r["completion_tokens"]),
            f"{r['seconds']:.2f}",
            str(r["noreuse_prompt_eval_tokens"]),
            f"{r['noreuse_seconds']:.2f}",
            "yes" if r["same_reply_without_reuse"] else "NO",
        )
    t = p["totals"]
    table.add_row(
        "sum",
        "",
        str(t["prompt_tokens"]),
        str(t["evaluated_with_reuse"]),
        "",
        "",
        str(t["lost_tokens"]),
        "",
        f"{t['seconds_with_reuse']:.2f}",
        str(t["evaluated_without_reuse"]),
        f"{t['seconds_without_reuse']:.2f}",
        "yes" if t["replies_identical"] else "NO",
    )
    console.print(table)
    console.print(
        f"evaluated / prompt: {t['evaluated_fraction_with_reuse']:.3f} with reuse, "
        f"{t['evaluated_fraction_without_reuse']:.3f} without; "
        f"wall time {t['speedup']:.2f}x faster with reuse"
    )


# -- 3. harness overhead with the replay model ------------------------------------------------


class Echo:
    """A no-op tool."""

    name = "echo"
    description = "Echo the text back."

    class Args(BaseModel):
        text: str

    def run(self, args: Args) -> ToolResult:
        return ToolResult(output=f"echo: {args.text}")


class Clock:
    """Accumulated seconds and call counts per label."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed_fn(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t0
                self.calls[label] = self.calls.get(label, 0) + 1

        return timed_fn


class TimedModel:
    def __init__(self, model: ReplayModel, clock: Clock) -> None:
        self.name, self.context_window = model.name, model.context_window
        self.complete = clock.wrap("model.complete", model.complete)
        self.count_tokens = clock.wrap("model.count_tokens", model.count_tokens)


class TimedStore:
    def __init__(self, store: SqlStore, clock: Clock) -> None:
        self._store, self._clock = store, clock
        self.append = clock.wrap("store.append", store.append)

    def __getattr__(self, attr: str) -> Any:
        return self._clock.wrap("store.other", getattr(self._store, attr))


def run_harness(url: str, steps: int) -> dict[str, Any]:
    clock = Clock()
    store = SqlStore(url)
    replies = [
        {"calls": [{"name": "echo", "arguments": {"text": f"step {i}: look at part {i}"}}]}
        for i in range(steps)
    ]
    marks: list[float] = []

    def on_message(m: Message) -> None:
        if m.role == "assistant":
            marks.append(time.perf_counter())

    tool = Echo()
    tool.run = clock.wrap("tool.run", tool.run)  # type: ignore[method-assign]
    agent = Agent(
        TimedModel(ReplayModel(replies), clock),  # type: ignore[arg-type]
        [tool],
        TimedStore(store, clock),  # type: ignore[arg-type]
        limits=Limits(max_steps=steps, max_tokens=10**9, max_seconds=3600),
        on_message=on_message,
    )
    sid = agent.start("echo things, one per step", "/tmp")
    t0 = time.perf_counter()
    result = agent.run(sid)
    wall = time.perf_counter() - t0
    store.close()
    gaps = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    return {
        "status": result.status,
        "steps": result.steps,
        "wall_s": wall,
        "ms_per_step": 1000 * wall / max(result.steps, 1),
        "ms_per_step_first20": 1000 * median(gaps[:20]),
        "ms_per_step_last20": 1000 * median(gaps[-20:]),
        "breakdown_ms_per_step": {
            k: 1000 * v / max(result.steps, 1) for k, v in sorted(clock.seconds.items())
        },
        "calls": clock.calls,
    }


def bench_appends(url: str, n: int) -> dict[str, Any]:
    store = SqlStore(url)
    sid = store.create_session(task="appends", workspace="/tmp", model="none")
    msg = Message(role="tool", name="bash", tool_call_id="call_x", content="x" * 400)
    times = []
    for _ in range(n):
        seconds, _idx = timed(lambda: store.append(sid, msg))
        times.append(seconds)
    read_s, msgs = timed(lambda: store.messages(sid))
    store.close()
    return {
        "appends": n,
        "appends_per_s": n / sum(times),
        "ms_per_append_median": 1000 * median(times),
        "read_all_ms": 1000 * read_s,
        "read_messages": len(msgs),
    }


def bench_harness(repeats: int, steps: int) -> dict[str, Any]:
    out: dict[str, Any] = {"steps": steps, "repeats": repeats}
    with tempfile.TemporaryDirectory(prefix="spud-bench-") as tmp:
        for label, make_url in (
            ("sqlite file", lambda r: f"sqlite:///{tmp}/loop{r}.db"),
            ("sqlite memory", lambda r: "sqlite://"),
        ):
            runs = []
            for r in range(repeats):
                err.log(f"harness loop, {label}, repeat {r + 1}/{repeats}")
                runs.append(run_harness(make_url(r), steps))
            appends = [bench_appends(make_url(f"a{r}"), 2 * steps) for r in range(repeats)]
            keys = sorted({k for run in runs for k in run["breakdown_ms_per_step"]})
            out[label] = {
                "runs": runs,
                "appends": appends,
                "status": runs[0]["status"],
                "ms_per_step": median([x["ms_per_step"] for x in runs]),
                "ms_per_step_first20": median([x["ms_per_step_first20"] for x in runs]),
                "ms_per_step_last20": median([x["ms_per_step_last20"] for x in runs]),
                "breakdown_ms_per_step": {
                    k: median([x["breakdown_ms_per_step"].get(k, 0.0) for x in runs]) for k in keys
                },
                "appends_per_s": median([a["appends_per_s"] for a in appends]),
                "ms_per_append": median([a["ms_per_append_median"] for a in appends]),
                "read_all_ms": median([a["read_all_ms"] for a in appends]),
            }
        out["temp_dir"] = tmp
        out["temp_fs"] = fs_type(tmp)
    out["method"] = (
        "Agent + ReplayModel driving a no-op echo tool with distinct arguments for `steps` "
        "steps (Limits.max_steps), store = SqlStore; ms/step = wall time of agent.run / steps; "
        "breakdown = time inside model.complete, model.count_tokens, store.append, other store "
        "calls and tool.run (wrappers around each); first20/last20 = median gap between "
        "consecutive assistant messages; appends/s = a separate loop of 2*steps store.append "
        "calls of a 400-character tool message to one session; medians over repeats"
    )
    return out


def show_harness(h: dict[str, Any]) -> None:
    labels = ("sqlite file", "sqlite memory")
    table = Table(
        title=f"3. harness overhead, replay model, {h['steps']} steps, db on {h['temp_fs']}"
    )
    table.add_column("metric")
    for label in labels:
        table.add_column(label, justify="right")
    rows = [
        ("status", lambda d: d["status"]),
        ("ms / step", lambda d: f"{d['ms_per_step']:.2f}"),
        ("ms / step, first 20", lambda d: f"{d['ms_per_step_first20']:.2f}"),
        ("ms / step, last 20", lambda d: f"{d['ms_per_step_last20']:.2f}"),
    ]
    keys = sorted({k for label in labels for k in h[label]["breakdown_ms_per_step"]})
    for k in keys:
        rows.append(
            (f"  {k} ms/step", lambda d, k=k: f"{d['breakdown_ms_per_step'].get(k, 0.0):.2f}")
        )
    rows += [
        ("appends / s", lambda d: f"{d['appends_per_s']:.0f}"),
        ("ms / append", lambda d: f"{d['ms_per_append']:.2f}"),
        (f"read {2 * h['steps']} msgs ms", lambda d: f"{d['read_all_ms']:.1f}"),
    ]
    for name, fn in rows:
        table.add_row(name, *(fn(h[label]) for label in labels))
    console.print(table)


def section_start() -> tuple[float, float]:
    return time.perf_counter(), os.getloadavg()[0]


def section_end(result: dict[str, Any], mark: tuple[float, float]) -> tuple[float, float]:
    """Note a part's wall time and the 1-minute load average before and after it."""
    now = section_start()
    result["section_seconds"] = now[0] - mark[0]
    result["loadavg_1m"] = [mark[1], now[1]]
    return now


# -- main -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b", help="registry model name")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "llm_bench.json"
    )
    args = parser.parse_args()
    try:
        spec = get_spec(args.model)
    except SpudError as exc:
        err.print(f"error: {exc}")
        return 2
    path = model_path(spec, Settings().model_cache)
    if not path.is_file():
        err.print(f"error: {path} is missing: run `spud models pull {args.model}`")
        return 2

    started = time.perf_counter()
    report: dict[str, Any] = {"model": args.model, "machine": machine_info(path, spec.sha256)}
    with tempfile.TemporaryDirectory(prefix="spud-bench-ws-") as ws:
        specs = coding_specs(Path(ws))
    report["tools"] = [s.name for s in specs]
    report["task"] = TASK
    mark = section_start()
    report["throughput"], model = bench_throughput(path, args.model, specs, args.repeats)
    mark = section_end(report["throughput"], mark)
    report["prefix_cache"] = bench_prefix_cache(model, specs)
    mark = section_end(report["prefix_cache"], mark)
    del model
    report["harness"] = bench_harness(args.repeats, HARNESS_STEPS)
    section_end(report["harness"], mark)
    report["machine"]["loadavg_end"] = list(os.getloadavg())
    report["total_seconds"] = time.perf_counter() - started

    m = report["machine"]
    console.print(
        f"[bold]{args.model}[/] {Path(m['model_file']).name} sha256 {m['model_sha256_prefix']}… "
        f"| {m['cpu_count']} CPUs | Python {m['python']} | llama-cpp-python "
        f"{m['llama_cpp_python']} | load {m['loadavg_start'][0]:.2f}→{m['loadavg_end'][0]:.2f}"
    )
    for key, show in (
        ("throughput", show_throughput),
        ("prefix_cache", show_prefix_cache),
        ("harness", show_harness),
    ):
        show(report[key])
        load = report[key]["loadavg_1m"]
        console.print(
            f"[dim]({key}: {report[key]['section_seconds']:.0f}s, "
            f"1-min load {load[0]:.2f}→{load[1]:.2f})[/]"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.out} in {report['total_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
