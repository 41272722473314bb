"""Spud's one typed configuration object, read from a TOML file and SPUD_* variables."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from spud.browser_policy import BrowserPolicy
from spud.core.run import Limits


class Price(BaseModel):
    """What a model costs: USD per million prompt and completion tokens, and per model second."""

    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)
    per_second: float = Field(0.0, ge=0)  # e.g. a local model's machine time, if you charge it


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir("spud"))


def cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("spud"))


class Settings(BaseSettings):
    """Everything configurable; env vars SPUD_<FIELD> override the config file."""

    model_config = SettingsConfigDict(env_prefix="SPUD_", env_nested_delimiter="__")

    home: Path = Field(default_factory=data_dir)
    model_cache: Path = Field(default_factory=lambda: cache_dir() / "models")
    db_url: str = ""
    model: str = "qwen2.5-coder-1.5b"  # chosen by measurement (docs/eval.md)
    context_window: int = 8192
    threads: int = 0  # 0: all cores
    temperature: float = 0.0
    # embedded model: up to this many tokens guessed from the prompt and checked in one decode
    # (speculative decoding by prompt lookup; 0: off); see docs/benchmarks.md
    lookahead: int = Field(16, ge=0, le=64)
    # where the embedded (GGUF) model runs: "" in each process; "start": `spud serve` starts one
    # llama.cpp server for it and supervises it; or the URL of such a server, shared by workers
    model_server: str = ""
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    anthropic_api_key: str | None = None
    sandbox_timeout_s: float = 60.0
    sandbox_memory_mb: int = 2048
    sandbox_network: bool = False
    policy_file: Path | None = None
    tools: list[str] = Field(default_factory=list)  # extra tool sets: "office", "browser"
    playbook: str = ""  # "" picks one from the task; "none" runs the general loop only
    max_calls_per_reply: int = Field(1, ge=1, le=4)  # embedded model: tool calls per reply
    effort: str = "low"  # low | medium | high: candidate runs when a task's checks fail
    browser_policy: BrowserPolicy = Field(default_factory=BrowserPolicy)
    limits: Limits = Field(default_factory=Limits)
    prices: dict[str, Price] = Field(default_factory=dict)  # by model name; over spud.models.prices
    # where background tasks and `spud eval` tasks run: "in-process" threads or "ray" workers
    executor: Literal["in-process", "ray"] = "in-process"
    ray_address: str = ""  # "" starts Ray on this machine; "auto" or "ray://host:10001" joins one

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home / 'spud.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))


class _TomlSource(PydanticBaseSettingsSource):
    """Reads $SPUD_CONFIG or <config dir>/config.toml when it exists."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        import os

        path = Path(os.environ.get("SPUD_CONFIG", platformdirs.user_config_dir("spud")))
        if path.is_dir():
            path = path / "config.toml"
        if not path.is_file():
            return {}
        try:
            return tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            from spud.core.errors import ConfigError

            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
