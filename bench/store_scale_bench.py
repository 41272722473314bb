"""How many agent steps a second the store takes from concurrent sessions: SQLite and PostgreSQL.

W threads share one SqlStore (as the worker threads of one `spud serve` do), each appending
the messages of its own session as fast as it can for a fixed time: per step an assistant
message with one tool call and its tool result, the step's last append durable (the store's
rule). PostgreSQL is Debian's 15, started here by tests/pg_server.py, but with fsync and
synchronous commit ON (the tests' server turns them off), so each step waits for the disk.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import OperationalError

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "tests"))

import pg_server  # noqa: E402

from spud.core.messages import Message, ToolCall  # noqa: E402
from spud.store.sql import SqlStore  # noqa: E402


def load(url: str, writers: int, seconds: float) -> dict[str, Any]:
    store = SqlStore(url)
    sessions = [store.create_session(f"bench {i}", "/tmp", "replay") for i in range(writers)]
    latencies: list[list[float]] = [[] for _ in range(writers)]
    appended, errors = [0] * writers, [0] * writers
    stop = time.monotonic() + seconds

    def write(i: int) -> None:
        sid, n = sessions[i], 0
        while time.monotonic() < stop:
            call = ToolCall(name="bash", arguments={"command": f"echo step {n}"})
            result = Message(role="tool", tool_call_id=call.id, name="bash", content=f"step {n}")
            t = time.perf_counter()
            try:
                for message in (Message(role="assistant", tool_calls=[call]), result):
                    store.append(sid, message)
                    appended[i] += 1
            except OperationalError:  # e.g. SQLite's "database is locked" after busy_timeout
                errors[i] += 1
                continue
            latencies[i].append(time.perf_counter() - t)
            n += 1

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for i, sid in enumerate(sessions):  # every step stored, in order
        kept = store.messages(sid)
        assert len(kept) == appended[i], (len(kept), appended[i])
    store.close()
    every = sorted(x for lat in latencies for x in lat) or [float("nan")]
    return {
        "writers": writers,
        "steps": len(every),
        "errors": sum(errors),
        "steps_per_s": len(every) / wall,
        "p50_ms": 1000 * statistics.median(every),
        "p95_ms": 1000 * every[int(0.95 * (len(every) - 1))],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", default="1,4,16", help="concurrent sessions, comma-separated")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    counts = [int(x) for x in args.writers.split(",")]
    pg_server.FAST = "-c max_connections=300"  # durable: fsync and synchronous commit on
    pg = pg_server.PostgresServer().start()
    tmp = Path(tempfile.mkdtemp(prefix="store-bench-"))
    rows = []
    try:
        for w in counts:
            rows.append(
                {"store": "sqlite file", **load(f"sqlite:///{tmp}/s{w}.db", w, args.seconds)}
            )
            rows.append({"store": "postgresql", **load(pg.create_database(), w, args.seconds)})
    finally:
        pg.stop()
    result = {
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "niceness": os.nice(0),
        "seconds": args.seconds,
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "store_scale_bench.json").write_text(json.dumps(result, indent=2))
    table = Table(title="agent steps stored per second (2 appends each, the last one durable)")
    for col in ("store", "sessions", "steps/s", "p50 ms", "p95 ms", "failed steps"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["store"],
            str(r["writers"]),
            f"{r['steps_per_s']:.0f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p95_ms']:.1f}",
            str(r["errors"]),
        )
    Console().print(table)
    print(f"load average {result['loadavg']}; JSON in {RESULTS / 'store_scale_bench.json'}")


if __name__ == "__main__":
    main()
