"""Sender configuration from the environment (``SENDER_*``), validated at start."""

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


def check_secret(secret: SecretStr | None, insecure_dev: bool, env_name: str) -> None:
    """Refuse a missing or weak secret unless insecure development mode is on."""
    if secret is None:
        if not insecure_dev:
            raise ValueError(
                f"{env_name} is not set; set a shared secret (at least {MIN_SECRET_BYTES} bytes), "
                f"or set {env_name.rsplit('_', 1)[0]}_INSECURE_DEV=1 for local development only"
            )
        return
    raw = secret.get_secret_value()
    if raw.lower() in WEAK_SECRETS:
        raise ValueError(f"{env_name} is a well-known default ({raw!r}); choose a random secret")
    if len(secret_key(raw)) < MIN_SECRET_BYTES and not insecure_dev:
        raise ValueError(f"{env_name} is too short; use at least {MIN_SECRET_BYTES} bytes")


def webhook_url(url: str) -> str:
    """The receiver's bundle endpoint: a bare ``http://host:port`` gets ``/v1/bundles`` appended."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"receiver URL must be an absolute http(s) URL, got {url!r}")
    return url.rstrip("/") + "/v1/bundles" if parts.path in ("", "/") else url


class SenderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SENDER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    receiver_url: str = "http://127.0.0.1:8001"
    allow_receiver_override: bool = True
    secret: SecretStr | None = None
    insecure_dev: bool = False
    data_dir: Path = Path("data/sender")
    # Limits on uploads.
    max_request_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    max_images: int = Field(default=64, gt=0)
    max_pixels: int = Field(default=50_000_000, gt=0)
    max_budget_seconds: float = Field(default=3600.0, gt=0)
    default_budget_seconds: float = Field(default=60.0, gt=0)
    # Work and delivery.
    workers: int = Field(default=1, ge=1, le=16)
    delivery_workers: int = Field(default=2, ge=1, le=16)
    device: str = "auto"
    # Perceptual objective: VGG19 features (.safetensors) for the content loss. A path on this
    # server, set by its operator only; clients choose objective=perceptual, never a file.
    vgg_weights: Path | None = None
    delivery_deadline_seconds: float = Field(default=3600.0, gt=0)
    delivery_backoff_seconds: float = Field(default=0.5, gt=0)
    delivery_backoff_max_seconds: float = Field(default=60.0, gt=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    request_timeout_seconds: float = Field(default=120.0, gt=0)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("receiver_url")
    @classmethod
    def _url(cls, v: str) -> str:
        webhook_url(v)
        return v

    @field_validator("vgg_weights", mode="before")
    @classmethod
    def _vgg_unset(cls, v: object) -> object:
        return None if v == "" else v  # SENDER_VGG_WEIGHTS= (empty) means unset

    @field_validator("vgg_weights")
    @classmethod
    def _vgg(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError(f"SENDER_VGG_WEIGHTS={str(v)!r} is not a file (a VGG19 .safetensors is expected)")
        return v

    @model_validator(mode="after")
    def _secret(self) -> SenderSettings:
        check_secret(self.secret, self.insecure_dev, "SENDER_SECRET")
        return self

    @property
    def secret_value(self) -> str | None:
        return None if self.secret is None else self.secret.get_secret_value()


@functools.lru_cache(maxsize=1)
def get_settings() -> SenderSettings:
    return SenderSettings()
