"""Sender API with a stand-in codec: upload validation (status + message, nothing stored), status,
progress, events, bundle download, retry. The real codec runs in tests/test_e2e_services.py."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

import sender.worker
from sender.app import create_app
from sender.settings import SenderSettings
from sender.uploads import sanitise_names
from tests.sender.servers import SECRET, free_port, png_bytes, tiny_image, tree_files

PNG = png_bytes(tiny_image(1))


class FakeCodec:
    """Replaces ``run_encode``: reports progress, optionally waits for ``release``, returns a bundle."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.release.set()
        self.training = threading.Event()
        self.calls: list[list[str]] = []

    def __call__(self, images: list[tuple[str, Any]], options: dict[str, Any], device: str, progress: Any) -> Any:
        self.calls.append([n for n, _ in images])
        progress("encoding", 0, 1)
        progress("training", 3, 10)
        self.training.set()
        self.release.wait(10)
        progress("measuring", 1, 1)
        summary = {"bundle_id": f"b{len(self.calls)}", "bytes": {"total": 7}, "images": []}
        return SimpleNamespace(bundle=b"BUNDLE!", summary=summary)


@pytest.fixture
def codec(monkeypatch: pytest.MonkeyPatch) -> FakeCodec:
    fake = FakeCodec()
    monkeypatch.setattr(sender.worker, "run_encode", fake)
    return fake


@pytest.fixture
def settings(tmp_path: Path) -> SenderSettings:
    # Nothing listens on the receiver port: deliveries fail fast, which these tests do not mind.
    return SenderSettings(secret=SECRET, data_dir=tmp_path / "sender", receiver_url=f"http://127.0.0.1:{free_port()}",
                          max_images=3, max_pixels=64 * 48, max_request_bytes=200_000,
                          delivery_deadline_seconds=0.3, delivery_backoff_seconds=0.05)


@pytest.fixture
def client(settings: SenderSettings, codec: FakeCodec) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def upload(client: TestClient, files: list[tuple[str, bytes]], **data: str) -> Any:
    return client.post("/v1/transfers", files=[("files", (n, b, "application/octet-stream")) for n, b in files],
                       data=data)


def wait_status(client: TestClient, tid: str, statuses: tuple[str, ...]) -> dict[str, Any]:
    import time

    end = time.monotonic() + 20
    while time.monotonic() < end:
        j: dict[str, Any] = client.get(f"/v1/transfers/{tid}").json()
        if j["status"] in statuses:
            return j
        time.sleep(0.02)
    raise AssertionError(f"transfer {tid} never reached {statuses}: {j}")


def test_sanitise_names() -> None:
    raw = ["../../etc/passwd.png", "C:\\photos\\cat.PNG", "cat.jpg", "Cat.png", "we ird:name!.png", "", ".png",
           "x" * 100 + ".png", "noext"]
    assert sanitise_names(raw) == ["passwd", "cat", "cat-2", "Cat-3", "we_ird_name", "image-6", "png", "x" * 64,
                                   "noext"]


def test_accepts_stores_and_reports(client: TestClient, settings: SenderSettings, codec: FakeCodec) -> None:
    r = upload(client, [("dir/a.png", PNG), ("a.png", PNG)], match_jpeg="80", budget_seconds="1.5")
    assert r.status_code == 202, r.text
    tid = r.json()["id"]
    assert r.headers["location"] == f"/v1/transfers/{tid}" == r.json()["status_url"]
    j = wait_status(client, tid, ("failed", "delivered"))
    assert [im["name"] for im in j["images"]] == ["a", "a-2"]
    assert j["images"][0] | {"filename": "x"} == {"name": "a", "filename": "x", "width": 64, "height": 48,
                                                  "bytes": len(PNG)}
    assert j["options"]["match_jpeg"] == 80 and j["options"]["quality"] is None and j["options"]["budget_seconds"] == 1.5
    assert j["bundle_id"] == "b1" and j["result"]["bytes"]["total"] == 7
    assert codec.calls == [["a", "a-2"]]
    # Nothing listens at the receiver: the delivery fails after its deadline, naming why.
    assert j["status"] == "failed" and "ConnectError" in j["error"] and j["delivery"]["attempts"] >= 1
    assert sorted(p.name for p in (settings.data_dir / "transfers" / tid / "uploads").iterdir()) == [
        "000.upload", "001.upload"]
    bundle = client.get(f"/v1/transfers/{tid}/bundle")
    assert bundle.status_code == 200 and bundle.content == b"BUNDLE!"
    assert client.get("/v1/transfers").json()["total"] == 1
    assert client.get("/healthz").json() == {"status": "ok", "service": "sender", "queued": 0}


