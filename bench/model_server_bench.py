"""Shared model server against in-process loading: memory per worker and throughput, 2 sessions.

Each variant runs W worker processes at once (as W `spud serve` processes or Ray workers
would), each driving one agent-like session of S steps on the embedded model: a growing
message list (system prompt, task, then each reply and a tool result), every step a
grammar-constrained tool call, and one free-text answer at the end.

- in-process: each worker loads the GGUF itself (LocalModel).
- served: one llama.cpp server (spud.models.model_server, as `spud serve` starts it with
  SPUD_MODEL_SERVER=start) and each worker a ServedModel (vocabulary only) talking to it.

Per worker it records RSS, PSS and private memory (/proc/<pid>/smaps_rollup; llama.cpp mmaps
the GGUF, so on one machine the weights' pages are shared and RSS counts them in every
process) and the server's too; throughput is completion tokens per second and requests per
minute over the wall time from the first worker's start to the last one's end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MODEL = "qwen2.5-coder-0.5b"
# Reading tasks: short calls (paths, patterns), so a step is a prefill and a short constrained
# decode, as most agent steps are; a write of a whole file would be one long decode instead.
TASKS = [
    "Which files in the workspace mention 'config'? Search for it.",
    "What does README.md say? Read it.",
    "List the files in the workspace, then read the Python ones.",
    "Find where the function add is defined and read that file.",
]


def memory(pid: int) -> dict[str, float]:
    """RSS, PSS and private memory of a process in MiB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        fields[key.strip()] = int(rest.split()[0]) / 1024
    return {
        "rss_mib": fields["Rss"],
        "pss_mib": fields["Pss"],
        "private_mib": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
    }


# -- one worker (a child process) ---------------------------------------------------------


