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
from sender.uploads import MODES, sanitise_names
from tests.sender.servers import SECRET, free_port, one_torch_thread, png_bytes, tiny_image, tree_files

PNG = png_bytes(tiny_image(1))


class FakeCodec:
    """Replaces ``run_encode``: reports progress, optionally waits for ``release``, returns a bundle."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.release.set()
        self.training = threading.Event()
        self.calls: list[list[str]] = []
        self.options: list[dict[str, Any]] = []

    def __call__(self, images: list[tuple[str, Any]], options: dict[str, Any], device: str, progress: Any) -> Any:
        self.calls.append([n for n, _ in images])
        self.options.append(dict(options))
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
    ("unknown mode", [("a.png", PNG)], {"mode": "sr9"}, 422, "mode: Value error, must be one of jpeg, restore, sr2"),
    ("unknown arch", [("a.png", PNG)], {"arch": "vgg19"}, 422, "arch: Value error, unknown generator arch 'vgg19'; known: srvgg"),
    ("unknown objective", [("a.png", PNG)], {"objective": "pretty"}, 422,
     "objective: Value error, must be one of fidelity, perceptual"),
    ("alpha over 1", [("a.png", PNG)], {"objective": "perceptual", "alpha": "1.5"}, 422,
     "alpha: Input should be less than or equal to 1"),
    ("alpha under 0", [("a.png", PNG)], {"objective": "perceptual", "alpha": "-0.1"}, 422,
     "alpha: Input should be greater than or equal to 0"),
    ("alpha not finite", [("a.png", PNG)], {"objective": "perceptual", "alpha": "nan"}, 422,
     "alpha: Input should be a finite number"),
    ("alpha without perceptual", [("a.png", PNG)], {"alpha": "0.5"}, 422, "alpha applies only to objective=perceptual"),
    ("channels not a number", [("a.png", PNG)], {"channels": "wide"}, 422, "channels: Input should be a valid integer"),
    ("blocks negative", [("a.png", PNG)], {"blocks": "-1"}, 422, "blocks: Input should be greater than or equal to 0"),
    ("channels outside the arch", [("a.png", PNG)], {"arch": "unet", "channels": "100", "update": "full"}, 422,
     "generator channels=100 is outside 4..64"),
    # (5 channels: a width no shipped base has, whichever bases get trained later)
    ("width without a base", [("a.png", PNG)], {"channels": "5"}, 422, "only update=full can send it"),
    ("arch without a base", [("a.png", PNG)], {"arch": "unet", "channels": "5", "mode": "sr2"}, 422,
     "only update=full can send it"),
    ("auto without any base", [("a.png", PNG)], {"arch": "srcnn", "channels": "9", "mode": "auto"}, 422,
     "no mode can run these options; restore: no shipped base"),
    # Server-side paths and base names are not options a client can set.
    ("vgg path", [("a.png", PNG)], {"objective": "perceptual", "vgg_weights": "/etc/passwd"}, 422,
     "unknown form field 'vgg_weights'"),
    ("base name", [("a.png", PNG)], {"base": "restore-v1"}, 422, "unknown form field 'base'"),
    ("device", [("a.png", PNG)], {"device": "cuda"}, 422, "unknown form field 'device'"),
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


def test_mode_list_is_the_codecs() -> None:
    from common.codec import ENCODE_MODES

    assert MODES == ENCODE_MODES  # the OpenAPI enum names exactly what validation accepts


@pytest.mark.parametrize("mode", ["jpeg", "restore", "sr2", "sr4", "auto"])
def test_every_mode_is_accepted(client: TestClient, codec: FakeCodec, mode: str) -> None:
    r = upload(client, [("a.png", PNG)], mode=mode, quality="30", update="full")  # (full: needs no shipped base)
    assert r.status_code == 202, r.text
    j = wait_status(client, r.json()["id"], ("failed", "delivered"))
    assert j["options"]["mode"] == mode and codec.options[0]["mode"] == mode


def test_new_options_are_stored_shown_and_passed(client: TestClient, codec: FakeCodec) -> None:
    form = {"mode": "sr4", "arch": "srcnn", "channels": "16", "blocks": "2", "update": "full",
            "objective": "perceptual", "alpha": "0.25", "quality": "30", "budget_seconds": "1",
            "max_update_share": "0.1"}
    r = upload(client, [("a.png", PNG)], **form)
    assert r.status_code == 202, r.text
    j = wait_status(client, r.json()["id"], ("failed", "delivered"))
    want = {"match_jpeg": None, "quality": 30, "mode": "sr4", "update": "full", "budget_seconds": 1.0,
            "max_steps": None, "seed": 0, "arch": "srcnn", "channels": 16, "blocks": 2,
            "objective": "perceptual", "alpha": 0.25, "max_update_share": 0.1}
    assert j["options"] == want
    assert codec.options == [want]  # SENDER_VGG_WEIGHTS unset: no VGG file is passed
    assert client.get("/v1/transfers").json()["transfers"][0]["options"] == want
    from common.codec import EncodeOptions

    EncodeOptions(**codec.options[0]).check()  # exactly what the codec takes


def test_defaults_of_the_new_options(client: TestClient, codec: FakeCodec) -> None:
    tid = upload(client, [("a.png", PNG)]).json()["id"]
    j = wait_status(client, tid, ("failed", "delivered"))
    keys = ("mode", "arch", "channels", "blocks", "objective", "alpha", "max_update_share")
    assert {k: j["options"][k] for k in keys} == {"mode": "auto", "arch": "srvgg", "channels": None, "blocks": None,
                                                 "objective": "fidelity", "alpha": 1.0, "max_update_share": 0.05}


@pytest.mark.parametrize("share", ["0", "1.5", "nan"])
def test_bad_update_share_is_refused(client: TestClient, share: str) -> None:
    r = upload(client, [("a.png", PNG)], max_update_share=share)
    assert r.status_code == 422 and "max_update_share" in r.text, r.text


def test_unknown_arch_names_the_known_ones(client: TestClient) -> None:
    from common.generator import archs

    detail = upload(client, [("a.png", PNG)], arch="nope").json()["detail"]
    assert len(archs()) > 1 and all(name in detail for name in archs()), detail


def test_vgg_weights_come_from_the_server_setting(tmp_path: Path, settings: SenderSettings, codec: FakeCodec) -> None:
    vgg = tmp_path / "vgg19.safetensors"
    vgg.write_bytes(b"stand-in: the fake codec never reads it")
    with TestClient(create_app(settings.model_copy(update={"vgg_weights": vgg}))) as c:
        perceptual = upload(c, [("a.png", PNG)], objective="perceptual", quality="30").json()["id"]
        fidelity = upload(c, [("a.png", PNG)], quality="30").json()["id"]
        views = [wait_status(c, tid, ("failed", "delivered")) for tid in (perceptual, fidelity)]
        raw = c.get(f"/v1/transfers/{perceptual}").text
    assert [o.get("vgg_weights") for o in codec.options] == [str(vgg), None]
    assert all("vgg_weights" not in v["options"] for v in views) and str(vgg) not in raw  # never shown


def test_openapi_documents_the_options(client: TestClient) -> None:
    body = client.get("/openapi.json").json()["paths"]["/v1/transfers"]["post"]["requestBody"]
    props = body["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"mode", "arch", "channels", "blocks", "objective", "alpha"} <= set(props)
    assert props["mode"]["enum"] == list(MODES) and "vgg_weights" not in props and "base" not in props


def test_a_bad_vgg_file_fails_the_transfer_without_showing_its_path(tmp_path: Path, settings: SenderSettings) -> None:
    vgg = tmp_path / "secret-dir" / "vgg19.pth"
    vgg.parent.mkdir()
    vgg.write_bytes(b"PK\x03\x04 a torch.save archive: refused unread")
    with one_torch_thread(), TestClient(create_app(settings.model_copy(update={"vgg_weights": vgg}))) as c:
        tid = upload(c, [("a.png", PNG)], objective="perceptual", quality="30", budget_seconds="1").json()["id"]
        j = wait_status(c, tid, ("failed", "delivered", "delivering"))
        raw = c.get(f"/v1/transfers/{tid}").text
    assert j["status"] == "failed" and "SENDER_VGG_WEIGHTS file cannot be used" in j["error"]
    assert "secret-dir" not in raw and "vgg19.pth" not in raw