def test_progress_events_and_bundle_before_ready(client: TestClient, codec: FakeCodec) -> None:
    codec.release.clear()
    tid = upload(client, [("a.png", PNG)]).json()["id"]
    assert codec.training.wait(10)
    j = wait_status(client, tid, ("training",))
    assert j["progress"]["stage"] == "training" and (j["progress"]["step"], j["progress"]["total"]) == (3, 10)
    assert j["progress"]["eta_seconds"] is not None
    r = client.get(f"/v1/transfers/{tid}/bundle")
    assert r.status_code == 409 and "not built yet" in r.json()["detail"]
    r = client.post(f"/v1/transfers/{tid}/retry")
    assert r.status_code == 409 and "only a failed transfer" in r.json()["detail"]
    codec.release.set()
    events = []
    with client.stream("GET", f"/v1/transfers/{tid}/events") as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in s.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                events.append((event, json.loads(line[5:])["status"]))
    assert events[-1] == ("done", "failed")
    assert {"transfer"} == {e for e, _ in events[:-1]}


def test_retry_a_failed_delivery(client: TestClient, codec: FakeCodec) -> None:
    tid = upload(client, [("a.png", PNG)]).json()["id"]
    wait_status(client, tid, ("failed",))
    r = client.post(f"/v1/transfers/{tid}/retry")
    assert r.status_code == 202 and r.json()["status"] == "delivering"
    assert wait_status(client, tid, ("failed",))["delivery"]["attempts"] >= 1
    assert len(codec.calls) == 1  # re-delivered the stored bundle, not re-encoded


def _bmp_header_only() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buf, format="BMP")
    return buf.getvalue()[:60]


BAD = [
    ("not an image", [("notes.txt", b"hello")], {}, 415, "notes.txt: not a"),
    ("truncated image", [("a.png", PNG), ("b.bmp", _bmp_header_only())], {}, 415, "b.bmp:"),
    ("too many pixels", [("big.png", png_bytes(tiny_image(1, 65, 48)))], {}, 413, "big.png: image is 65x48"),
    ("too many images", [(f"{i}.png", PNG) for i in range(4)], {}, 413, "more than 3 images; the limit is 3"),
    ("far too many images", [(f"{i}.png", PNG) for i in range(12)], {}, 413, "the limit is 3 per transfer"),
    ("field too long", [("a.png", PNG)], {"mode": "x" * 5000}, 422, "form fields: Part exceeded maximum size"),
    ("request too large", [("a.png", b"\x89PNG" + b"\0" * 250_000)], {}, 413, "the limit is 200000 bytes"),
    ("unknown field", [("a.png", PNG)], {"match-jpeg": "80"}, 422, "unknown form field 'match-jpeg'"),
    ("both qualities", [("a.png", PNG)], {"quality": "50", "match_jpeg": "75"}, 422, "either match_jpeg or quality"),
    ("quality out of range", [("a.png", PNG)], {"quality": "101"}, 422, "quality: Input should be less than"),
    ("quality not a number", [("a.png", PNG)], {"quality": "high"}, 422, "quality: Input should be a valid integer"),
    ("unknown mode", [("a.png", PNG)], {"mode": "sr9"}, 422, "mode: Value error, must be one of"),
    ("budget over limit", [("a.png", PNG)], {"budget_seconds": "99999"}, 422, "budget_seconds 99999 is over"),
    ("bad receiver url", [("a.png", PNG)], {"receiver_url": "file:///etc"}, 422, "receiver_url: receiver URL must"),
]


@pytest.mark.parametrize(("label", "files", "data", "status", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_uploads(client: TestClient, settings: SenderSettings, codec: FakeCodec, label: str,
                     files: list[tuple[str, bytes]], data: dict[str, str], status: int, message: str) -> None:
    before = tree_files(settings.data_dir)
    r = upload(client, files, **data)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]
    assert tree_files(settings.data_dir) == before
    assert client.get("/v1/transfers").json()["total"] == 0 and codec.calls == []


def test_not_multipart_and_unknown_ids(client: TestClient) -> None:
    r = client.post("/v1/transfers", json={"files": []})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    r = client.post("/v1/transfers", data={"files": "just text"})
    assert r.status_code == 415
    r = client.post("/v1/transfers", files=[("files", ("a.png", PNG))], data={"files": "text"})
    assert r.status_code == 422 and "plain text" in r.json()["detail"]
    r = client.post("/v1/transfers", files={"quality": (None, "50")})  # multipart without any file
    assert r.status_code == 422 and "no images: send one or more 'files' fields" in r.json()["detail"]
    for path in ("", "/events", "/bundle"):
        r = client.get(f"/v1/transfers/nope{path}")
        assert r.status_code == 404 and "no transfer with id 'nope'" in r.json()["detail"]
    paths = client.get("/openapi.json").json()["paths"]
    assert "multipart/form-data" in paths["/v1/transfers"]["post"]["requestBody"]["content"]


def test_size_limit_holds_without_content_length(settings: SenderSettings, codec: FakeCodec) -> None:
    boundary = "b0undary"
    part = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n").encode() + b"\0" * 250_000 + f"\r\n--{boundary}--\r\n".encode()

    def chunks() -> Iterator[bytes]:  # a generator body is sent chunked, without content-length
        for i in range(0, len(part), 16_384):
            yield part[i:i + 16_384]

    with TestClient(create_app(settings)) as c:
        before = tree_files(settings.data_dir)
        r = c.post("/v1/transfers", content=chunks(),
                   headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 413 and r.json()["detail"] == "request body is over the limit of 200000 bytes"
        assert tree_files(settings.data_dir) == before