def worker(variant: str, url: str, session: int, steps: int, context: int) -> None:
    from spud.config import Settings
    from spud.core.errors import FormatError
    from spud.core.messages import Message
    from spud.core.tooling import tool_spec
    from spud.models.loader import load_model
    from spud.tools.files import ListFiles, ReadFile, Search

    t0 = time.perf_counter()
    settings = Settings(
        model=MODEL, context_window=context, model_server=url if variant == "served" else ""
    )
    settings.limits.max_output_tokens = 128
    model = load_model(MODEL, settings)
    load_s = time.perf_counter() - t0
    ws = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    (ws / "README.md").write_text("# calc\nA tiny calculator; see calc.py and config.toml.\n")
    (ws / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    tools = [t(ws) for t in (ReadFile, ListFiles, Search)]
    specs = [tool_spec(t) for t in tools]
    loaded = memory(os.getpid())
    print("ready", flush=True)
    sys.stdin.readline()  # every worker starts together

    messages = [
        Message(
            role="system",
            content="You are Spud, an agent that works in a workspace "
            "with tools. Call one tool per step.",
        ),
        Message(role="user", content=TASKS[session % len(TASKS)]),
    ]
    started = time.time()
    calls: list[dict[str, Any]] = []
    for step in range(steps):
        t = time.perf_counter()
        try:
            reply = model.complete(messages, specs)
        except FormatError:  # cut at the output cap: 128 tokens generated, no call
            calls.append({"kind": "cut", "s": time.perf_counter() - t, "completion_tokens": 128})
            continue
        calls.append(
            {
                "kind": "tool_call",
                "s": time.perf_counter() - t,
                "completion_tokens": reply.usage.completion_tokens,
                "prompt_tokens": reply.usage.prompt_tokens,
                "calls": [c.name for c in reply.message.tool_calls],
            }
        )
        messages.append(reply.message)
        for c in reply.message.tool_calls:
            messages.append(
                Message(
                    role="tool",
                    tool_call_id=c.id,
                    name=c.name,
                    content=f"(step {step}) {c.name}: README.md, calc.py, config.toml; "
                    "calc.py:1: def add(a, b):",
                )
            )
    t = time.perf_counter()
    answer = model.chat(  # type: ignore[attr-defined]
        [*messages[:2], Message(role="user", content="In one sentence, what did you do?")],
        max_tokens=32,
    )
    calls.append(
        {
            "kind": "answer",
            "s": time.perf_counter() - t,
            "completion_tokens": answer.usage.completion_tokens,
            "prompt_tokens": answer.usage.prompt_tokens,
        }
    )
    ended = time.time()
    out = {
        "session": session,
        "load_s": load_s,
        "started": started,
        "ended": ended,
        "requests": calls,
        "memory_loaded": loaded,
        "memory_end": memory(os.getpid()),
    }
    print("result " + json.dumps(out), flush=True)


# -- the parent -----------------------------------------------------------------------------


def run_variant(variant: str, workers: int, steps: int, context: int) -> dict[str, Any]:
    server = None
    url = ""
    if variant == "served":
        from spud.config import Settings
        from spud.models.loader import start_model_server

        t0 = time.perf_counter()
        log = Path(tempfile.mkdtemp()) / "model-server.log"
        server = start_model_server(Settings(model=MODEL, context_window=context), log)
        url = server.url
        server_start_s = time.perf_counter() - t0
    try:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    variant,
                    "--url",
                    url,
                    "--session",
                    str(i),
                    "--steps",
                    str(steps),
                    "--context",
                    str(context),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(workers)
        ]
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            assert line.strip() == "ready", f"worker did not start: {line!r}"
        server_loaded = memory(server.pid) if server and server.pid else None
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            assert p.stdout is not None
            for line in p.stdout:
                if line.startswith("result "):
                    results.append(json.loads(line.removeprefix("result ")))
            p.wait()
        server_end = memory(server.pid) if server and server.pid else None
    finally:
        if server:
            server.stop()
    wall = max(r["ended"] for r in results) - min(r["started"] for r in results)
    requests = sum(len(r["requests"]) for r in results)
    tokens = sum(c["completion_tokens"] for r in results for c in r["requests"])
    return {
        "variant": variant,
        "workers": results,
        "server": {
            "memory_loaded": server_loaded,
            "memory_end": server_end,
            "start_s": server_start_s,
        }
        if server
        else None,
        "wall_s": wall,
        "requests": requests,
        "completion_tokens": tokens,
        "tokens_per_s": tokens / wall,
        "requests_per_min": requests / wall * 60,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="concurrent sessions (processes)")
    ap.add_argument("--steps", type=int, default=3, help="tool-call steps per session")
    ap.add_argument("--context", type=int, default=4096)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--url", default="", help=argparse.SUPPRESS)
    ap.add_argument("--session", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.url, args.session, args.steps, args.context)
        return

    load_before = os.getloadavg()
    runs = []
    for variant in ("in-process", "served"):
        runs.append(run_variant(variant, args.workers, args.steps, args.context))
        done = runs[-1]
        print(  # as each variant ends: a run cut short still tells the first one
            f"{variant}: {done['requests']} requests, {done['completion_tokens']} tokens in "
            f"{done['wall_s']:.0f} s; load average {os.getloadavg()}",
            flush=True,
        )
    result = {
        "model": MODEL,
        "workers": args.workers,
        "steps": args.steps,
        "context": args.context,
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "niceness": os.nice(0),
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "model_server_bench.json").write_text(json.dumps(result, indent=2))

    table = Table(title=f"{args.workers} concurrent sessions, {args.steps} steps + 1 answer each")
    for col in (
        "variant",
        "RSS/worker MiB",
        "PSS/worker MiB",
        "private/worker MiB",
        "server RSS MiB",
        "total PSS MiB",
        "tok/s",
        "req/min",
        "wall s",
    ):
        table.add_column(col)
    for run in runs:
        ws = run["workers"]
        end = [w["memory_end"] for w in ws]
        srv = (run["server"] or {}).get("memory_end") or {}
        total_pss = sum(m["pss_mib"] for m in end) + srv.get("pss_mib", 0)
        table.add_row(
            run["variant"],
            f"{sum(m['rss_mib'] for m in end) / len(end):.0f}",
            f"{sum(m['pss_mib'] for m in end) / len(end):.0f}",
            f"{sum(m['private_mib'] for m in end) / len(end):.0f}",
            f"{srv['rss_mib']:.0f}" if srv else "–",
            f"{total_pss:.0f}",
            f"{run['tokens_per_s']:.1f}",
            f"{run['requests_per_min']:.1f}",
            f"{run['wall_s']:.0f}",
        )
    Console().print(table)
    print(
        f"load average before {load_before}, after {result['loadavg_after']}; "
        f"JSON in {RESULTS / 'model_server_bench.json'}"
    )


if __name__ == "__main__":
    main()
