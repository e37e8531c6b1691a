"""Delivery: what is retried (connect errors, 429, 5xx), what is not (410, other 4xx), signatures."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest

from common.webhooks import verify
from sender.delivery import Outcome, RetryPolicy, Stopped, deliver
from tests.sender.servers import SECRET

FAST = RetryPolicy(backoff=0.01, backoff_max=0.05)


def scripted(*answers: int | Exception) -> tuple[httpx.Client, list[httpx.Request]]:
    """A client whose successive requests get ``answers`` (status codes or transport errors)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        a = answers[min(len(seen), len(answers)) - 1]
        if isinstance(a, Exception):
            raise a
        body = {"id": "b1"} if a < 300 else {"detail": f"answer {a}"}
        return httpx.Response(a, json=body, headers={"retry-after": "0"} if a == 429 else {})

    return httpx.Client(transport=httpx.MockTransport(handler)), seen


def run(client: httpx.Client, deadline: float = 5.0, stop: threading.Event | None = None,
        on_attempt: Callable[[int, str], None] | None = None) -> Outcome:
    return deliver(client, "http://r/v1/bundles", b"bundle-bytes", secret=SECRET, msg_id="msg_fixed",
                   deadline=time.time() + deadline, policy=FAST, stop=stop or threading.Event(),
                   on_attempt=on_attempt)


def test_retries_until_acknowledged_with_the_same_id_and_fresh_signatures() -> None:
    client, seen = scripted(httpx.ConnectError("refused"), 503, 429, httpx.ReadTimeout("slow"), 202)
    notes: list[str] = []
    out = run(client, on_attempt=lambda n, note: notes.append(note))
    assert out == Outcome(True, 5, 202, {"id": "b1"})
    assert [n.split(":")[0] for n in notes] == ["ConnectError", "HTTP 503", "HTTP 429", "ReadTimeout"]
    for req in seen:
        assert req.headers["webhook-id"] == "msg_fixed"
        assert req.headers["content-type"] == "application/octet-stream"
        assert verify(SECRET, req.headers, req.content) == "msg_fixed"


@pytest.mark.parametrize(("status", "text"), [(410, "410 Gone"), (400, "refused"), (401, "refused"),
                                              (413, "refused"), (422, "refused")])
def test_no_retry_on_gone_or_refusal(status: int, text: str) -> None:
    client, seen = scripted(status, 202)
    out = run(client)
    assert not out.delivered and len(seen) == 1 and out.status_code == status
    assert text in (out.error or "") and f"answer {status}" in (out.error or "")


def test_gives_up_at_the_deadline() -> None:
    client, seen = scripted(500)
    t0 = time.monotonic()
    out = run(client, deadline=0.3)
    assert not out.delivered and "deadline" in (out.error or "") and "HTTP 500" in (out.error or "")
    assert len(seen) >= 3 and time.monotonic() - t0 < 2


def test_at_least_one_attempt_even_past_the_deadline() -> None:
    client, seen = scripted(202)
    assert run(client, deadline=-10).delivered and len(seen) == 1


def test_stop_interrupts_the_backoff() -> None:
    client, _ = scripted(503)
    stop = threading.Event()
    slow = RetryPolicy(backoff=30, backoff_max=30)
    threading.Timer(0.2, stop.set).start()
    t0 = time.monotonic()
    with pytest.raises(Stopped):
        deliver(client, "http://r", b"x", secret=None, msg_id="m", deadline=time.time() + 100, policy=slow, stop=stop)
    assert time.monotonic() - t0 < 5


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    p = RetryPolicy(backoff=1, backoff_max=8)
    for attempt, cap in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 8)]:
        delays = {p.delay(attempt) for _ in range(20)}
        assert all(cap / 2 <= d <= cap for d in delays) and len(delays) > 1
    assert p.delay(1, retry_after=5) == 5
    assert p.delay(1, retry_after=500) == 8


def test_insecure_mode_sends_no_signature() -> None:
    client, seen = scripted(202)
    deliver(client, "http://r", b"x", secret=None, msg_id="m", deadline=time.time() + 1, policy=FAST,
            stop=threading.Event())
    assert "webhook-signature" not in seen[0].headers and seen[0].headers["webhook-id"] == "m"
