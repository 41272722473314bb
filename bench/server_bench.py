"""/v1 streaming overhead of `spud serve` against the adapter called directly, and a load run."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from server_fixtures import replay_file, start_server  # noqa: E402

from spud.config import Settings  # noqa: E402
from spud.models.replay import ReplayModel  # noqa: E402
from spud.service.completions import complete, to_messages  # noqa: E402
from spud.service.modelpool import ModelPool  # noqa: E402

ANSWER = "Spud answers from a fast fake model, so the harness is what is measured."
PROMPT = [{"role": "user", "content": "Say something short."}]
RESULTS = ROOT / "bench" / "results"


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of values, in the values' unit."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def direct(model_name: str, n: int) -> list[float]:
    """Milliseconds per completion calling the same adapter in-process (the baseline)."""
    model = ReplayModel.from_file(Path(model_name.removeprefix("replay:")))
    out = []
    for _ in range(n):
        start = time.perf_counter()
        reply = model.complete(to_messages(PROMPT), [], frozenset())
        assert reply.message.content == ANSWER, reply.message
        out.append((time.perf_counter() - start) * 1000)
    return out


def direct_raw_path(model_name: str, n: int) -> list[float]:
    """Milliseconds per completion through the service's raw-completion code, no HTTP."""
    pool = ModelPool(Settings(model=model_name))
    out = []
    for _ in range(n):
        start = time.perf_counter()
        reply = complete(pool, model_name, PROMPT, [], None)
        assert reply.message.content == ANSWER, reply.message
        out.append((time.perf_counter() - start) * 1000)
    return out


def body(model: str) -> dict[str, Any]:
    return {"model": model, "messages": PROMPT, "stream": True}


def streamed_text(lines: list[str]) -> str:
    """The answer assembled from an SSE chat-completion stream's data lines."""
    text = []
    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:]).get("choices", []):
                text.append(choice.get("delta", {}).get("content") or "")
    return "".join(text)


def sequential(url: str, key: str, model: str, n: int) -> tuple[list[float], list[float]]:
    """Time to first byte and total milliseconds of n streaming requests, one at a time."""
    ttfb, total = [], []
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for _ in range(n):
            start = time.perf_counter()
            with client.stream("POST", "/v1/chat/completions", json=body(model)) as r:
                r.raise_for_status()
                lines: list[str] = []
                for chunk in r.iter_lines():
                    if not lines:
                        ttfb.append((time.perf_counter() - start) * 1000)
                    lines.append(chunk)
            total.append((time.perf_counter() - start) * 1000)
            assert streamed_text(lines) == ANSWER, lines[:3]
    return ttfb, total


async def load(url: str, key: str, model: str, clients: int) -> dict[str, Any]:
    """`clients` streaming sessions at once; latency of each and the errors seen."""
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    errors: list[str] = []
    latencies: list[float] = []
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=120, limits=limits
    ) as client:
        gate = asyncio.Event()

        async def one() -> None:
            await gate.wait()
            start = time.perf_counter()
            try:
                async with client.stream("POST", "/v1/chat/completions", json=body(model)) as r:
                    lines = [line async for line in r.aiter_lines()]
                    if r.status_code != 200:
                        errors.append(f"HTTP {r.status_code}")
                    elif streamed_text(lines) != ANSWER:
                        errors.append("wrong answer")
                    else:
                        latencies.append((time.perf_counter() - start) * 1000)
            except httpx.HTTPError as e:
                errors.append(type(e).__name__)

        tasks = [asyncio.create_task(one()) for _ in range(clients)]
        await asyncio.sleep(0.1)
        wall = time.perf_counter()
        gate.set()
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - wall
    return {
        "clients": clients,
        "ok": len(latencies),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p95_ms": pct(latencies, 95) if latencies else None,
        "max_ms": max(latencies) if latencies else None,
        "wall_s": wall,
        "requests_per_s": len(latencies) / wall if wall else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="sequential requests per path")
    parser.add_argument("--clients", type=int, default=200, help="concurrent streaming sessions")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="spud-server-bench-"))
    model = replay_file(tmp / "fake.json", [{"answer": ANSWER}])
    server = start_server(tmp / "home", {"SPUD_MODEL": model})
    try:
        sequential(server.url, server.key, model, 10)  # warm-up
        direct(model, 10)
        adapter = direct(model, args.requests)
        service = direct_raw_path(model, args.requests)
        ttfb, total = sequential(server.url, server.key, model, args.requests)
        agent_ttfb, agent_total = sequential(server.url, server.key, "spud-agent", 20)
        loads = [asyncio.run(load(server.url, server.key, model, args.clients))]
        loads.append(asyncio.run(load(server.url, server.key, "spud-agent", args.clients)))
    finally:
        server.stop()

    med = statistics.median
    rows = {
        "adapter_direct_ms": med(adapter),
        "service_no_http_ms": med(service),
        "spud_ttfb_ms": med(ttfb),
        "spud_total_ms": med(total),
        "spud_total_p95_ms": pct(total, 95),
        "overhead_per_request_ms": med(total) - med(adapter),
        "ratio_total_vs_direct": med(total) / med(adapter),
        "spud_agent_ttfb_ms": med(agent_ttfb),
        "spud_agent_total_ms": med(agent_total),
    }
    result = {"requests": args.requests, "streaming": rows, "load": loads}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "server_bench.json").write_text(json.dumps(result, indent=2))

    console = Console()
    table = Table(title=f"/v1 streaming, fake model, median of {args.requests} (ms)")
    table.add_column("path")
    table.add_column("ms", justify="right")
    for name, value in rows.items():
        table.add_row(name, f"{value:.3f}" if "ratio" in name else f"{value:.2f}")
    console.print(table)
    load_table = Table(title="load: concurrent streaming sessions against one server")
    for col in ("model", "clients", "ok", "errors", "p50 ms", "p95 ms", "max ms", "req/s"):
        load_table.add_column(col, justify="right")
    for name, r in zip(("fake raw", "spud-agent"), loads, strict=True):
        load_table.add_row(
            name,
            str(r["clients"]),
            str(r["ok"]),
            f"{r['errors']} {' '.join(r['error_kinds'])}",
            *(f"{r[k]:.0f}" if r[k] is not None else "-" for k in ("p50_ms", "p95_ms", "max_ms")),
            f"{r['requests_per_s']:.1f}" if r["requests_per_s"] else "-",
        )
    console.print(load_table)
    console.print(f"JSON: {RESULTS / 'server_bench.json'}")


if __name__ == "__main__":
    main()
