"""Benchmarks prompt-lookup drafting: decode speed with guesses from the prompt against none."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from llm_bench import FAKE_OUTPUTS, TASK, coding_specs  # noqa: E402

from spud.config import Settings  # noqa: E402
from spud.core.agent import SYSTEM_PROMPT  # noqa: E402
from spud.core.messages import Message, ToolCall  # noqa: E402
from spud.models.local import CALL_OPEN, TOOLS_HEADER, LocalModel, render_chatml  # noqa: E402
from spud.models.lookup import PromptLookup  # noqa: E402
from spud.models.registry import get_spec, model_path  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 160)
STUB = Path(__file__).parent.parent / "tests" / "eval_solutions" / "impl-textkit" / "textkit.py"
FIX = '''"""Order totals for the shop."""


def subtotal(lines):
    """Sum of quantity x unit price over the order lines (dicts with qty and price)."""
    return sum(line["qty"] * line["price"] for line in lines)


def discount(total, code):
    """The discount for a code: SAVE10 takes 10 %, SAVE20 takes 20 % above 100, else 0."""
    if code == "SAVE10":
        return round(total * 0.1, 2)
    if code == "SAVE20" and total > 100:
        return round(total * 0.2, 2)
    return 0


def shipping(total, country):
    """Free at 50 or more at home ('NL'), else 4.95; abroad always 12.50."""
    if country == "NL":
        return 0 if total > 50 else 4.95
    return 12.50


def order_total(lines, code="", country="NL"):
    """Subtotal less discount plus shipping, rounded to cents."""
    sub = subtotal(lines)
    less = sub - discount(sub, code)
    return round(less + shipping(less, country), 2)
'''


def plain(messages: list[Message]) -> str:
    """The prompt as LocalModel.chat renders it: no tools header."""
    return render_chatml(messages, []).replace(TOOLS_HEADER.format(tools=""), "")


def cases(specs: list[Any]) -> dict[str, tuple[str, Any]]:
    """name -> (what it is, prompt text ending where the reply starts, grammar or None)."""
    ask = "Reply with the whole corrected file in one python code block."
    chat = [
        Message(role="system", content="You are a careful Python programmer."),
        Message(
            role="user",
            content=f"shop.py:\n```python\n{FIX}```\n\n`shipping(50, 'NL')` gives 4.95 but "
            f"an order of exactly 50 ships free. Fix it. {ask}",
        ),
    ]
    fresh = [
        Message(role="system", content="You are a careful Python programmer."),
        Message(
            role="user",
            content="Write a Python function `parse_duration(text)` that turns strings like "
            "'1h30m', '45s' or '2d 4h' into a number of seconds, raising ValueError on "
            "anything else. One python code block, no tests.",
        ),
    ]
    calls = [
        Message(role="system", content=SYSTEM_PROMPT),
        Message(role="user", content=TASK),
        Message(
            role="assistant",
            tool_calls=[ToolCall(id="c1", name="read_file", arguments={"path": "fizzbuzz.py"})],
        ),
        Message(
            role="tool",
            tool_call_id="c1",
            content=FAKE_OUTPUTS["read_file"][0],
            name="read_file",
        ),
    ]
    prose = "<|im_start|>assistant\n```python\n"
    return {
        "rewrite a file with a fix": (plain(chat) + prose, None),
        "write new code": (plain(fresh) + prose, None),
        "tool call after reading a file": (
            render_chatml(calls, specs) + "<|im_start|>assistant\n" + CALL_OPEN,
            "grammar",
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=Settings().model)
    parser.add_argument("--ahead", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=320)
    parser.add_argument("--out", type=Path, default=Path("bench/results/lookup_bench.json"))
    args = parser.parse_args()

    settings = Settings()
    path = model_path(get_spec(args.model), settings.model_cache)
    model = LocalModel(path, args.model, context_window=8192, seed=0)
    llm = model.llm
    specs = coding_specs(Path("/tmp"))
    grammar = model._grammar(specs)
    settings_ = [0, *args.ahead]
    rows: list[dict[str, Any]] = []
    for case, (prompt, uses_grammar) in cases(specs).items():
        tokens = model.tokenize(prompt)
        kw = dict(max_tokens=args.max_tokens, temperature=0.0, stop=["<|im_end|>"])
        if uses_grammar:
            kw["grammar"] = grammar
        llm.draft_model = None
        llm.create_completion(tokens, max_tokens=1, temperature=0.0)  # prompt into the cache
        runs: dict[int, list[dict[str, Any]]] = {a: [] for a in settings_}
        for _ in range(args.repeats):
            for ahead in settings_:  # interleaved: the machine's load hits every setting alike
                llm.draft_model = PromptLookup(ahead=ahead) if ahead else None
                llm.decodes = 0
                started = time.perf_counter()
                out = llm.create_completion(tokens, **kw)  # 1 prompt token re-evaluated
                seconds = time.perf_counter() - started
                n = out["usage"]["completion_tokens"]
                runs[ahead].append(
                    dict(
                        seconds=seconds,
                        tokens=n,
                        decodes=llm.decodes,
                        text=out["choices"][0]["text"],
                    )
                )
        base = runs[0]
        for ahead in settings_:
            r = runs[ahead]
            secs = statistics.median(x["seconds"] for x in r)
            tps = statistics.median(x["tokens"] / x["seconds"] for x in r)
            rows.append(
                dict(
                    case=case,
                    ahead=ahead,
                    tokens=r[0]["tokens"],
                    seconds=round(secs, 2),
                    tokens_per_s=round(tps, 2),
                    speedup=round(statistics.median(b["seconds"] for b in base) / secs, 3),
                    tokens_per_decode=round(r[0]["tokens"] / r[0]["decodes"], 2)
                    if ahead and r[0]["decodes"]
                    else 1.0,
                    same_text=all(x["text"] == base[0]["text"] for x in r),
                    text=r[0]["text"],
                )
            )
    llm.draft_model = None

    table = Table(title=f"prompt-lookup drafting, {args.model}, median of {args.repeats}")
    for col in ("reply", "guess ahead", "tokens", "s", "tok/s", "speed-up", "tok/decode", "same"):
        table.add_column(col, justify="left" if col == "reply" else "right")
    for r in rows:
        table.add_row(
            r["case"],
            str(r["ahead"] or "off"),
            str(r["tokens"]),
            f"{r['seconds']:.1f}",
            f"{r['tokens_per_s']:.1f}",
            f"{r['speedup']:.2f}x",
            f"{r['tokens_per_decode']:.2f}",
            "yes" if r["same_text"] else "NO",
        )
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = dict(
        model=args.model,
        machine=dict(python=platform.python_version(), load=list(__import__("os").getloadavg())),
        threads=llm.n_threads,
        repeats=args.repeats,
        max_tokens=args.max_tokens,
        rows=rows,
    )
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
