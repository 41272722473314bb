"""Server settings from SPUD_SERVER_* variables (and `spud serve` options)."""

from __future__ import annotations

from datetime import time

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    """Where the server listens and how it runs tasks."""

    model_config = SettingsConfigDict(env_prefix="SPUD_SERVER_")

    host: str = "127.0.0.1"
    port: int = 8420
    workers: int = Field(default=4, ge=1, le=64)  # agent worker threads
    models: list[str] = Field(default_factory=list)  # extra model names offered by /v1
    approval_timeout_s: float = 600.0  # an unanswered approval is denied after this
    max_body_bytes: int = 4_000_000  # larger request bodies get 413
    model_delay_s: float = 0.0  # sleep before each model call (a slow fake model in tests)
    admin_password: str | None = None  # first-run admin password (random when unset)
    cookie_secure: bool = False  # set the Secure flag (behind HTTPS)
    nightly_sleep: bool = True  # run the memory sleep every night
    sleep_at: time = time(3, 0)  # local time of the nightly memory sleep
