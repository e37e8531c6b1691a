"""common.webhooks: Standard Webhooks signatures, as the receiver checks them."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.webhooks import SignatureError, secret_key, sign, signed_headers, verify

KEY = b"0123456789abcdef0123456789abcdef"
WHSEC = "whsec_" + base64.b64encode(KEY).decode()
NOW = 1_700_000_000


def test_sign_matches_the_standard_webhooks_construction() -> None:
    body = b'{"a":1}'
    expected = base64.b64encode(hmac.new(KEY, b"msg_1.1700000000." + body, hashlib.sha256).digest()).decode()
    assert sign(WHSEC, "msg_1", NOW, body) == "v1," + expected
    # A plain (non-whsec) secret is used as its UTF-8 bytes.
    assert sign(KEY.decode(), "msg_1", NOW, body) == sign(WHSEC, "msg_1", NOW, body)


def test_verify_accepts_and_returns_the_id() -> None:
    h = signed_headers(WHSEC, b"body", "msg_x", NOW)
    assert verify(WHSEC, h, b"body", now=NOW + 10) == "msg_x"
    assert verify([WHSEC], {k.upper(): v for k, v in h.items()}, b"body", now=NOW) == "msg_x"


def test_several_signatures_and_key_rotation() -> None:
    old, new = "old-secret-0123456789", "new-secret-0123456789"
    h = signed_headers(old, b"x", "msg_r", NOW)
    h["webhook-signature"] = "v1,AAAA " + sign(new, "msg_r", NOW, b"x") + " v2,zzz " + h["webhook-signature"]
    assert verify([new], h, b"x", now=NOW) == "msg_r"
    assert verify([old], h, b"x", now=NOW) == "msg_r"
    with pytest.raises(SignatureError, match="does not match"):
        verify(["third-secret-0123456789"], h, b"x", now=NOW)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: h.pop("webhook-signature"), "missing webhook header"),
        (lambda h: h.pop("webhook-id"), "missing webhook header"),
        (lambda h: h.update({"webhook-timestamp": "soon"}), "integer Unix seconds"),
        (lambda h: h.update({"webhook-timestamp": str(NOW - 301)}), "allowed skew"),
        (lambda h: h.update({"webhook-timestamp": str(NOW + 301)}), "allowed skew"),
        (lambda h: h.update({"webhook-id": "../etc/passwd"}), "webhook-id must be"),
        (lambda h: h.update({"webhook-signature": "v1,not-base64!"}), "no 'v1,<base64>'"),
        (lambda h: h.update({"webhook-signature": "v2," + h["webhook-signature"][3:]}), "no 'v1,<base64>'"),
    ],
)
def test_verify_rejects(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    h = signed_headers(WHSEC, b"body", "msg_1", NOW)
    mutate(h)
    with pytest.raises(SignatureError, match=message) as e:
        verify(WHSEC, h, b"body", now=NOW)
    assert e.value.http_status == 401


def test_tampered_body_or_id_is_rejected() -> None:
    h = signed_headers(WHSEC, b"body", "msg_1", NOW)
    with pytest.raises(SignatureError):
        verify(WHSEC, h, b"body!", now=NOW)
    with pytest.raises(SignatureError):
        verify(WHSEC, {**h, "webhook-id": "msg_2"}, b"body", now=NOW)


def test_bad_secrets() -> None:
    with pytest.raises(ValueError, match="base64"):
        secret_key("whsec_%%%")
    with pytest.raises(ValueError, match="empty"):
        secret_key("")


@given(body=st.binary(max_size=256), msg_id=st.from_regex(r"\A[A-Za-z0-9_.:-]{1,40}\Z"),
       skew=st.integers(-300, 300))
def test_roundtrip_property(body: bytes, msg_id: str, skew: int) -> None:
    h = signed_headers(WHSEC, body, msg_id, NOW)
    assert verify(WHSEC, h, body, now=NOW + skew) == msg_id
