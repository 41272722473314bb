"""/v1 streaming overhead of `spud serve` against the adapter called directly, and a load run.

Besides wall times, each phase records the CPU seconds the server process used per request
(from /proc): on a busy machine that is the measure that stays close to an idle machine's.
The load run goes twice: through httpx's AsyncClient (as an SDK would) and through a bare
asyncio HTTP/1.1 client that costs the bench little CPU, so the server is what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from server_fixtures import replay_file, start_server  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from baseline import BEFORE_ISSUE_14, source_trees  # noqa: E402

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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


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
        while len(total) < n:
            start = time.perf_counter()
            lines: list[str] = []
            try:
                with client.stream("POST", "/v1/chat/completions", json=body(model)) as r:
                    r.raise_for_status()
                    for chunk in r.iter_lines():
                        if not lines:
                            first = (time.perf_counter() - start) * 1000
                        lines.append(chunk)
            except httpx.RemoteProtocolError:  # the server closed the idle keep-alive
                continue  # connection as the request went out (a starved client): again
            ttfb.append(first)
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

        wall = await all_at_once(one, clients, gate)
    return summary(clients, latencies, errors, wall)


async def all_at_once(
    one: Callable[[], Awaitable[None]], clients: int, gate: asyncio.Event
) -> float:
    """Seconds from opening the gate until `clients` copies of one(), all waiting on it, end."""
    tasks = [asyncio.create_task(one()) for _ in range(clients)]
    await asyncio.sleep(0.1)
    wall = time.perf_counter()
    gate.set()
    await asyncio.gather(*tasks)
    return time.perf_counter() - wall


async def fetch_raw(host: str, port: int, request: bytes) -> tuple[int, list[str]]:
    """One HTTP/1.1 request on a new connection: the status and the body's lines (chunked
    or Content-Length bodies)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        headers = head.lower()
        if b"transfer-encoding: chunked" in headers:
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                parts.append(await reader.readexactly(size + 2))
            data = b"".join(p[:-2] for p in parts)
        else:
            length = int(headers.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
            data = await reader.readexactly(length)
        return status, data.decode().splitlines()
    finally:
        writer.close()


async def load_raw(url: str, key: str, model: str, clients: int) -> dict[str, Any]:
    """load() with a bare asyncio client: `clients` connections, one request each, at once."""
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body(model)).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode() + payload
    errors: list[str] = []
    latencies: list[float] = []
    gate = asyncio.Event()

    async def one() -> None:
        await gate.wait()
        start = time.perf_counter()
        try:
            status, lines = await fetch_raw(host, int(port), request)
        except (OSError, asyncio.IncompleteReadError) as e:
            errors.append(type(e).__name__)
            return
        if status != 200:
            errors.append(f"HTTP {status}")
        elif streamed_text(lines) != ANSWER:
            errors.append("wrong answer")
        else:
            latencies.append((time.perf_counter() - start) * 1000)

    return summary(clients, latencies, errors, await all_at_once(one, clients, gate))


def summary(clients: int, latencies: list[float], errors: list[str], wall: float) -> dict:
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


NO_UVLOOP = "import sys\nsys.modules['uvloop'] = None\nsys.modules['httptools'] = None\n"


def start_variant(tmp: Path, name: str, src: Path, model: str) -> Any:
    """A `spud serve` of the tree at src; "before" runs as it shipped (no uvloop, no httptools)."""
    path = str(src)
    if name == "before":
        shim = tmp / "shim"
        shim.mkdir(exist_ok=True)
        (shim / "sitecustomize.py").write_text(NO_UVLOOP)
        path = f"{shim}:{src}"
    env = {"SPUD_MODEL": model, "PYTHONPATH": path}
    return start_server(tmp / f"home-{name}", env, start_s=600)  # a busy machine starts slowly


