"""Delivering a bundle to the receiver: signed POST, retries with backoff and jitter, a deadline.

Retried: connection errors and timeouts, 429 and 5xx (``Retry-After`` honoured, capped).
Not retried: 410 (the receiver asks us to stop) and other 4xx (the bundle was refused).
Every attempt re-signs with a fresh timestamp but keeps the same ``webhook-id``, so the
receiver can drop duplicates.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from common.webhooks import signed_headers

log = logging.getLogger(__name__)


class Stopped(Exception):
    """The service is shutting down; the job stays where it is and resumes at the next start."""


@dataclass
class Outcome:
    delivered: bool
    attempts: int
    status_code: int | None = None
    answer: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class RetryPolicy:
    backoff: float = 0.5
    backoff_max: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random."""
        cap = min(self.backoff_max, self.backoff * 2 ** min(attempt - 1, 30))
        base = cap / 2 + random.uniform(0, cap / 2)
        return min(self.backoff_max, max(base, retry_after or 0.0))


def deliver(
    client: httpx.Client,
    url: str,
    body: bytes,
    *,
    secret: str | None,
    msg_id: str,
    deadline: float,
    policy: RetryPolicy,
    stop: threading.Event,
    on_attempt: Callable[[int, str], None] | None = None,
) -> Outcome:
    """POST ``body`` until acknowledged (2xx), refused, or ``deadline`` (Unix time) passes.

    At least one attempt is always made. Raises :class:`Stopped` when ``stop`` is set.
    """
    attempt = 0
    while True:
        if stop.is_set():
            raise Stopped
        attempt += 1
        headers = {"content-type": "application/octet-stream", **signed_headers(secret, body, msg_id)}
        retry_after: float | None = None
        try:
            r = client.post(url, content=body, headers=headers)
        except httpx.TransportError as e:
            note = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        else:
            answer = _json(r)
            if r.is_success:
                return Outcome(True, attempt, r.status_code, answer)
            note = f"HTTP {r.status_code}: {answer.get('detail', r.reason_phrase)}"
            if r.status_code == 410:
                return Outcome(False, attempt, 410, answer, f"receiver answered 410 Gone; not retrying ({note})")
            if r.status_code != 429 and r.status_code < 500:
                return Outcome(False, attempt, r.status_code, answer, f"receiver refused the bundle: {note}")
            retry_after = _retry_after(r)
        if on_attempt is not None:
            on_attempt(attempt, note)
        delay = policy.delay(attempt, retry_after)
        if time.time() + delay > deadline:
            return Outcome(False, attempt, None, {}, f"delivery deadline passed after {attempt} attempts; last: {note}")
        log.info("delivery retry url=%s attempt=%d delay=%.2fs reason=%s", url, attempt, delay, note)
        if stop.wait(delay):
            raise Stopped


def _json(r: httpx.Response) -> dict[str, Any]:
    try:
        data = r.json()
    except ValueError:
        return {"detail": r.text[:300]} if r.text else {}
    return data if isinstance(data, dict) else {"answer": data}


def _retry_after(r: httpx.Response) -> float | None:
    value = r.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
