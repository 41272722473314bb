"""The embedded model served by one llama.cpp server: the local adapter, completions over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from spud.core.errors import ModelError
from spud.models.local import LocalModel

# How long a request waits for a server that is down (being restarted by its supervisor).
RECONNECT_S = 90.0
# The server went away (refused, or closed mid-answer): worth asking again once it is back. A
# timeout is not: the request may still be running there, and asking again would queue it twice.
GONE = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class LlamaServerEngine:
    """The part of llama-cpp-python's Llama that LocalModel uses, answered by a llama.cpp server.

    Prompts are tokenized here with the model's vocabulary alone (no weights, a few MB), so
    counting tokens never waits behind another session's generation on the server. Completions
    go to the server's /v1/completions with the GBNF grammar as text (llama.cpp's `grammar`
    field), so replies are constrained exactly as in-process.
    """

    def __init__(self, url: str, path: Path, model: str, timeout_s: float = 1800.0) -> None:
        import llama_cpp
        from llama_cpp._internals import LlamaModel as LlamaWeights

        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self.vocab = LlamaWeights(path_model=str(path), params=params, verbose=False)
        self.url = url.rstrip("/")
        self.model = model
        self.http = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=5.0))

    def tokenize(self, text: bytes, add_bos: bool = False, special: bool = True) -> list[int]:
        return self.vocab.tokenize(text, add_bos, special)

    def detokenize(self, tokens: list[int]) -> str:
        return self.vocab.detokenize(tokens, special=True).decode("utf-8", errors="replace")

    def create_completion(
        self, prompt: list[int] | str, stream: bool = False, **settings: Any
    ) -> Any:
        """llama-cpp-python's completion dict (or, streamed, its chunks) from the server."""
        body = {"model": self.model, "stream": stream, **settings}
        body["prompt"] = prompt if isinstance(prompt, str) else self.detokenize(prompt)
        if body.get("grammar") is None:
            body.pop("grammar", None)
        if stream:
            return self._stream(body)
        return self._retrying(lambda: self._post(body))

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(f"{self.url}/v1/completions", json=body)
        if r.status_code != 200:
            raise ModelError(f"the model server answered {r.status_code}: {r.text[:300]}")
        return r.json()

    def _stream(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        started = time.monotonic()
        while True:
            sent = False
            try:
                with self.http.stream("POST", f"{self.url}/v1/completions", json=body) as r:
                    if r.status_code != 200:
                        raise ModelError(
                            f"the model server answered {r.status_code}: {r.read()[:300]!r}"
                        )
                    for line in r.iter_lines():
                        data = line.removeprefix("data:").strip()
                        if not line.startswith("data:") or not data:
                            continue
                        if data == "[DONE]":
                            return
                        sent = True
                        yield json.loads(data)
                return
            except httpx.TimeoutException as exc:
                raise ModelError(f"the model server at {self.url} timed out: {exc}") from None
            except GONE as exc:
                # pieces already handed on cannot be taken back: only a request that has
                # produced nothing yet waits for the server to come back
                if sent or time.monotonic() - started > RECONNECT_S:
                    raise ModelError(f"the model server at {self.url} failed: {exc}") from None
                time.sleep(1.0)

    def _retrying(self, call: Any) -> Any:
        """call(), again while the server cannot be reached, for up to RECONNECT_S."""
        started = time.monotonic()
        while True:
            try:
                return call()
            except httpx.TimeoutException as exc:
                raise ModelError(f"the model server at {self.url} timed out: {exc}") from None
            except GONE as exc:
                if time.monotonic() - started > RECONNECT_S:
                    raise ModelError(f"the model server at {self.url} failed: {exc}") from None
                time.sleep(1.0)


class ServedModel(LocalModel):
    """The embedded model's adapter (ChatML prompt, grammar-constrained calls, drafts) run by a
    shared llama.cpp server instead of weights loaded into this process."""

    def __init__(self, url: str, path: Path, name: str, **options: Any) -> None:
        self.url = url
        super().__init__(path, name, **options)

    def _open(self, path: Path, context_window: int, threads: int, seed: int) -> Any:
        engine = LlamaServerEngine(self.url, path, self.name)
        served = engine._retrying(lambda: engine.http.get(f"{engine.url}/v1/models").json())
        ids = [m.get("id") for m in served.get("data", [])]
        if self.name not in ids:
            raise ModelError(
                f"the model server at {self.url} serves {', '.join(map(str, ids)) or 'nothing'}, "
                f"not {self.name}"
            )
        return engine

    def _compiled(self, gbnf: str) -> object:
        return gbnf  # the server compiles the grammar's text itself

    def _cached(self, tokens: list[int]) -> int | None:
        return None  # the server's KV cache is shared by every session; it does not say
