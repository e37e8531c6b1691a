"""Service settings: names, secrets refused or required, start commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from receiver.__main__ import main as receiver_main
from receiver.settings import ReceiverSettings
from sender.__main__ import main as sender_main
from sender.settings import SenderSettings, get_settings, webhook_url
from tests.sender.servers import SECRET


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for k in list(os.environ):
        if k.startswith(("SENDER_", "RECEIVER_")):
            monkeypatch.delenv(k)


def test_sender_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SENDER_SECRET", SECRET)
    monkeypatch.setenv("SENDER_RECEIVER_URL", "http://receiver:8001")
    monkeypatch.setenv("SENDER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SENDER_PORT", "9000")
    monkeypatch.setenv("SENDER_WORKERS", "2")
    s = SenderSettings()
    assert (s.secret_value, s.receiver_url, s.data_dir, s.port, s.workers) == (
        SECRET, "http://receiver:8001", tmp_path, 9000, 2)
    assert "whsec" not in repr(s)  # the secret never shows in logs


def test_receiver_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RECEIVER_SECRET", SECRET)
    monkeypatch.setenv("RECEIVER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RECEIVER_PREVIOUS_SECRETS", "old-secret-0123456789 older-secret-0123456789")
    s = ReceiverSettings()
    assert s.secrets() == [SECRET, "old-secret-0123456789", "older-secret-0123456789"]
    assert s.data_dir == tmp_path and s.port == 8001


@pytest.mark.parametrize("cls,name", [(SenderSettings, "SENDER_SECRET"), (ReceiverSettings, "RECEIVER_SECRET")])
def test_no_secret_refuses_to_start(cls, name, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match=f"{name} is not set"):
        cls()
    with pytest.raises(ValidationError, match="well-known default"):
        cls(secret="changethis")
    with pytest.raises(ValidationError, match="too short"):
        cls(secret="short")
    monkeypatch.setenv(name.replace("SECRET", "INSECURE_DEV"), "1")
    assert cls().secret is None  # explicit insecure development mode


def test_receiver_url_forms() -> None:
    assert webhook_url("http://r:8001") == "http://r:8001/v1/bundles"
    assert webhook_url("http://r:8001/") == "http://r:8001/v1/bundles"
    assert webhook_url("https://r/hooks/gancodec") == "https://r/hooks/gancodec"
    with pytest.raises(ValueError, match="absolute http"):
        webhook_url("ftp://r")
    with pytest.raises(ValidationError, match="absolute http"):
        SenderSettings(secret=SECRET, receiver_url="receiver:8001")


def test_get_settings_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDER_SECRET", SECRET)
    get_settings.cache_clear()
    try:
        assert get_settings() is get_settings()
    finally:
        get_settings.cache_clear()


def test_start_commands_refuse_without_secret(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        assert sender_main(["--port", "0"]) == 2
        assert receiver_main(["--port", "0"]) == 2
    finally:  # the start commands configure logging; give pytest its handlers back
        root.handlers[:] = handlers
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "refusing to start: SENDER_SECRET is not set" in err
    assert "refusing to start: RECEIVER_SECRET is not set" in err


def test_vgg_weights_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SENDER_SECRET", SECRET)
    assert SenderSettings().vgg_weights is None  # optional: perceptual then uses discriminator features
    monkeypatch.setenv("SENDER_VGG_WEIGHTS", "")
    assert SenderSettings().vgg_weights is None  # empty means unset
    vgg = tmp_path / "vgg19.safetensors"
    vgg.write_bytes(b"x")
    monkeypatch.setenv("SENDER_VGG_WEIGHTS", str(vgg))
    assert SenderSettings().vgg_weights == vgg
    for bad in (tmp_path / "missing.safetensors", tmp_path):
        monkeypatch.setenv("SENDER_VGG_WEIGHTS", str(bad))
        with pytest.raises(ValidationError, match="SENDER_VGG_WEIGHTS=.* is not a file"):
            SenderSettings()