def measure(server: Any, model: str, args: argparse.Namespace) -> dict[str, Any]:
    pid = server.proc.pid
    cpu = cpu_seconds(pid)
    ttfb, total = sequential(server.url, server.key, model, args.requests)
    sequential_cpu = cpu_seconds(pid) - cpu
    loads = {}
    for name, run in (("load", load), ("load_raw", load_raw)):
        cpu, own = cpu_seconds(pid), own_cpu_seconds()
        loads[name] = asyncio.run(run(server.url, server.key, model, args.clients))
        loads[name]["server_cpu_ms_per_request"] = (cpu_seconds(pid) - cpu) / args.clients * 1000
        loads[name]["client_cpu_ms_per_request"] = (own_cpu_seconds() - own) / args.clients * 1000
    return {
        "ttfb_ms": statistics.median(ttfb),
        "total_ms": statistics.median(total),
        "total_p95_ms": pct(total, 95),
        "server_cpu_ms_per_request": sequential_cpu / args.requests * 1000,
        **loads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="sequential requests per path")
    parser.add_argument("--clients", type=int, default=200, help="concurrent streaming sessions")
    parser.add_argument("--repeats", type=int, default=3, help="rounds, before and after in turn")
    parser.add_argument("--baseline", default=BEFORE_ISSUE_14, help="commit to compare against")
    parser.add_argument(
        "--also", nargs="*", default=[], help="more commits measured beside (e.g. HEAD)"
    )
    parser.add_argument(
        "--no-agent", dest="agent", action="store_false", help="skip the spud-agent rows"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="spud-server-bench-"))
    model = replay_file(tmp / "fake.json", [{"answer": ANSWER}])
    agent: dict[str, Any] = {}
    with source_trees(args.baseline, *args.also) as trees:
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        servers = {name: start_variant(tmp, name, trees[name], model) for name in rounds}
        try:
            for server in servers.values():
                sequential(server.url, server.key, model, 10)  # warm-up
            direct(model, 10)
            adapter = direct(model, args.requests)
            service = direct_raw_path(model, args.requests)
            for r in range(args.repeats):
                for name, server in servers.items():
                    print(f"round {r + 1}/{args.repeats}: {name}", file=sys.stderr)
                    rounds[name].append(measure(server, model, args))
            for name, server in servers.items() if args.agent else ():
                agent_ttfb, agent_total = sequential(server.url, server.key, "spud-agent", 20)
                agent[name] = {
                    "ttfb_ms": statistics.median(agent_ttfb),
                    "total_ms": statistics.median(agent_total),
                    "load": asyncio.run(load(server.url, server.key, "spud-agent", args.clients)),
                }
        finally:
            for server in servers.values():
                server.stop()

    med = statistics.median
    adapter_ms = med(adapter)
    rows: dict[str, dict[str, Any]] = {}
    for name, got in rounds.items():
        rows[name] = {
            "ttfb_ms": med(g["ttfb_ms"] for g in got),
            "total_ms": med(g["total_ms"] for g in got),
            "total_p95_ms": med(g["total_p95_ms"] for g in got),
            "overhead_per_request_ms": med(g["total_ms"] for g in got) - adapter_ms,
            "server_cpu_ms_per_request": med(g["server_cpu_ms_per_request"] for g in got),
        }
        for kind in ("load", "load_raw"):
            loads = [g[kind] for g in got]
            rows[name].update(
                {
                    f"{kind}_p50_ms": med(x["p50_ms"] or float("inf") for x in loads),
                    f"{kind}_p95_ms": med(x["p95_ms"] or float("inf") for x in loads),
                    f"{kind}_max_ms": med(x["max_ms"] or float("inf") for x in loads),
                    f"{kind}_requests_per_s": med(x["requests_per_s"] or 0.0 for x in loads),
                    f"{kind}_errors": sum(x["errors"] for x in loads),
                    f"{kind}_server_cpu_ms_per_request": med(
                        x["server_cpu_ms_per_request"] for x in loads
                    ),
                    f"{kind}_client_cpu_ms_per_request": med(
                        x["client_cpu_ms_per_request"] for x in loads
                    ),
                }
            )
    result = {
        "baseline": args.baseline,
        "variants_are": {v: (args.baseline if v == "before" else v) for v in rounds},
        "requests": args.requests,
        "clients": args.clients,
        "repeats": args.repeats,
        "load_average": os.getloadavg(),
        "adapter_direct_ms": adapter_ms,
        "service_no_http_ms": med(service),
        "variants": rows,
        "rounds": rounds,
        "spud_agent": agent,
        "method": (
            "one `spud serve` process per variant on one machine: the baseline commit (as it "
            "shipped: no uvloop/httptools), any --also commits and the working tree, same fake "
            "model; per round each is measured in turn: `requests` sequential streaming "
            "requests on one keep-alive connection (median, p95), then `clients` streaming "
            "requests at once through httpx's AsyncClient (load_*) and through a bare asyncio "
            "HTTP/1.1 client, one connection each (load_raw_*), all on the same machine; "
            "server CPU per request = the server process's user + system CPU over the phase "
            "(/proc) divided by its requests; client CPU likewise for the bench process; "
            "medians over rounds; overhead = median total minus the adapter called in-process"
        ),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "server_bench.json").write_text(json.dumps(result, indent=2))

    console = Console()
    table = Table(title=f"/v1 streaming, fake model, before ({args.baseline}) and after")
    for col in ("", *rounds, "after/before"):
        table.add_column(col, justify="right")
    for key in rows["before"]:
        cells = [rows[v][key] for v in rounds]
        ratio = f"{cells[-1] / cells[0]:.2f}" if cells[0] else "-"
        table.add_row(key, *(f"{c:.2f}" for c in cells), ratio)
    console.print(table)
    console.print(
        f"adapter called directly: {adapter_ms:.3f} ms; service code, no HTTP: "
        f"{med(service):.3f} ms"
    )
    for name, got in agent.items():
        x = got["load"]
        console.print(
            f"spud-agent {name}: TTFB {got['ttfb_ms']:.1f} ms, total {got['total_ms']:.1f} ms; "
            f"{x['clients']} at once: ok {x['ok']}, errors {x['errors']}, p50 {x['p50_ms']} ms, "
            f"p95 {x['p95_ms']} ms"
        )
    console.print(f"JSON: {RESULTS / 'server_bench.json'}")


if __name__ == "__main__":
    main()
