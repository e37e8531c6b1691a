"""Receiver configuration from the environment (``RECEIVER_*``), validated at start."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.webhooks import secret_key

WEAK_SECRETS = frozenset({"changethis", "changeme", "secret", "password", "test"})
MIN_SECRET_BYTES = 16


class ReceiverSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECEIVER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=0, le=65535)
    secret: SecretStr | None = None
    # Older secrets still accepted during a key rotation (space-separated).
    previous_secrets: SecretStr | None = None
    insecure_dev: bool = False
    data_dir: Path = Path("data/receiver")
    timestamp_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    # Limits on bundles (checked before anything is parsed or stored).
    max_bundle_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    max_header_bytes: int = Field(default=1024 * 1024, gt=0)
    max_images: int = Field(default=256, gt=0)
    max_pixels: int = Field(default=50_000_000, gt=0)
    workers: int = Field(default=1, ge=1, le=16)
    notify_url: str | None = None
    notify_deadline_seconds: float = Field(default=60.0, gt=0)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("notify_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v:
            parts = urlsplit(v)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"RECEIVER_NOTIFY_URL must be an absolute http(s) URL, got {v!r}")
        return v or None

    @model_validator(mode="after")
    def _secret(self) -> ReceiverSettings:
        for name, value in (("RECEIVER_SECRET", self.secret), ("RECEIVER_PREVIOUS_SECRETS", self.previous_secrets)):
            for raw in value.get_secret_value().split() if value is not None else []:
                if raw.lower() in WEAK_SECRETS:
                    raise ValueError(f"{name} is a well-known default ({raw!r}); choose a random secret")
                if len(secret_key(raw)) < MIN_SECRET_BYTES and not self.insecure_dev:
                    raise ValueError(f"{name} is too short; use at least {MIN_SECRET_BYTES} bytes")
        if self.secret is None and not self.insecure_dev:
            raise ValueError(
                f"RECEIVER_SECRET is not set; set the secret shared with the sender (at least {MIN_SECRET_BYTES} "
                "bytes), or set RECEIVER_INSECURE_DEV=1 for local development only"
            )
        return self

    def secrets(self) -> list[str]:
        """Every accepted signing secret, current first; empty only in insecure development mode."""
        out = [] if self.secret is None else [self.secret.get_secret_value()]
        if self.previous_secrets is not None:
            out += self.previous_secrets.get_secret_value().split()
        return out


@functools.lru_cache(maxsize=1)
def get_settings() -> ReceiverSettings:
    return ReceiverSettings()
