"""The embedder's ONNX Runtime path against torch's: same vectors, a safe export, a clear fallback."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from spud.memory import onnx_embed
from spud.memory.embed import Embedder, model_dir

WHO = "Ana Ben Chen Dara Eli Femi Gus Hana Ivo Jude Kai Lena Milo Nia Omar".split()
VERBS = ["moved", "asked about", "prefers", "booked", "cancelled", "reviewed", "renamed"]
THINGS = ["wifi password", "door code", "printer name", "parking spot", "vpn host"]
TEXTS = (
    [
        "hello world",
        "What is the secret project of team Ana 3 called?",
        "The wifi password at the Lisbon office is ana-1234",
        "Ben moved the door code in Porto on day 17",
        "  leading and trailing spaces  ",
        "",
        "a",
        "UPPER CASE SHOUTING ABOUT THE BUILD SERVER",
        "Ünïcödé naïve café résumé, Zürich",
        "日本語のテキストと中文文本",
        "emoji 🎉🚀 in a sentence",
        "tabs\tand\nnewlines\r\nmixed",
        "def add(a, b):\n    return a + b",
        "SELECT id, text FROM memories WHERE owner = 'u' ORDER BY id;",
        "https://example.org/path?query=1&other=two#frag",
        "3.14159 2.71828 1.41421 numbers only 42",
        "The meeting room in Oslo is booked by Chen every Tuesday at 10:00.",
        "I prefer tea over coffee, and my desk is number 14.",
        "word " * 300,  # past the 256-token limit: truncated alike
        "long sentence " + "with many clauses, " * 60,
    ]
    + [
        f"{WHO[i % len(WHO)]} {VERBS[i % len(VERBS)]} the {THINGS[i % len(THINGS)]} on day {27 * i}"
        for i in range(25)
    ]
    + [f"question {i}: where is the {w}?" for i, w in enumerate("key pen map cup hat".split())]
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embed-cache")


def test_onnx_vectors_match_torch(cache: Path):
    assert len(TEXTS) >= 50
    onnx = Embedder(threads=1, cache=cache, cached_queries=0)
    torch = Embedder(threads=1, backend="torch")
    assert onnx.encoder is not None, "ONNX Runtime should be usable here"
    assert list(cache.glob("*.onnx")) == [onnx.encoder.path]
    want = torch.embed(TEXTS)
    batch = onnx.embed(TEXTS)  # sorted into padded batches
    single = np.stack([onnx.embed_query(t) for t in TEXTS])
    for got in (batch, single):
        assert got.shape == want.shape and got.dtype == np.float32
        assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
        assert (got * want).sum(1).min() >= 0.9999


def test_export_is_reused_and_keyed_by_the_weights(cache: Path, tmp_path: Path, monkeypatch):
    assert Embedder(threads=1, cache=cache).encoder is not None  # exported above, or now
    monkeypatch.setattr(onnx_embed, "export", lambda *a: pytest.fail("exported again"))
    onnx_embed.OnnxEncoder(Path(model_dir()), cache, 2)
    fake = tmp_path / "model"
    fake.mkdir()
    (fake / "model.safetensors").write_bytes(b"weights")
    first = onnx_embed.export_path(fake, cache)
    os.utime(fake / "model.safetensors", ns=(0, 10**9))
    assert onnx_embed.export_path(fake, cache) != first


def test_a_crash_mid_export_leaves_no_file_and_falls_back(tmp_path: Path, monkeypatch, caplog):
    import torch

    def crash(model, args, f, **kwargs):
        Path(f).write_bytes(b"half a graph")
        raise RuntimeError("killed mid-export")

    monkeypatch.setattr(torch.onnx, "export", crash)
    embedder = Embedder(threads=1, cache=tmp_path)
    with caplog.at_level(logging.WARNING, logger="spud.memory.embed"):
        assert embedder.encoder is None
        vector = embedder.embed_query("the torch path still answers")
    assert list(tmp_path.iterdir()) == []
    assert [r.getMessage() for r in caplog.records if "torch" in r.getMessage()] == [
        "memory: embedding with torch, not ONNX Runtime: RuntimeError('killed mid-export')"
    ]
    want = Embedder(threads=1, backend="torch").embed(["the torch path still answers"])[0]
    assert np.allclose(vector, want)


def test_without_onnxruntime_the_torch_path_runs(tmp_path: Path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    embedder = Embedder(threads=1, cache=tmp_path)
    with caplog.at_level(logging.WARNING, logger="spud.memory.embed"):
        assert embedder.embed(["one", "two"]).shape == (2, 384)
        embedder.embed(["three"])
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "onnxruntime" in lines[0]
