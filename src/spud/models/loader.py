"""Picks a model adapter by name: registry, openai:, anthropic:, replay: or a .gguf path."""

from __future__ import annotations

from pathlib import Path

from spud.config import Settings
from spud.core.errors import ModelNotFound
from spud.core.protocols import Model
from spud.models.registry import REGISTRY, Progress, pull


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
        return _local(path, name, window, settings, out, spec.drafts)
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ModelNotFound(f"model file {path} does not exist")
        return _local(path, path.stem, settings.context_window, settings, out)
    known = ", ".join(REGISTRY)
    raise ModelNotFound(
        f"unknown model {name!r}: use one of {known}, a .gguf path, openai:MODEL, "
        "anthropic:MODEL or replay:FILE"
    )


def _local(
    path: Path, name: str, window: int, settings: Settings, out: int, drafts: bool = True
) -> Model:
    from spud.models.local import LocalModel

    try:
        return LocalModel(
            path,
            name,
            context_window=window,
            threads=settings.threads,
            temperature=settings.temperature,
            max_output_tokens=out,
            max_calls=settings.max_calls_per_reply,
            drafts=drafts,
        )
    except ValueError as exc:  # llama.cpp could not read the file
        raise ModelNotFound(f"cannot load model file {path}: {exc}") from None
