"""Live progress of running transfers, kept in memory (it is cheap to lose on a restart)."""

from __future__ import annotations

import threading
import time
from typing import Any


class ProgressBoard:
    """Latest ``(stage, step, total)`` per transfer with an ETA from the stage's step rate."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, dict[str, Any]] = {}

    def update(self, transfer_id: str, stage: str, step: int, total: int) -> None:
        now = time.monotonic()
        with self._lock:
            item = self._items.get(transfer_id)
            if item is None or item["stage"] != stage or step < item["step"]:
                item = {"stage": stage, "step": 0, "total": total, "t0": now}
                self._items[transfer_id] = item
            item["step"], item["total"], item["t"] = step, total, now

    def clear(self, transfer_id: str) -> None:
        with self._lock:
            self._items.pop(transfer_id, None)

    def get(self, transfer_id: str) -> dict[str, Any] | None:
        with self._lock:
            item = self._items.get(transfer_id)
            if item is None:
                return None
            item = dict(item)
        elapsed = time.monotonic() - item["t0"]
        step, total = int(item["step"]), int(item["total"])
        eta = elapsed / step * (total - step) if step > 0 and total >= step else None
        return {
            "stage": item["stage"],
            "step": step,
            "total": total,
            "elapsed_seconds": round(elapsed, 2),
            "eta_seconds": None if eta is None else round(eta, 2),
        }
