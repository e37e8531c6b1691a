"""docker-compose.yml agrees with the code: services, ports, variable names, volumes, health checks.

Docker cannot run here, so this reads the compose file with a small reader for the YAML subset it
uses (block mappings, ``- item`` lists, JSON-style flow lists, quoted or plain scalars).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from receiver.settings import ReceiverSettings
from sender.settings import SenderSettings

ROOT = Path(__file__).resolve().parents[1]


def load_yaml_subset(text: str) -> Any:
    lines = []
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ValueError(f"tab in indentation: {raw!r}")
        lines.append((len(raw) - len(raw.lstrip(" ")), raw.strip()))
    value, end = _block(lines, 0, lines[0][0])
    if end != len(lines):
        raise ValueError(f"unparsed line {lines[end][1]!r}")
    return value


def _block(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[Any, int]:
    if lines[i][1].startswith("- "):
        items = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            items.append(_scalar(lines[i][1][2:]))
            i += 1
        return items, i
    out: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent:
        key, colon, rest = lines[i][1].partition(":")
        if not colon or key in out or not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
            raise ValueError(f"bad or duplicate key in {lines[i][1]!r}")
        i += 1
        if rest.strip():
            out[key] = _scalar(rest.strip())
        elif i < len(lines) and lines[i][0] > indent:
            out[key], i = _block(lines, i, lines[i][0])
        else:
            out[key] = None
    if i < len(lines) and lines[i][0] > indent:
        raise ValueError(f"unexpected indentation at {lines[i][1]!r}")
    return out, i


def _scalar(text: str) -> Any:
    if text.startswith(("[", '"')):
        return json.loads(text)  # flow lists and quoted strings here are valid JSON
    if text.startswith(("'", "{", "&", "*", "|", ">")) or " #" in text:
        raise ValueError(f"YAML feature outside the supported subset: {text!r}")
    return text


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml_subset((ROOT / "docker-compose.yml").read_text())
    return data


def _arg(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_reader_handles_the_subset() -> None:
    doc = load_yaml_subset('a:\n  b: "x: y"\n  c:\n    - "1:2"\n    - plain\n  d: ["p", "q"]\ne:\n')
    assert doc == {"a": {"b": "x: y", "c": ["1:2", "plain"], "d": ["p", "q"]}, "e": None}
    with pytest.raises(ValueError):
        load_yaml_subset("a: &anchor 1\n")


def test_services_and_image(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"sender", "receiver", "demo-send"}
    for svc in compose["services"].values():
        assert svc["build"] == "." and svc["image"] == "gancodec:latest"
    assert set(compose["volumes"]) == {"sender-data", "receiver-data"}


@pytest.mark.parametrize(("name", "cls", "prefix", "port"), [
    ("sender", SenderSettings, "SENDER_", 8000), ("receiver", ReceiverSettings, "RECEIVER_", 8001)])
def test_service_matches_its_settings(compose: dict[str, Any], name: str, cls: type, prefix: str, port: int) -> None:
    svc = compose["services"][name]
    env: dict[str, str] = svc["environment"]
    fields = {f.upper() for f in cls.model_fields}
    for key in env:
        assert key.startswith(prefix) and key[len(prefix):] in fields, f"{key} is not a {cls.__name__} field"
    assert {f"{prefix}SECRET", f"{prefix}DATA_DIR"} <= set(env)
    assert svc["command"][:3] == ["python", "-m", name]
    assert int(_arg(svc["command"], "--port")) == port == cls.model_fields["port"].default
    assert _arg(svc["command"], "--host") == "0.0.0.0"
    assert svc["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert svc["volumes"] == [f"{name}-data:{env[f'{prefix}DATA_DIR']}"]
    health = " ".join(svc["healthcheck"]["test"])
    assert svc["healthcheck"]["test"][0] == "CMD" and f"http://127.0.0.1:{port}/healthz" in health
    assert svc["restart"] == "unless-stopped"


def test_shared_secret_is_required_and_the_same(compose: dict[str, Any]) -> None:
    s, r = (compose["services"][n]["environment"] for n in ("sender", "receiver"))
    assert s["SENDER_SECRET"] == r["RECEIVER_SECRET"]
    assert s["SENDER_SECRET"].startswith("${GANCODEC_SECRET:?")  # no default secret baked in


def test_sender_reaches_the_receiver_and_demo_reaches_the_sender(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["sender"]["environment"]["SENDER_RECEIVER_URL"] == "http://receiver:8001"
    assert services["sender"]["depends_on"] == {"receiver": {"condition": "service_healthy"}}
    demo = services["demo-send"]
    assert demo["depends_on"] == {"sender": {"condition": "service_healthy"}}
    assert demo["command"][:3] == ["python", "-m", "common.sendcli"]
    assert _arg(demo["command"], "--sender") == "http://sender:8000"
    assert demo["restart"] == "no" and "ports" not in demo
    samples = demo["command"][3]
    assert samples.startswith("/app/")
    assert f"COPY {Path(samples).relative_to('/app').parts[0]} " in (ROOT / "Dockerfile").read_text()
    folder = ROOT / Path(samples).relative_to("/app")
    if not folder.is_dir():
        pytest.skip(f"{folder.relative_to(ROOT)} (the sample images) is not in the repository yet")
    assert any(p.suffix.lower() in (".png", ".jpg", ".jpeg") for p in folder.iterdir())


def test_dockerfile_uses_cpu_torch_and_installs_the_packages() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert re.search(r"pip install torch==[\d.]+ --index-url https://download.pytorch.org/whl/cpu", text)
    for pkg in ("common", "sender", "receiver"):
        assert f"COPY {pkg} ./{pkg}" in text
    assert "USER " in text and 'VOLUME ["/data"]' in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "services.md").read_text()
    for cls, prefix in ((SenderSettings, "SENDER_"), (ReceiverSettings, "RECEIVER_")):
        missing = [f"{prefix}{f.upper()}" for f in cls.model_fields if f"`{prefix}{f.upper()}`" not in doc]
        assert not missing, f"docs/services.md does not mention {missing}"
