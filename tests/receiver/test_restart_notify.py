"""Receiver restarts resume reconstruction; the optional notification is signed and delivered."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

import receiver.worker
from common.webhooks import signed_headers, verify
from receiver.app import create_app
from receiver.settings import ReceiverSettings
from tests.receiver.test_api import wait_reconstructed
from tests.sender.servers import SECRET, ServerThread, free_port


def test_received_bundles_are_reconstructed_after_a_restart(
        tmp_path: Path, jpeg_bundle: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ReceiverSettings(secret=SECRET, data_dir=tmp_path / "r")
    with monkeypatch.context() as m:
        m.setattr(receiver.worker.ReconstructWorker, "enqueue", lambda self, bid: None)  # "crash" before work
        with TestClient(create_app(settings)) as c:
            bid = c.post("/v1/bundles", content=jpeg_bundle, headers=signed_headers(SECRET, jpeg_bundle)).json()["id"]
            assert c.get(f"/v1/bundles/{bid}").json()["status"] == "received"
    with TestClient(create_app(settings)) as c:
        assert wait_reconstructed(c, bid)["status"] == "reconstructed"
        assert c.get(f"/v1/bundles/{bid}/images/one").status_code == 200


def test_notification_is_signed(tmp_path: Path, jpeg_bundle: bytes) -> None:
    seen: list[dict[str, Any]] = []
    hook = FastAPI()

    @hook.post("/hook")
    async def record(request: Request) -> dict[str, str]:
        body = await request.body()
        verify(SECRET, request.headers, body)
        seen.append(await request.json())
        return {"ok": "yes"}

    port = free_port()
    settings = ReceiverSettings(secret=SECRET, data_dir=tmp_path / "r", notify_url=f"http://127.0.0.1:{port}/hook")
    with ServerThread(hook, port), TestClient(create_app(settings)) as c:
        bid = c.post("/v1/bundles", content=jpeg_bundle, headers=signed_headers(SECRET, jpeg_bundle)).json()["id"]
        wait_reconstructed(c, bid)
        end = time.monotonic() + 10
        while not seen and time.monotonic() < end:
            time.sleep(0.05)
    assert seen == [{"type": "bundle.reconstructed", "id": bid, "status": "reconstructed", "error": None,
                     "url": f"/v1/bundles/{bid}"}]
