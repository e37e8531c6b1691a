"""Receiver with sr2/sr4 bundles: JPEGs smaller than their images, reconstructions at the image size.

The bundles are built here with every image forced through the generator (the codec itself
decides per image; tests/test_e2e_services.py sends real ones) and carry a ``full`` update of a
small freshly seeded sr generator, so the checks depend on no shipped weights file at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from common.bundle import Bundle, BundleImage, new_bundle_id, parse_bundle, write_bundle
from common.codec import decode_bundle
from common.generator import build_generator, default_config
from common.imageio import downsample, jpeg_decode, jpeg_encode
from common.update import encode_full
from receiver.settings import ReceiverSettings
from tests.receiver.test_api import post, wait_reconstructed
from tests.sender.servers import decode_png, one_torch_thread, tiny_image, tree_files

# Odd sizes on purpose: neither side is a multiple of 2 or 4.
SIZES = {"odd-a": (37, 29), "odd-b": (50, 41)}


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def sr_bundle(scale: int, *, wrong_jpeg: bool = False) -> bytes:
    """An sr bundle: two odd-sized images through the generator (JPEG ``ceil(h/s) x ceil(w/s)``) and
    one it does not run on (full-size JPEG). ``wrong_jpeg`` sends a full-size JPEG for a generator image."""
    cfg = default_config("srvgg", scale, channels=8, blocks=1)
    torch.manual_seed(scale)
    header, data = encode_full(build_generator(cfg).state_dict())
    images = []
    for k, (name, (w, h)) in enumerate(SIZES.items()):
        rgb = tiny_image(k + 5, w, h)
        payload = rgb if wrong_jpeg and k == 0 else downsample(rgb, scale)
        images.append(BundleImage(name, w, h, jpeg_encode(payload, 60), {"q": 60, "g": 1}))
    images.append(BundleImage("plain", 23, 17, jpeg_encode(tiny_image(9, 23, 17), 60), {"q": 60, "g": 0}))
    b = Bundle(bundle_id=new_bundle_id(), created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
               mode=f"sr{scale}", generator=cfg.to_dict(), base_sha256=None, update=header,
               update_bytes=data, images=images)
    return write_bundle(b)


@pytest.mark.parametrize("scale", [2, 4])
def test_sr_bundle_reconstructs_at_the_image_size(client: TestClient, scale: int) -> None:
    body = sr_bundle(scale)
    r = post(client, body)
    assert r.status_code == 202, r.text
    j = wait_reconstructed(client, r.json()["id"])
    assert j["status"] == "reconstructed" and j["error"] is None and j["mode"] == f"sr{scale}"
    want = decode_bundle(body).images
    sizes = {**SIZES, "plain": (23, 17)}
    for im, expected in zip(j["images"], want, strict=True):
        w, h = sizes[im["name"]]
        s = 1 if im["name"] == "plain" else scale
        assert (im["width"], im["height"], im["scale"]) == (w, h, s)
        assert (im["jpeg_width"], im["jpeg_height"]) == (-(-w // s), -(-h // s))
        png = decode_png(client.get(im["url"]).content)
        assert png.shape == (h, w, 3) and np.array_equal(png, expected)
        jpeg = client.get(im["jpeg_url"]).content
        assert jpeg_decode(jpeg).shape == (im["jpeg_height"], im["jpeg_width"], 3)
        assert jpeg == parse_bundle(body).images[[i["name"] for i in j["images"]].index(im["name"])].jpeg


@pytest.mark.parametrize("scale", [2, 4])
def test_jpeg_of_the_wrong_size_is_refused(client: TestClient, settings: ReceiverSettings, scale: int) -> None:
    before = tree_files(settings.data_dir)
    r = post(client, sr_bundle(scale, wrong_jpeg=True))
    assert r.status_code == 400, r.text
    w, h = SIZES["odd-a"]
    assert r.json()["detail"] == (f"image 'odd-a': JPEG is {w}x{h}, expected {-(-w // scale)}x{-(-h // scale)} "
                                  f"for {w}x{h} at scale {scale}")
    assert tree_files(settings.data_dir) == before and client.get("/v1/bundles").json()["total"] == 0


def test_rows_stored_before_jpeg_sizes_were_recorded(client: TestClient) -> None:
    store = client.app.state.ctx.store  # type: ignore[attr-defined]
    old = {"index": 0, "name": "x", "width": 8, "height": 8, "jpeg_bytes": 1, "png_bytes": None, "sender": {}}
    store.insert("oldrow", None, 10, "restore", {}, [old])
    store.update("oldrow", status="failed", error="test row")
    im = client.get("/v1/bundles/oldrow").json()["images"][0]
    assert (im["width"], im["jpeg_width"], im["jpeg_height"], im["scale"]) == (8, None, None, None)
