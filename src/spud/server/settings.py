"""Server settings from SPUD_SERVER_* variables (and `spud serve` options)."""

from __future__ import annotations

import ipaddress
from datetime import time
from pathlib import Path

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
    cookie_secure: bool = False  # always set the Secure flag (it is set anyway over HTTPS)
    ssl_certfile: str | None = None  # serve HTTPS directly (with ssl_keyfile)
    ssl_keyfile: str | None = None
    trust_proxy: bool = False  # believe X-Forwarded-For / -Proto (only behind your own proxy)
    signin_account_failures: int = Field(default=5, ge=1)  # per account in signin_window_s
    signin_address_failures: int = Field(default=20, ge=1)  # per client address, any accounts
    signin_window_s: float = Field(default=900.0, gt=0)
    signin_lockout_s: float = Field(default=900.0, gt=0)  # how long a lockout lasts
    nightly_sleep: bool = True  # run the memory sleep every night
    sleep_at: time = time(3, 0)  # local time of the nightly memory sleep
    learning_results: Path = Path("bench/results/learning.json")  # bench/learning's, for /learning

    def plain_http_warning(self) -> str | None:
        """A warning when passwords and cookies would cross a network unencrypted."""
        if self.ssl_certfile or self.trust_proxy or _loopback(self.host):
            return None
        return (
            f"Spud listens on {self.host} over plain HTTP: passwords, API keys and sign-in "
            "cookies cross the network readable. Serve it over HTTPS (SPUD_SERVER_SSL_CERTFILE "
            "and SPUD_SERVER_SSL_KEYFILE, or a proxy with SPUD_SERVER_TRUST_PROXY=true) or "
            "listen on 127.0.0.1."
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
