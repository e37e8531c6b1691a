"""Background work off the event loop: encode (fine-tune) threads and delivery threads.

    POST ─▶ queued ─▶ encoding ─▶ training ─▶ delivering ─▶ delivered
                         (encode threads: settings.workers)    (delivery threads)
             any step can end in ─▶ failed

A restart resumes: queued/encoding/training jobs are re-encoded from the stored uploads;
a delivering job re-sends its stored bundle with the same webhook-id; finished jobs stay.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from common.errors import CodecError
from common.imageio import load_image
from common.webhooks import new_message_id

from .delivery import RetryPolicy, Stopped, deliver
from .progress import ProgressBoard
from .settings import SenderSettings
from .store import TransferStore, write_atomic

log = logging.getLogger(__name__)

_STAGE_STATUS = {"encoding": "encoding", "training": "training", "measuring": "training"}


def run_encode(images: list[tuple[str, np.ndarray]], options: dict[str, Any], device: str, progress: Any) -> Any:
    """Run the codec (imported here: torch is slow to import and only the worker needs it)."""
    from common.codec import EncodeOptions, encode_images

    return encode_images(images, EncodeOptions(**options, device=device), progress)


class TransferWorker:
    def __init__(self, store: TransferStore, settings: SenderSettings, client: httpx.Client, board: ProgressBoard):
        self.store, self.settings, self.client, self.board = store, settings, client, board
        self.stop_event = threading.Event()
        self._encode_q: queue.Queue[str] = queue.Queue()
        self._deliver_q: queue.Queue[str] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self.policy = RetryPolicy(settings.delivery_backoff_seconds, settings.delivery_backoff_max_seconds)

    def start(self) -> None:
        self.resume()
        for i in range(self.settings.workers):
            self._spawn(f"sender-encode-{i}", self._encode_q, self._encode)
        for i in range(self.settings.delivery_workers):
            self._spawn(f"sender-deliver-{i}", self._deliver_q, self._deliver)

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
            if t.is_alive():
                log.warning("worker thread %s still busy at shutdown; its job resumes at the next start", t.name)

    def enqueue(self, transfer_id: str) -> None:
        self._encode_q.put(transfer_id)

    def enqueue_delivery(self, transfer_id: str) -> None:
        self._deliver_q.put(transfer_id)

    def resume(self) -> None:
        for tid, status in self.store.unfinished():
            if status == "delivering" and self.store.bundle_path(tid).exists():
                log.info("resuming delivery transfer=%s", tid)
                self.enqueue_delivery(tid)
            else:
                log.info("resuming transfer=%s from status=%s", tid, status)
                self.store.update(tid, status="queued")
                self.enqueue(tid)

    def _spawn(self, name: str, q: queue.Queue[str], fn: Any) -> None:
        t = threading.Thread(target=self._loop, args=(q, fn), name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _loop(self, q: queue.Queue[str], fn: Any) -> None:
        while not self.stop_event.is_set():
            try:
                tid = q.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                fn(tid)
            except Stopped:
                log.info("transfer=%s interrupted by shutdown; it resumes at the next start", tid)
            except Exception as e:  # a bug must fail the job, not kill the worker thread
                log.exception("transfer=%s crashed", tid)
                self._safe_fail(tid, f"internal error: {type(e).__name__}: {e}")
            finally:
                self.board.clear(tid)

    def _safe_fail(self, tid: str, error: str) -> None:
        if not self.stop_event.is_set():
            self.store.update(tid, status="failed", error=error)

    # -- encoding ---------------------------------------------------------------------------

    def encode_options(self, stored: dict[str, Any]) -> dict[str, Any]:
        """The stored (client) options plus what only the server decides: the VGG19 file of the
        perceptual objective comes from SENDER_VGG_WEIGHTS, never from a stored option."""
        options = {k: v for k, v in stored.items() if k not in ("vgg_weights", "base", "device")}
        if options.get("objective") == "perceptual" and self.settings.vgg_weights is not None:
            options["vgg_weights"] = str(self.settings.vgg_weights)
        return options

    def _encode(self, tid: str) -> None:
        job = self.store.get(tid)
        if job is None or job["status"] != "queued":
            return
        self.store.update(tid, status="encoding", error=None)
        folder = self.store.job_dir(tid) / "uploads"
        current = ["encoding"]

        def progress(stage: str, done: int, total: int) -> None:
            if self.stop_event.is_set():
                raise Stopped
            status = _STAGE_STATUS.get(stage, current[0])
            if status != current[0]:
                current[0] = status
                self.store.update(tid, status=status)
            self.board.update(tid, stage, done, total)

        log.info("encoding transfer=%s images=%d options=%s", tid, len(job["images"]), job["options"])
        t0 = time.monotonic()
        try:
            images = [(im["name"], load_image(Path(folder, im["file"]), max_pixels=self.settings.max_pixels))
                      for im in job["images"]]
            result = run_encode(images, self.encode_options(job["options"]), self.settings.device, progress)
        except CodecError as e:
            log.warning("transfer=%s failed: %s", tid, e)
            from common.perceptual import VGGWeightsError  # (torch is imported by now)

            # The VGG file is the operator's: its path stays in the log, out of the client's view.
            self._safe_fail(tid, "the sender's SENDER_VGG_WEIGHTS file cannot be used (see the sender's log)"
                            if isinstance(e, VGGWeightsError) else str(e))
            return
        if self.stop_event.is_set():
            raise Stopped
        write_atomic(self.store.bundle_path(tid), result.bundle)
        self.store.update(
            tid, status="delivering", summary=result.summary, bundle_id=result.summary["bundle_id"],
            webhook_id=new_message_id(), delivery={"attempts": 0},
        )
        log.info("encoded transfer=%s bundle_bytes=%d seconds=%.1f", tid, len(result.bundle), time.monotonic() - t0)
        self.enqueue_delivery(tid)

    # -- delivery ---------------------------------------------------------------------------

    def _deliver(self, tid: str) -> None:
        job = self.store.get(tid)
        if job is None or job["status"] != "delivering":
            return
        body = self.store.bundle_path(tid).read_bytes()
        state = dict(job["delivery"] or {})
        state.setdefault("first_attempt", time.time())
        state.setdefault("attempts", 0)
        deadline = state["first_attempt"] + self.settings.delivery_deadline_seconds
        base_attempts = int(state["attempts"])

        def on_attempt(n: int, note: str) -> None:
            if self.stop_event.is_set():
                return
            state.update(attempts=base_attempts + n, last_error=note)
            self.store.update(tid, delivery=state)
            self.board.update(tid, "delivering", base_attempts + n, 0)

        self.board.update(tid, "delivering", base_attempts, 0)
        out = deliver(self.client, job["receiver_url"], body, secret=self.settings.secret_value,
                      msg_id=job["webhook_id"], deadline=deadline, policy=self.policy, stop=self.stop_event,
                      on_attempt=on_attempt)
        state.update(attempts=base_attempts + out.attempts, status_code=out.status_code, receiver=out.answer,
                     last_error=out.error)
        if out.delivered:
            state["delivered_at"] = time.time()
            self.store.update(tid, status="delivered", delivery=state)
            log.info("delivered transfer=%s bundle=%s attempts=%d", tid, job["bundle_id"], state["attempts"])
        else:
            self.store.update(tid, status="failed", delivery=state, error=out.error)
            log.warning("delivery failed transfer=%s: %s", tid, out.error)
