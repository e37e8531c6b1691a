"""Sender and receiver end to end over real HTTP (both under uvicorn on loopback), real codec.

Tiny crops of the sample images and 1-2 s fine-tune budgets keep this to well under a minute on two CPU cores.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from common.imageio import jpeg_decode, load_image
from common.metrics import psnr
from common.sendcli import send_main
from common.webhooks import signed_headers
from receiver.app import create_app as receiver_app
from receiver.settings import ReceiverSettings
from sender.app import create_app as sender_app
from sender.settings import SenderSettings
from sender.store import TransferStore
from tests.sender.servers import (
    OTHER_SECRET,
    SECRET,
    ServerThread,
    decode_png,
    free_port,
    get_json,
    one_torch_thread,
    png_bytes,
    tiny_image,
    tree_files,
    wait_for,
)

SAMPLES = Path(__file__).resolve().parents[1] / "common" / "samples"
# Tiny crops of two sample photos (one landscape, one portrait) keep each fine-tune to a second.
ORIGINALS = {"ladybird": load_image(SAMPLES / "ladybird.png")[96:144, 160:224].copy(),
             "path": load_image(SAMPLES / "path.png")[80:144, 200:248].copy()}


@dataclass
class Pair:
    sender: ServerThread
    receiver: ServerThread
    sender_dir: Path
    receiver_dir: Path


def settings_for(root: Path, receiver_port: int, **sender_kw: Any) -> tuple[SenderSettings, ReceiverSettings]:
    s = SenderSettings(secret=SECRET, data_dir=root / "sender", receiver_url=f"http://127.0.0.1:{receiver_port}",
                       max_pixels=64 * 64, default_budget_seconds=1.0, delivery_backoff_seconds=0.1,
                       delivery_backoff_max_seconds=0.3, **sender_kw)
    r = ReceiverSettings(secret=SECRET, data_dir=root / "receiver", max_bundle_bytes=1_000_000)
    return s, r


def image_folder(root: Path) -> Path:
    folder = root / "images"
    folder.mkdir()
    for name, rgb in ORIGINALS.items():
        (folder / f"{name}.png").write_bytes(png_bytes(rgb))
    return folder


def smooth_image(w: int, h: int, seed: int) -> np.ndarray:
    """Low-frequency content, where a 2x/4x smaller JPEG plus the sr generator beats a full-size one
    at the same quality (so the sr path is taken without depending on how good the sr weights are)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rgb = np.stack([128 + 90 * np.sin(x / 9 + seed) * np.cos(y / 11), 128 + 80 * np.cos((x + y) / 13 + seed),
                    60 + 2 * x + y], -1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


# Odd sizes on purpose: sr2/sr4 payloads are ceil(h/s) x ceil(w/s) and the output is cropped back.
SR_ORIGINALS = {"odd-a": smooth_image(37, 29, 0), "odd-b": smooth_image(50, 41, 1)}


def post_images(sender: ServerThread, images: dict[str, np.ndarray], **data: str) -> str:
    files = [("files", (f"{name}.png", png_bytes(rgb), "image/png")) for name, rgb in images.items()]
    r = httpx.post(f"{sender.url}/v1/transfers", files=files, data=data, timeout=30)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def post_folder(sender: ServerThread, folder: Path, **data: str) -> str:
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in sorted(folder.iterdir())]
    r = httpx.post(f"{sender.url}/v1/transfers", files=files, data=data, timeout=30)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def transfer(pair: Pair, tid: str) -> dict[str, Any]:
    return get_json(f"{pair.sender.url}/v1/transfers/{tid}")


