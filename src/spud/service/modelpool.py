"""Models shared by the server's worker threads; one llama.cpp instance is used by one at a time."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from spud.config import Settings
from spud.core.messages import Message, ModelReply
from spud.core.protocols import AnsweringModel, Model, OnText, TextModel, ToolSpec
from spud.models.loader import load_model, start_model_server
from spud.models.registry import REGISTRY, model_path

if TYPE_CHECKING:
    from spud.models.model_server import ModelServer


class Cancelled(Exception):
    """A task was cancelled; raised in its worker thread at the next model call."""


class SerializedModel:
    """A model whose calls take a lock first (llama.cpp is not thread-safe); delay for tests."""

    def __init__(self, inner: Model, lock: threading.Lock | None, delay_s: float = 0.0) -> None:
        self.inner = inner
        self.name = inner.name
        self.context_window = inner.context_window
        self.lock = lock
        self.delay_s = delay_s

    def complete(
        self, messages: list[Message], tools: list[ToolSpec], exclude: frozenset[str] = frozenset()
    ) -> ModelReply:
        if self.delay_s:
            time.sleep(self.delay_s)  # a slow fake model, outside the lock
        if self.lock is None:
            return self.inner.complete(messages, tools, exclude)
        with self.lock:
            return self.inner.complete(messages, tools, exclude)

    def answer_or_call(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        exclude: frozenset[str] = frozenset(),
        on_text: OnText | None = None,
    ) -> ModelReply:
        """The inner model's answer or calls (its plain complete when it cannot answer)."""
        if self.delay_s:
            time.sleep(self.delay_s)
        inner = self.inner
        with self.lock or contextlib.nullcontext():
            if isinstance(inner, AnsweringModel):
                return inner.answer_or_call(messages, tools, exclude, on_text)
            return inner.complete(messages, tools, exclude)

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec]) -> int:
        if self.lock is None:
            return self.inner.count_tokens(messages, tools)
        with self.lock:
            return self.inner.count_tokens(messages, tools)

    @property
    def drafts(self) -> bool:
        """Playbooks draft in plain text only when the inner model can and should."""
        return isinstance(self.inner, TextModel) and self.inner.drafts

    def chat(
        self,
        messages: list[Message],
        max_tokens: int = 2048,
        temperature: float | None = None,
        until_block: bool = False,
    ) -> ModelReply:
        if not isinstance(self.inner, TextModel):
            raise TypeError(f"{self.name} does not reply in plain text")
        with self.lock or contextlib.nullcontext():
            return self.inner.chat(messages, max_tokens, temperature, until_block)


class CancellableModel:
    """One task's view of a shared model: raises Cancelled before a step once `stop()` is true."""

    def __init__(self, inner: Model, stop: Callable[[], bool]) -> None:
        self.inner = inner
        self.name = inner.name
        self.context_window = inner.context_window
        self.stop = stop

    def complete(
        self, messages: list[Message], tools: list[ToolSpec], exclude: frozenset[str] = frozenset()
    ) -> ModelReply:
        if self.stop():
            raise Cancelled()
        return self.inner.complete(messages, tools, exclude)

    def answer_or_call(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        exclude: frozenset[str] = frozenset(),
        on_text: OnText | None = None,
    ) -> ModelReply:
        """The inner model's answer or calls; a stop while the answer streams ends it there."""
        if self.stop():
            raise Cancelled()
        if not isinstance(self.inner, AnsweringModel):
            return self.inner.complete(messages, tools, exclude)
        if on_text is None:
            return self.inner.answer_or_call(messages, tools, exclude)
        streamed = on_text

        def checked(piece: str) -> None:
            if self.stop():
                raise Cancelled()  # out of the generation loop: the pieces sent are the answer
            streamed(piece)

        return self.inner.answer_or_call(messages, tools, exclude, checked)

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec]) -> int:
        return self.inner.count_tokens(messages, tools)

    @property
    def drafts(self) -> bool:
        return isinstance(self.inner, TextModel) and self.inner.drafts

    def chat(
        self,
        messages: list[Message],
        max_tokens: int = 2048,
        temperature: float | None = None,
        until_block: bool = False,
    ) -> ModelReply:
        if self.stop():
            raise Cancelled()
        if not isinstance(self.inner, TextModel):
            raise TypeError(f"{self.name} does not reply in plain text")
        return self.inner.chat(messages, max_tokens, temperature, until_block)


class ModelPool:
    """Loads each model once, on first use, and hands out the shared (serialized) instance."""

    def __init__(self, settings: Settings, extra: list[str] | None = None, delay_s: float = 0.0):
        self.settings = settings
        self.extra = list(extra or [])
        self.delay_s = delay_s
        self._models: dict[str, SerializedModel] = {}
        self._lock = threading.Lock()
        self.model_server: ModelServer | None = None  # started when model_server = "start"

    def start_model_server(self) -> str | None:
        """With model_server = "start": start the supervised llama.cpp server for the configured
        model (once) and point the settings, shared with every service, at its URL."""
        if self.settings.model_server != "start":
            return None
        self.model_server = start_model_server(
            self.settings, self.settings.home / "model-server.log"
        )
        self.settings.model_server = self.model_server.url
        return self.model_server.url

    def names(self) -> list[str]:
        """The model names the server offers: the configured one, extra ones, pulled ones."""
        names = [self.settings.model, *self.extra]
        for name, spec in REGISTRY.items():
            if model_path(spec, self.settings.model_cache).is_file():
                names.append(name)
        return list(dict.fromkeys(names))

    def offers(self, name: str) -> bool:
        """Whether names() holds this model; the configured and extra ones without a disk look."""
        if name == self.settings.model or name in self.extra:
            return True
        spec = REGISTRY.get(name)
        return spec is not None and model_path(spec, self.settings.model_cache).is_file()

    def get(self, name: str) -> SerializedModel:
        """The shared instance of a model the server offers (ModelNotFound otherwise)."""
        with self._lock:  # loading twice at once would double the memory
            if name not in self._models:
                self.start_model_server()
                model = load_model(name, self.settings)
                lock = threading.Lock() if _needs_lock(model) else None
                self._models[name] = SerializedModel(model, lock, self.delay_s)
            return self._models[name]

    def close(self) -> None:
        """Stop the model server this pool started, if any."""
        if self.model_server is not None:
            self.model_server.stop()


def _needs_lock(model: Model) -> bool:
    """Weights in this process take turns; a served model's requests queue on its server."""
    from spud.models.local import LocalModel
    from spud.models.served import ServedModel

    return isinstance(model, LocalModel) and not isinstance(model, ServedModel)
