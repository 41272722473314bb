"""Query embedding latency, torch against ONNX Runtime (and int8 ONNX), in one process.

embed_query p50/p95 over distinct short queries, each timed on every backend in turn (the
order alternating), so load on a shared machine falls on all alike; the ratio is the result.
Also: batch throughput, the cosine between the backends' vectors, and the first use's export
time and file size (into a fresh temporary cache). Table and bench/results/embed_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from recall_latency import distractors, pct, planted  # noqa: E402

from spud.memory.embed import Embedder, model_dir  # noqa: E402
from spud.memory.onnx_embed import OnnxEncoder  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 140)


def queries(n: int) -> list[str]:
    """n distinct short questions: the recall bench's, then made-up ones (seeded)."""
    out = [q for _, q in planted()]
    rng = random.Random(1)
    words = "who what where when which office code password moved booked team day city".split()
    while len(out) < n:
        q = " ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) + "?"
        if q not in out:
            out.append(q)
    return out[:n]


def int8_encoder(fp32: OnnxEncoder, threads: int, folder: Path) -> OnnxEncoder:
    """The same graph with dynamically quantised int8 weights, in its own session."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = folder / "int8.onnx"
    quantize_dynamic(str(fp32.path), str(path), weight_type=QuantType.QInt8)
    encoder = OnnxEncoder.__new__(OnnxEncoder)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    encoder.path, encoder.tokenizer = path, fp32.tokenizer
    encoder.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1024, help="texts for the batch rows")
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t, cpu = time.perf_counter(), time.process_time()
        onnx = Embedder(args.threads, batch_size=256, cached_queries=0, cache=Path(tmp))
        encoder = onnx.encoder
        if encoder is None:
            sys.exit("ONNX Runtime could not be used (see the log line above)")
        first_use_s, size = time.perf_counter() - t, encoder.path.stat().st_size
        first_use_cpu_s = time.process_time() - cpu  # the wall time follows the machine's load
        torch = Embedder(args.threads, batch_size=256, cached_queries=0, backend="torch")
        backends = {"torch": torch, "onnx": onnx}  # embed_query itself, its cache kept empty
        if not args.no_int8:
            quant = int8_encoder(encoder, args.threads, Path(tmp))

            class Int8(Embedder):
                encoder = property(lambda self: quant)

            backends["onnx int8"] = Int8(args.threads, cached_queries=0, cache=Path(tmp))
        qs = queries(args.queries)
        for q in ["warm up", "a second warm up query", "and a third"]:
            for e in backends.values():
                e.embed_query(q)
        names = list(backends)
        times: dict[str, list[float]] = {name: [] for name in names}
        vectors: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for i, q in enumerate(qs):
            for name in names if i % 2 == 0 else names[::-1]:
                t = time.perf_counter()
                v = backends[name].embed_query(q)
                times[name].append(time.perf_counter() - t)
                vectors[name].append(v)
        texts = distractors(args.batch, seed=2)
        batch_s = {}
        for name, e in (("torch", torch), ("onnx", onnx)):
            t = time.perf_counter()
            batch_vectors = e.embed(texts)
            batch_s[name] = time.perf_counter() - t
            vectors[f"{name} batch"] = list(batch_vectors)
    ref = np.stack(vectors["torch"])
    rows = []
    for name in names:
        ms = [1000 * x for x in times[name]]
        cos = (np.stack(vectors[name]) * ref).sum(1)
        rows.append(
            {
                "backend": name,
                "p50_ms": statistics.median(ms),
                "p95_ms": pct(ms, 95),
                "cosine_min_vs_torch": float(cos.min()),
            }
        )
    base = rows[0]
    for r in rows:
        r["p50_ratio"], r["p95_ratio"] = base["p50_ms"] / r["p50_ms"], base["p95_ms"] / r["p95_ms"]
    batch_cos = (np.stack(vectors["onnx batch"]) * np.stack(vectors["torch batch"])).sum(1)
    result = {
        "rows": rows,
        "batch": {
            "texts": args.batch,
            "batch_size": 256,
            "torch_texts_per_s": args.batch / batch_s["torch"],
            "onnx_texts_per_s": args.batch / batch_s["onnx"],
            "cosine_min": float(batch_cos.min()),
        },
        "first_use_export_s": first_use_s,
        "first_use_export_cpu_s": first_use_cpu_s,
        "onnx_file_bytes": size,
        "queries": len(qs),
        "threads": args.threads,
        "model_dir": model_dir(),
        "load_1min": os.getloadavg()[0],
        "nice": os.nice(0),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "embed_latency.json").write_text(json.dumps(result, indent=1))
    table = Table(title=f"embed_query, {len(qs)} distinct queries, {args.threads} thread(s)")
    for col in ("backend", "p50 ms", "p95 ms", "p50 ×", "p95 ×", "cosine min vs torch"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["backend"], f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}",
                      f"{r['p50_ratio']:.2f}", f"{r['p95_ratio']:.2f}",
                      f"{r['cosine_min_vs_torch']:.6f}")  # fmt: skip
    console.print(table)
    b = result["batch"]
    console.print(
        f"batch of {b['texts']}: torch {b['torch_texts_per_s']:.0f}/s, ONNX "
        f"{b['onnx_texts_per_s']:.0f}/s (cosine min {b['cosine_min']:.6f}); first use "
        f"(export + session) {first_use_s:.1f} s ({first_use_cpu_s:.1f} s CPU), "
        f"file {size / 1e6:.1f} MB; load {result['load_1min']:.1f}"
    )


if __name__ == "__main__":
    main()