def check_reconstructions(pair: Pair, result: dict[str, Any],
                          originals: dict[str, np.ndarray] = ORIGINALS) -> dict[str, Any]:
    """The receiver's PNGs have the originals' size and reach exactly the PSNR the sender reported;
    its JPEGs are the payloads (in sr2/sr4 bundles ceil(h/s) x ceil(w/s) where the generator runs)."""
    bid = result["bundle_id"]
    b = wait_for(lambda: get_json(f"{pair.receiver.url}/v1/bundles/{bid}"),
                 lambda j: j["status"] in ("reconstructed", "failed"))
    assert b["status"] == "reconstructed", b
    sent = {im["name"]: im for im in result["images"]}
    assert sorted(im["name"] for im in b["images"]) == sorted(originals) == sorted(sent)
    scale = {"sr2": 2, "sr4": 4}.get(b["mode"], 1)
    for im in b["images"]:
        original = originals[im["name"]]
        h, w = original.shape[:2]
        png = decode_png(httpx.get(pair.receiver.url + im["url"]).content)
        assert png.shape == original.shape and (im["width"], im["height"]) == (w, h)
        assert psnr(original, png) == pytest.approx(sent[im["name"]]["psnr"], abs=1e-9)
        jpeg = httpx.get(pair.receiver.url + im["jpeg_url"]).content
        assert jpeg[:3] == b"\xff\xd8\xff" and len(jpeg) == sent[im["name"]]["jpeg_bytes"]
        s = scale if sent[im["name"]]["generator"] else 1
        assert im["scale"] == s and jpeg_decode(jpeg).shape == (-(-h // s), -(-w // s), 3) == (
            im["jpeg_height"], im["jpeg_width"], 3)
        if s == 1:  # (the summary's psnr_payload is the full-size JPEG's at the same quality)
            assert psnr(original, jpeg_decode(jpeg)) == pytest.approx(sent[im["name"]]["psnr_payload"], abs=1e-9)
    return b


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("e2e")
    rport = free_port()
    s, r = settings_for(root, rport)
    with ServerThread(receiver_app(r), rport) as receiver, ServerThread(sender_app(s)) as sender:
        yield Pair(sender, receiver, s.data_dir, r.data_dir)


@pytest.fixture(scope="module")
def delivered(pair: Pair, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One transfer sent with the CLI (`gancodec send`), followed over the event stream."""
    folder = image_folder(tmp_path_factory.mktemp("send"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = send_main([str(folder), "--sender", pair.sender.url, "--quality", "50", "--update", "delta",
                          "--budget-seconds", "1", "--json"])
    final: dict[str, Any] = json.loads(out.getvalue())
    assert code == 0, final
    return final


def test_transfer_is_delivered_and_reconstructed(pair: Pair, delivered: dict[str, Any]) -> None:
    assert delivered["status"] == "delivered" and delivered["error"] is None
    result = delivered["result"]
    assert delivered["delivery"]["receiver"] == {"id": result["bundle_id"]}
    assert result["bytes"]["total"] == sum(result["bytes"][k] for k in ("jpeg", "update", "header"))
    assert result["decision"]["chosen"] == "delta"
    b = check_reconstructions(pair, result)
    assert b["size"] == result["bytes"]["total"]
    bundle = httpx.get(f"{pair.sender.url}/v1/transfers/{delivered['id']}/bundle").content
    assert len(bundle) == result["bytes"]["total"]


def test_bad_inputs_change_nothing(pair: Pair, delivered: dict[str, Any]) -> None:
    before = (tree_files(pair.sender_dir), tree_files(pair.receiver_dir))
    totals = (get_json(f"{pair.sender.url}/v1/transfers")["total"], get_json(f"{pair.receiver.url}/v1/bundles")["total"])
    good = png_bytes(tiny_image(1))
    sender_cases = [
        ([("files", ("a.txt", b"plain text"))], {}, 415, "a.txt: not a"),
        ([("files", ("big.png", png_bytes(tiny_image(1, 80, 60))))], {}, 413, "big.png: image is 80x60 = 4800 pixels"),
        ([("files", ("a.png", good))], {"quality": "0"}, 422, "quality: Input should be greater than or equal to 1"),
        ([("files", ("a.png", good))], {"colour": "red"}, 422, "unknown form field 'colour'"),
        ([("files", ("a.png", good))], {"arch": "nope"}, 422, "unknown generator arch 'nope'; known: srvgg"),
        ([("files", ("a.png", good))], {"objective": "perceptual", "alpha": "2"}, 422, "alpha: Input should be less"),
        ([("files", ("a.png", good))], {"objective": "perceptual", "vgg_weights": "/etc/passwd"}, 422,
         "unknown form field 'vgg_weights'"),
    ]
    for files, data, status, message in sender_cases:
        r = httpx.post(f"{pair.sender.url}/v1/transfers", files=files, data=data)
        assert (r.status_code, message in r.json()["detail"]) == (status, True), r.text
    bundle = httpx.get(f"{pair.sender.url}/v1/transfers/{delivered['id']}/bundle").content
    receiver_cases = [
        (bundle, {}, 401, "missing webhook header"),
        (bundle, signed_headers(OTHER_SECRET, bundle), 401, "does not match"),
        (bundle, signed_headers(SECRET, bundle, timestamp=int(time.time()) - 301), 401, "allowed skew"),
        (b"not a bundle", signed_headers(SECRET, b"not a bundle"), 400, "magic"),
        (b"\0" * 1_000_001, signed_headers(SECRET, b"\0" * 1_000_001), 413, "the limit is 1000000 bytes"),
    ]
    for body, headers, status, message in receiver_cases:
        r = httpx.post(f"{pair.receiver.url}/v1/bundles", content=body, headers=headers)
        assert (r.status_code, message in r.json()["detail"]) == (status, True), r.text
    assert (tree_files(pair.sender_dir), tree_files(pair.receiver_dir)) == before
    assert totals == (get_json(f"{pair.sender.url}/v1/transfers")["total"],
                      get_json(f"{pair.receiver.url}/v1/bundles")["total"])


def test_redelivery_is_idempotent(pair: Pair, delivered: dict[str, Any]) -> None:
    bid = delivered["result"]["bundle_id"]
    check_reconstructions(pair, delivered["result"])
    before = tree_files(pair.receiver_dir)
    bundle = httpx.get(f"{pair.sender.url}/v1/transfers/{delivered['id']}/bundle").content
    for msg_id in (delivered["delivery"]["webhook_id"], "msg_another_delivery"):
        r = httpx.post(f"{pair.receiver.url}/v1/bundles", content=bundle, headers=signed_headers(SECRET, bundle, msg_id))
        assert (r.status_code, r.json()) == (202, {"id": bid})
    assert tree_files(pair.receiver_dir) == before
    listing = get_json(f"{pair.receiver.url}/v1/bundles")
    assert [b["id"] for b in listing["bundles"]].count(bid) == 1


SR_CASES = {
    # A perceptual fine-tune on a tiny budget, at fixed quality (its PSNR-priced rule would refuse it).
    "sr2-perceptual": {"mode": "sr2", "quality": "30", "objective": "perceptual", "alpha": "0.5",
                       "budget_seconds": "1", "arch": "srvgg"},
    "sr4": {"mode": "sr4", "quality": "30", "budget_seconds": "1"},
    "auto": {"mode": "auto", "quality": "30", "update": "none"},
}


@pytest.mark.parametrize("case", list(SR_CASES))
def test_sr_and_auto_round_trip_at_odd_sizes(pair: Pair, case: str) -> None:
    form = SR_CASES[case]
    tid = post_images(pair.sender, SR_ORIGINALS, **form)
    j = wait_for(lambda: transfer(pair, tid), lambda j: j["status"] in ("delivered", "failed"))
    assert j["status"] == "delivered", j
    assert {k: str(j["options"][k]) for k in form if k not in ("alpha", "budget_seconds")} == {
        k: v for k, v in form.items() if k not in ("alpha", "budget_seconds")}
    result = j["result"]
    b = check_reconstructions(pair, result, SR_ORIGINALS)
    assert b["mode"] == result["mode"]
    decision = result["decision"]
    if form["mode"] == "auto":
        assert decision["mode"] in ("restore", "sr2", "sr4") and set(decision["modes"]) <= {"restore", "sr2", "sr4"}
    else:
        assert decision["mode"] == form["mode"]
        # Smooth images: at least one goes through the generator from a smaller JPEG.
        assert b["mode"] == form["mode"] and any(im["scale"] > 1 for im in b["images"]), b
    if form.get("objective") == "perceptual":
        assert j["options"]["alpha"] == 0.5 and decision["finetune"]["objective"] == "perceptual"


@pytest.mark.slow
def test_receiver_down_then_up(tmp_path: Path) -> None:
    rport = free_port()
    s, r = settings_for(tmp_path, rport)
    with ServerThread(sender_app(s)) as sender:
        pair = Pair(sender, ServerThread(receiver_app(r), rport), s.data_dir, r.data_dir)
        tid = post_folder(sender, image_folder(tmp_path), budget_seconds="1", quality="60")
        j = wait_for(lambda: transfer(pair, tid), lambda j: j["delivery"].get("attempts", 0) >= 2)
        assert j["status"] == "delivering" and "ConnectError" in j["delivery"]["last_error"]
        with pair.receiver:
            j = wait_for(lambda: transfer(pair, tid), lambda j: j["status"] in ("delivered", "failed"))
            assert j["status"] == "delivered" and j["delivery"]["attempts"] >= 3
            check_reconstructions(pair, j["result"])
            assert get_json(f"{pair.receiver.url}/v1/bundles")["total"] == 1


@pytest.mark.slow
def test_sender_restart_mid_job(tmp_path: Path) -> None:
    rport = free_port()
    s, r = settings_for(tmp_path, rport)
    with ServerThread(receiver_app(r), rport) as receiver:
        first = ServerThread(sender_app(s)).start()
        pair = Pair(first, receiver, s.data_dir, r.data_dir)
        tid = post_folder(first, image_folder(tmp_path), budget_seconds="2", update="delta")
        wait_for(lambda: transfer(pair, tid), lambda j: j["status"] == "training", interval=0.02)
        first.stop()  # mid fine-tune
        store = TransferStore(s.data_dir)
        assert store.get(tid)["status"] == "training"  # type: ignore[index]  # left for the next start
        store.close()
        assert get_json(f"{receiver.url}/v1/bundles")["total"] == 0
        with ServerThread(sender_app(s)) as second:
            pair.sender = second
            j = wait_for(lambda: transfer(pair, tid), lambda j: j["status"] in ("delivered", "failed"))
            assert j["status"] == "delivered", j
            assert get_json(f"{second.url}/v1/transfers")["total"] == 1
            check_reconstructions(pair, j["result"])
    uploads = sorted(p.name for p in (s.data_dir / "transfers" / tid / "uploads").iterdir())
    assert uploads == ["000.upload", "001.upload"]
