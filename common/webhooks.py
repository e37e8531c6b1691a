"""Standard Webhooks signing and verification (HMAC-SHA256 over ``id.timestamp.body``).

Pure functions, no web framework. The sender signs each delivery; the receiver verifies it:

    signed content = f"{webhook-id}.{webhook-timestamp}.".encode() + raw body
    webhook-signature: "v1,<base64 HMAC-SHA256(key, signed content)>"  (space-separated list allowed)

A secret is either ``whsec_<base64 key>`` (the Standard Webhooks form) or any other string,
whose UTF-8 bytes are the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as _secrets
import time
from collections.abc import Iterable, Mapping

from .errors import CodecError

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
DEFAULT_TOLERANCE = 300
MAX_SIGNATURES = 16
_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class SignatureError(CodecError):
    """A webhook is unsigned, signed with an unknown key, malformed, or outside the time window."""

    http_status = 401


def secret_key(secret: str | bytes) -> bytes:
    """The HMAC key for ``secret``: base64-decoded after ``whsec_``, else the UTF-8 bytes."""
    if isinstance(secret, bytes):
        key = secret
    elif secret.startswith("whsec_"):
        try:
            key = base64.b64decode(secret[len("whsec_"):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a whsec_ secret must be followed by valid base64") from None
    else:
        key = secret.encode("utf-8")
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def new_message_id() -> str:
    return "msg_" + _secrets.token_hex(12)


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value (``v1,<base64>``) for one message."""
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(
    secret: str | bytes | None, body: bytes, msg_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    """``webhook-id``/``-timestamp``/``-signature`` headers; no signature when ``secret`` is None."""
    msg_id = msg_id or new_message_id()
    ts = int(time.time()) if timestamp is None else int(timestamp)
    headers = {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(ts)}
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, msg_id, ts, body)
    return headers


def verify(
    secrets: str | bytes | Iterable[str | bytes],
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
) -> str:
    """Check a webhook's headers against ``body``; return its ``webhook-id``.

    Any of ``secrets`` may match any ``v1`` signature in the header (key rotation). Raises
    :class:`SignatureError` naming what is wrong. Cheap checks (presence, format, time) come first.
    """
    keys = [secret_key(s) for s in ([secrets] if isinstance(secrets, str | bytes) else secrets)]
    if not keys:
        raise ValueError("no webhook secret configured")
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, ts_text, sig_text = (h.get(n, "").strip() for n in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))
    missing = [n for n, v in ((ID_HEADER, msg_id), (TIMESTAMP_HEADER, ts_text), (SIGNATURE_HEADER, sig_text)) if not v]
    if missing:
        raise SignatureError(f"missing webhook header(s): {', '.join(missing)}")
    if not _ID_RE.match(msg_id):
        raise SignatureError(f"{ID_HEADER} must be 1-128 characters of A-Z a-z 0-9 _ . : -")
    if not ts_text.isdigit() or len(ts_text) > 12:
        raise SignatureError(f"{TIMESTAMP_HEADER} must be integer Unix seconds, got {ts_text[:32]!r}")
    ts = int(ts_text)
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} {ts} is {now - ts:+.0f} s from the receiver's clock; "
            f"the allowed skew is ±{tolerance} s"
        )
    offered = _parse_signatures(sig_text)
    signed = f"{msg_id}.{ts}.".encode() + body
    expected = [hmac.new(k, signed, hashlib.sha256).digest() for k in keys]
    # Compare every pair (constant time each) so the timing does not reveal which one matched.
    ok = False
    for sig in offered:
        for exp in expected:
            ok |= hmac.compare_digest(sig, exp)
    if not ok:
        raise SignatureError("webhook-signature does not match the body with any configured secret")
    return msg_id


def _parse_signatures(text: str) -> list[bytes]:
    out: list[bytes] = []
    for part in text.split()[:MAX_SIGNATURES]:
        version, _, value = part.partition(",")
        if version != "v1" or not value:
            continue
        try:
            out.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not out:
        raise SignatureError("webhook-signature holds no 'v1,<base64>' signature")
    return out
