"""A stopped sender resumes its jobs (stand-in codec, a recording receiver on real HTTP)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

import sender.worker
from common.webhooks import verify
from sender.app import create_app
from sender.settings import SenderSettings
from tests.sender.servers import SECRET, ServerThread, free_port, png_bytes, tiny_image
from tests.sender.test_api import FakeCodec, wait_status


def recording_receiver(log: list[tuple[dict[str, str], bytes]]) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/bundles")
    async def bundles(request: Request) -> JSONResponse:
        body = await request.body()
        verify(SECRET, request.headers, body)
        log.append((dict(request.headers), body))
        return JSONResponse({"id": "recorded"}, status_code=202)

    return app


@pytest.fixture
def codec(monkeypatch: pytest.MonkeyPatch) -> FakeCodec:
    fake = FakeCodec()
    monkeypatch.setattr(sender.worker, "run_encode", fake)
    return fake


def make_settings(data: Path, port: int) -> SenderSettings:
    return SenderSettings(secret=SECRET, data_dir=data, receiver_url=f"http://127.0.0.1:{port}",
                          delivery_backoff_seconds=0.05, delivery_backoff_max_seconds=0.1)


def stop_soon(event: threading.Event, after: float) -> None:
    threading.Timer(after, event.set).start()


def test_resume_training_and_delivering_jobs(tmp_path: Path, codec: FakeCodec) -> None:
    port = free_port()
    settings = make_settings(tmp_path / "s", port)
    png = png_bytes(tiny_image(1))
    codec.release.clear()
    with TestClient(create_app(settings)) as c:
        training = c.post("/v1/transfers", files=[("files", ("a.png", png))]).json()["id"]
        assert codec.training.wait(10)
        wait_status(c, training, ("training",))
        stop_soon(codec.release, 0.3)  # the stand-in returns from "training" once shutdown has begun
    with TestClient(create_app(settings)) as c:
        # Interrupted mid-training: re-run from the stored uploads; the receiver is down, so it
        # then keeps retrying in 'delivering'.
        j = wait_status(c, training, ("delivering",))
        assert len(codec.calls) == 2
        end = time.monotonic() + 10
        while j["delivery"].get("attempts", 0) < 2 and time.monotonic() < end:
            j = c.get(f"/v1/transfers/{training}").json()
        assert j["status"] == "delivering" and "ConnectError" in j["delivery"]["last_error"]
    log: list[tuple[dict[str, str], bytes]] = []
    with ServerThread(recording_receiver(log), port), TestClient(create_app(settings)) as c:
        j = wait_status(c, training, ("delivered", "failed"))
        assert j["status"] == "delivered" and j["delivery"]["receiver"] == {"id": "recorded"}
    assert len(codec.calls) == 2  # the stored bundle was re-sent, not re-encoded
    assert len(log) == 1
    headers, body = log[0]
    assert body == b"BUNDLE!" and headers["webhook-id"] == j["delivery"]["webhook_id"]


def test_finished_jobs_are_left_alone(tmp_path: Path, codec: FakeCodec) -> None:
    port = free_port()
    settings = make_settings(tmp_path / "s", port)
    log: list[Any] = []
    with ServerThread(recording_receiver(log), port):
        with TestClient(create_app(settings)) as c:
            tid = c.post("/v1/transfers", files=[("files", ("a.png", png_bytes(tiny_image(2))))]).json()["id"]
            assert wait_status(c, tid, ("delivered", "failed"))["status"] == "delivered"
        with TestClient(create_app(settings)) as c:
            time.sleep(0.5)
            assert c.get(f"/v1/transfers/{tid}").json()["status"] == "delivered"
    assert len(codec.calls) == 1 and len(log) == 1
