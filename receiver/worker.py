"""Reconstruction off the event loop: stored bundle → base + update → PNGs, then an optional notice.

    received ─▶ reconstructing ─▶ reconstructed      (or ─▶ failed, the JPEGs stay servable)

A restart re-queues every bundle still ``received`` or ``reconstructing``.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from typing import Any

import httpx

from common.codec import decode_bundle
from common.errors import CodecError
from common.imageio import save_png
from common.webhooks import signed_headers

from .settings import ReceiverSettings
from .store import BundleStore

log = logging.getLogger(__name__)


class _Stopped(Exception):
    pass


class ReconstructWorker:
    def __init__(self, store: BundleStore, settings: ReceiverSettings, client: httpx.Client) -> None:
        self.store, self.settings, self.client = store, settings, client
        self.stop_event = threading.Event()
        self._q: queue.Queue[str] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._progress: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        for bid in self.store.pending():
            log.info("resuming reconstruction bundle=%s", bid)
            self._q.put(bid)
        for i in range(self.settings.workers):
            t = threading.Thread(target=self._loop, name=f"receiver-reconstruct-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))

    def enqueue(self, bundle_id: str) -> None:
        self._q.put(bundle_id)

    def progress(self, bundle_id: str) -> dict[str, Any] | None:
        with self._lock:
            p = self._progress.get(bundle_id)
            return None if p is None else dict(p)

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                bid = self._q.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._reconstruct(bid)
            except _Stopped:
                log.info("bundle=%s interrupted by shutdown; it resumes at the next start", bid)
            except Exception as e:  # a bug fails the bundle, never the worker thread
                log.exception("bundle=%s reconstruction crashed", bid)
                self._finish(bid, "failed", f"internal error: {type(e).__name__}: {e}")
            finally:
                with self._lock:
                    self._progress.pop(bid, None)

    def _reconstruct(self, bid: str) -> None:
        row = self.store.get(bid)
        if row is None or row["status"] not in ("received", "reconstructing"):
            return
        self.store.update(bid, status="reconstructing")
        data = self.store.bundle_path(bid).read_bytes()

        def progress(stage: str, done: int, total: int) -> None:
            if self.stop_event.is_set():
                raise _Stopped
            with self._lock:
                self._progress[bid] = {"stage": stage, "step": done, "total": total}

        t0 = time.monotonic()
        try:
            decoded = decode_bundle(data, progress)
        except CodecError as e:
            log.warning("bundle=%s cannot be reconstructed: %s", bid, e)
            self._finish(bid, "failed", str(e))
            return
        if self.stop_event.is_set():
            raise _Stopped
        folder = self.store.bundle_dir(bid)
        images = row["images"]
        for im, rgb in zip(images, decoded.images, strict=True):
            if rgb.shape != (im["height"], im["width"], 3):  # sr2/sr4: the output is the original size
                self._finish(bid, "failed", f"image {im['name']!r}: reconstruction is {rgb.shape[1]}x{rgb.shape[0]}, "
                                            f"expected {im['width']}x{im['height']}")
                return
        for im, rgb in zip(images, decoded.images, strict=True):
            path = folder / f"{im['index']:03d}.png"
            save_png(rgb, path)
            im["png_bytes"] = path.stat().st_size
        self.store.update(bid, images=images)
        log.info("reconstructed bundle=%s images=%d seconds=%.2f", bid, len(images), time.monotonic() - t0)
        self._finish(bid, "reconstructed", None)

    def _finish(self, bid: str, status: str, error: str | None) -> None:
        if self.stop_event.is_set():
            return
        self.store.update(bid, status=status, error=error)
        url = self.settings.notify_url
        if url:
            event = {"type": f"bundle.{status}", "id": bid, "status": status, "error": error,
                     "url": f"/v1/bundles/{bid}"}
            threading.Thread(target=self._notify, args=(url, event), name=f"notify-{bid[:8]}", daemon=True).start()

    def _notify(self, url: str, event: dict[str, Any]) -> None:
        """POST a signed JSON notice; retry connection errors, 429 and 5xx until the deadline."""
        body = json.dumps(event).encode()
        secrets = self.settings.secrets()
        msg_id = f"ntf_{event['id']}_{event['status']}"
        deadline = time.monotonic() + self.settings.notify_deadline_seconds
        delay = 0.5
        while not self.stop_event.is_set():
            headers = {"content-type": "application/json",
                       **signed_headers(secrets[0] if secrets else None, body, msg_id)}
            try:
                r = self.client.post(url, content=body, headers=headers)
                if r.status_code < 500 and r.status_code != 429:
                    log.info("notified %s bundle=%s answer=%d", url, event["id"], r.status_code)
                    return
                note = f"HTTP {r.status_code}"
            except httpx.TransportError as e:
                note = type(e).__name__
            wait = delay / 2 + random.uniform(0, delay / 2)
            if time.monotonic() + wait > deadline:
                log.warning("giving up notifying %s bundle=%s: %s", url, event["id"], note)
                return
            self.stop_event.wait(wait)
            delay = min(delay * 2, 30.0)
