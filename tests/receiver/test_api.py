"""Receiver API: intake checks (each with its status and message), idempotency, the read API."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from common.bundle import parse_bundle
from common.codec import decode_bundle
from common.errors import BundleError
from common.imageio import jpeg_decode
from common.webhooks import signed_headers
from receiver.settings import ReceiverSettings
from tests.sender.servers import OTHER_SECRET, SECRET, decode_png, tree_files


def post(client: TestClient, body: bytes, secret: str | None = SECRET, msg_id: str | None = None,
         timestamp: int | None = None, headers: dict[str, str] | None = None) -> Any:
    h = signed_headers(secret, body, msg_id, timestamp) if secret else {}
    return client.post("/v1/bundles", content=body, headers={**h, **(headers or {})})


def wait_reconstructed(client: TestClient, bid: str, timeout: float = 60) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        j: dict[str, Any] = client.get(f"/v1/bundles/{bid}").json()
        if j["status"] in ("reconstructed", "failed"):
            return j
        time.sleep(0.05)
    raise AssertionError(f"bundle {bid} not reconstructed: {j}")


def test_accepts_reconstructs_and_serves(client: TestClient, restore_bundle: bytes) -> None:
    r = post(client, restore_bundle)
    bid = parse_bundle(restore_bundle).bundle_id
    assert r.status_code == 202, r.text
    assert r.json() == {"id": bid}
    assert r.headers["location"] == f"/v1/bundles/{bid}"
    j = wait_reconstructed(client, bid)
    assert j["status"] == "reconstructed" and j["error"] is None
    assert j["mode"] == "restore" and j["update"]["kind"] == parse_bundle(restore_bundle).update["kind"]
    assert any(im["sender"]["generator"] for im in j["images"])  # the generator runs on the receiver
    expected = decode_bundle(restore_bundle)
    for im, want, payload in zip(j["images"], expected.images, expected.bundle.images, strict=True):
        png = client.get(im["url"])
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert np.array_equal(decode_png(png.content), want)
        jpg = client.get(im["jpeg_url"])
        assert jpg.headers["content-type"] == "image/jpeg"
        assert jpg.content == payload.jpeg  # plain JPEG recoverable, byte for byte
        assert jpeg_decode(jpg.content).shape == (im["jpeg_height"], im["jpeg_width"], 3) == (im["height"], im["width"], 3)
        assert im["scale"] == 1  # restore: the JPEG is the image's size
        assert im["sender"]["psnr"] == payload.info["pr"]
    listing = client.get("/v1/bundles").json()
    assert listing["total"] == 1 and listing["bundles"][0]["id"] == bid
    assert client.get("/healthz").json() == {"status": "ok", "service": "receiver", "bundles": {"reconstructed": 1}}


def test_redelivery_is_idempotent(client: TestClient, settings: ReceiverSettings, jpeg_bundle: bytes) -> None:
    first = post(client, jpeg_bundle, msg_id="msg_first")
    bid = first.json()["id"]
    wait_reconstructed(client, bid)
    before = tree_files(settings.data_dir)
    again = post(client, jpeg_bundle, msg_id="msg_first")  # a retried delivery (same webhook-id)
    other = post(client, jpeg_bundle, msg_id="msg_second")  # the same bundle under a new webhook-id
    replay = post(client, b"anything", msg_id="msg_first")  # a replayed id is answered with the first result
    for r in (again, other, replay):
        assert (r.status_code, r.json()) == (202, {"id": bid})
    assert tree_files(settings.data_dir) == before
    assert client.get("/v1/bundles").json()["total"] == 1


BAD_INPUTS = [
    ("unsigned", dict(secret=None), 401, "missing webhook header"),
    ("wrong key", dict(secret=OTHER_SECRET), 401, "does not match"),
    ("stale timestamp", dict(timestamp=int(time.time()) - 3600), 401, "allowed skew"),
    ("future timestamp", dict(timestamp=int(time.time()) + 3600), 401, "allowed skew"),
]


@pytest.mark.parametrize(("label", "kwargs", "status", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_signature_checks(client: TestClient, settings: ReceiverSettings, jpeg_bundle: bytes, label: str,
                          kwargs: dict[str, Any], status: int, message: str) -> None:
    before = tree_files(settings.data_dir)
    r = post(client, jpeg_bundle, **kwargs)
    assert r.status_code == status
    assert message in r.json()["detail"]
    assert tree_files(settings.data_dir) == before
    assert client.get("/v1/bundles").json()["total"] == 0


def _truncated(b: bytes) -> bytes:
    return b[:-10]


def _flipped(b: bytes) -> bytes:
    return b[:-20] + bytes([b[-20] ^ 0xFF]) + b[-19:]


@pytest.mark.parametrize(
    ("make", "status", "message"),
    [
        (lambda b, u: b"", 400, ""),
        (lambda b, u: b"GIF89a" + b"\0" * 64, 400, "magic"),
        (lambda b, u: _truncated(b), 400, ""),
        (lambda b, u: _flipped(b), 400, "CRC"),
        (lambda b, u: u, 422, "0000000000"),
    ],
    ids=["empty", "not a bundle", "truncated", "corrupt section", "unknown base weights"],
)
def test_malformed_bundles(client: TestClient, settings: ReceiverSettings, jpeg_bundle: bytes,
                           unknown_base_bundle: bytes, make: Any, status: int, message: str) -> None:
    before = tree_files(settings.data_dir)
    body = make(jpeg_bundle, unknown_base_bundle)
    r = post(client, body)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"] and r.json()["detail"]
    assert tree_files(settings.data_dir) == before
    assert client.get("/v1/bundles").json()["total"] == 0
    # A refused delivery is not remembered: the same webhook-id may deliver a good bundle later.


def test_too_large(tmp_path: Any, jpeg_bundle: bytes) -> None:
    from receiver.app import create_app

    s = ReceiverSettings(secret=SECRET, data_dir=tmp_path / "r", max_bundle_bytes=len(jpeg_bundle) - 1)
    with TestClient(create_app(s)) as c:
        r = post(c, jpeg_bundle)
        assert r.status_code == 413
        assert f"the limit is {len(jpeg_bundle) - 1} bytes" in r.json()["detail"]

        def chunks() -> Any:  # no content-length: the limit is enforced while streaming
            yield jpeg_bundle[:100]
            yield jpeg_bundle[100:]

        h = signed_headers(SECRET, jpeg_bundle)
        r = c.post("/v1/bundles", content=chunks(), headers=h)
        assert r.status_code == 413 and "over the limit" in r.json()["detail"]
        assert c.get("/v1/bundles").json()["total"] == 0


def test_read_api_errors(client: TestClient, jpeg_bundle: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    import receiver.worker

    def broken(data: bytes, progress: Any = None) -> Any:
        raise BundleError("simulated decoder failure")

    monkeypatch.setattr(receiver.worker, "decode_bundle", broken)
    bid = post(client, jpeg_bundle).json()["id"]
    j = wait_reconstructed(client, bid)
    assert j["status"] == "failed" and "simulated" in j["error"]
    r = client.get(f"/v1/bundles/{bid}/images/one")
    assert r.status_code == 409 and "variant=jpeg" in r.json()["detail"]
    assert client.get(f"/v1/bundles/{bid}/images/one?variant=jpeg").status_code == 200
    r = client.get(f"/v1/bundles/{bid}/images/nope")
    assert r.status_code == 404 and "'one'" in r.json()["detail"]
    r = client.get(f"/v1/bundles/{bid}/images/one?variant=gif")
    assert r.status_code == 422 and "variant" in r.json()["detail"]
    r = client.get("/v1/bundles/doesnotexist")
    assert r.status_code == 404 and "doesnotexist" in r.json()["detail"]


def test_openapi_lists_the_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/bundles", "/v1/bundles/{bundle_id}", "/v1/bundles/{bundle_id}/images/{name}", "/healthz"} <= set(paths)
