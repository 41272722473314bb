"""Opens a model by name (registry, openai:, anthropic:, replay:, .gguf); starts a model server."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from spud.config import Settings
from spud.core.errors import ModelNotFound
from spud.core.protocols import Model
from spud.models.registry import REGISTRY, Progress, pull

if TYPE_CHECKING:
    from spud.models.model_server import ModelServer


def load_model(name: str, settings: Settings, progress: Progress | None = None) -> Model:
    """Open the model called name; unknown names and corrupt files are clear errors."""
    out = settings.limits.max_output_tokens
    if name.startswith("openai:"):
        from spud.models.openai_compat import OpenAICompatModel

        return OpenAICompatModel(
            name.removeprefix("openai:"),
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            temperature=settings.temperature,
        )
    if name.startswith("anthropic:"):
        from spud.models.anthropic import AnthropicModel

        return AnthropicModel(
            name.removeprefix("anthropic:"),
            api_key=settings.anthropic_api_key,
        )
    if name.startswith("replay:"):
        from spud.models.replay import ReplayModel

        return ReplayModel.from_file(Path(name.removeprefix("replay:")))
    if name in REGISTRY:
        spec = REGISTRY[name]
        path = pull(spec, settings.model_cache, progress)
        window = min(settings.context_window, spec.context_window)
        return _local(path, name, window, settings, out, spec.drafts, name == settings.model)
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ModelNotFound(f"model file {path} does not exist")
        shared = name == settings.model
        return _local(path, path.stem, settings.context_window, settings, out, shared=shared)
    known = ", ".join(REGISTRY)
    raise ModelNotFound(
        f"unknown model {name!r}: use one of {known}, a .gguf path, openai:MODEL, "
        "anthropic:MODEL or replay:FILE"
    )


def _local(
    path: Path,
    name: str,
    window: int,
    settings: Settings,
    out: int,
    drafts: bool = True,
    shared: bool = False,
) -> Model:
    """The GGUF in this process, or (shared: the configured model, with a model server set) on
    the llama.cpp server that serves it to every worker."""
    from spud.models.local import LocalModel

    options = dict(
        context_window=window,
        threads=settings.threads,
        lookahead=settings.lookahead,
        temperature=settings.temperature,
        max_output_tokens=out,
        max_calls=settings.max_calls_per_reply,
        drafts=drafts,
    )
    try:
        if shared and settings.model_server.startswith(("http://", "https://")):
            from spud.models.served import ServedModel

            return ServedModel(settings.model_server, path, name, **options)
        return LocalModel(path, name, **options)
    except ValueError as exc:  # llama.cpp could not read the file
        raise ModelNotFound(f"cannot load model file {path}: {exc}") from None


def start_model_server(settings: Settings, log_file: Path | None = None) -> ModelServer:
    """Start one supervised llama.cpp server for the configured embedded model (the caller
    points settings.model_server at its URL); ModelNotFound when the model is not a GGUF."""
    from spud.models.model_server import ModelServer

    name = settings.model
    if name in REGISTRY:
        spec = REGISTRY[name]
        path, alias = pull(spec, settings.model_cache), name
        window = min(settings.context_window, spec.context_window)
    elif name.endswith(".gguf") and Path(name).expanduser().is_file():
        path = Path(name).expanduser()
        alias, window = path.stem, settings.context_window
    else:
        raise ModelNotFound(
            f"a model server serves an embedded model (a registered name or a .gguf file), "
            f"not {name!r}"
        )
    return ModelServer(path, alias, window, settings.threads, log_file=log_file).start()
