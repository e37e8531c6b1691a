"""Bundle intake (the webhook), cheapest checks first:

    size (route) → signature + timestamp → replay (webhook-id) → header peek → duplicate bundle_id
      → structure, limits, base hash, update shapes, JPEG sizes vs image sizes (inspect_bundle)
      → durable store → 202

A replay or a second delivery of a stored bundle gets the first answer and stores nothing.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.bundle import Bundle, BundleLimits, peek_header
from common.codec import inspect_bundle, payload_scale, payload_size
from common.errors import BundleError
from common.webhooks import ID_HEADER, verify

from .settings import ReceiverSettings
from .store import BundleStore, fsync_path

log = logging.getLogger(__name__)
BUNDLE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MSG_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
# Short per-image header keys → the names the read API shows.
_INFO_NAMES = {"q": "quality", "g": "generator", "pj": "psnr_payload", "pr": "psnr", "pt": "psnr_target"}


@dataclass(frozen=True)
class IntakeResult:
    bundle_id: str
    duplicate: bool


class Intake:
    def __init__(self, store: BundleStore, settings: ReceiverSettings) -> None:
        self.store, self.settings = store, settings
        self._write_lock = threading.Lock()

    @property
    def limits(self) -> BundleLimits:
        s = self.settings
        return BundleLimits(max_bundle_bytes=s.max_bundle_bytes, max_header_bytes=s.max_header_bytes,
                            max_images=s.max_images, max_pixels=s.max_pixels)

    def accept(self, body: bytes, headers: Mapping[str, str]) -> IntakeResult:
        """Validate and store one delivery (blocking; run in a thread). Raises CodecError subclasses."""
        msg_id = self._authenticate(body, headers)
        if msg_id and (known := self.store.known_message(msg_id)):
            log.info("replayed webhook-id=%s answered with bundle=%s", msg_id, known)
            return IntakeResult(known, True)
        header = peek_header(body, self.limits)
        bundle_id = header.get("bundle_id")
        if not isinstance(bundle_id, str) or not BUNDLE_ID_RE.match(bundle_id):
            raise BundleError(f"bundle_id must be 1-64 characters of A-Z a-z 0-9 _ -, got {bundle_id!r:.80}")
        if self.store.exists(bundle_id):
            self.store.record_message(msg_id, bundle_id)
            log.info("duplicate bundle=%s (webhook-id=%s) answered idempotently", bundle_id, msg_id)
            return IntakeResult(bundle_id, True)
        bundle = inspect_bundle(body, self.limits)
        if bundle.bundle_id != bundle_id:
            raise BundleError("bundle_id differs between the header peek and the parsed bundle")
        return self._store(bundle, body, msg_id)

    def _authenticate(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        keys = self.settings.secrets()
        if keys:
            return verify(keys, headers, body, tolerance=self.settings.timestamp_tolerance_seconds)
        # Insecure development mode: no signature, but a well-formed webhook-id still dedupes.
        msg_id = {k.lower(): v for k, v in headers.items()}.get(ID_HEADER, "")
        return msg_id if _MSG_ID_RE.match(msg_id) else None

    def _store(self, bundle: Bundle, body: bytes, msg_id: str | None) -> IntakeResult:
        bid = bundle.bundle_id
        images = [
            {"index": i, "name": im.name, "width": int(im.width), "height": int(im.height),
             # inspect_bundle has checked each JPEG's header against these
             **dict(zip(("jpeg_width", "jpeg_height"), payload_size(bundle, im), strict=True)),
             "scale": payload_scale(bundle, im),
             "jpeg_bytes": len(im.jpeg), "png_bytes": None, "sender": _sender_info(im.info)}
            for i, im in enumerate(bundle.images)
        ]
        info = {"decision": _jsonable(bundle.decision), "metrics": _jsonable(bundle.metrics),
                "update": _jsonable(bundle.update)}
        with self._write_lock:
            if self.store.exists(bid):
                self.store.record_message(msg_id, bid)
                return IntakeResult(bid, True)
            tmp = self.store.tmp_dir / f"{bid}.{secrets.token_hex(4)}"
            tmp.mkdir(parents=True)
            try:
                _write(tmp / "bundle.gcb", body)
                for i, im in enumerate(bundle.images):
                    _write(tmp / f"{i:03d}.jpg", im.jpeg)
                fsync_path(tmp)
                final = self.store.bundle_dir(bid)
                tmp.rename(final)
                fsync_path(final.parent)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            try:
                self.store.insert(bid, msg_id, len(body), str(bundle.mode), info, images)
            except BaseException:
                shutil.rmtree(final, ignore_errors=True)
                raise
        log.info("stored bundle=%s bytes=%d images=%d webhook-id=%s", bid, len(body), len(images), msg_id)
        return IntakeResult(bid, False)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _sender_info(info: dict[str, Any]) -> dict[str, Any]:
    """The sender's per-image figures (payload quality, PSNRs) with readable names."""
    return {_INFO_NAMES.get(k, k): v for k, v in _jsonable(info).items()}


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of header values (drops tensors, bytes and anything exotic)."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if depth > 6:
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()
                if isinstance(v, dict | list | tuple | bool | int | float | str) or v is None}
    if isinstance(value, list | tuple):
        return [_jsonable(v, depth + 1) for v in value][:1000]
    return None
