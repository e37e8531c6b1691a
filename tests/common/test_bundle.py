"""Bundle container: exact round trips, the documented byte layout, and rejection of bad input."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.bundle import (
    FORMAT_VERSION,
    MAGIC,
    Bundle,
    BundleImage,
    BundleLimits,
    new_bundle_id,
    parse_bundle,
    peek_header,
    write_bundle,
)
from common.errors import BundleError, CodecError
from common.imageio import jpeg_encode
from tests.common.make_malicious import FOLDER, frame, make_cases

EXPECTED: dict[str, str] = json.loads((FOLDER / "EXPECTED.json").read_text())


def tiny_jpeg(seed: int, w: int = 8, h: int = 8) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return jpeg_encode(rgb, 25)


JPEGS = [tiny_jpeg(i, 8 + i, 8) for i in range(3)]


def make_bundle(**overrides: Any) -> Bundle:
    fields: dict[str, Any] = dict(
        bundle_id="b-0001", created="2025-03-01T12:00:00+00:00", mode="restore",
        generator={"arch": "srvgg", "channels": 16, "blocks": [1, 2]}, base_sha256="ab" * 32,
        update={"kind": "delta", "step": 0.0125, "params": ["body.0.bias"]}, update_bytes=b"\x00\x01\x02",
        images=[BundleImage(f"img{i}.png", 8 + i, 8, j, {"q": 25, "psnr_jpeg": 27.5 + i})
                for i, j in enumerate(JPEGS)],
        metrics={"bpp": 1.25}, decision={"ship_update": True},
    )
    fields.update(overrides)
    return Bundle(**fields)


@pytest.fixture(scope="module")
def good() -> bytes:
    return write_bundle(make_bundle())


def reject(data: bytes, limits: BundleLimits = BundleLimits()) -> str:
    """Parse must raise BundleError (nothing else); return its message."""
    with pytest.raises(BundleError) as info:
        parse_bundle(data, limits)
    return str(info.value)


# ------------------------------------------------------------------ round trips and layout

@pytest.mark.parametrize("overrides", [
    {},
    {"update": {"kind": "none"}, "update_bytes": b"", "metrics": {}, "decision": {}},
    {"update": {"kind": "full", "coder": "raw"}, "mode": "sr4", "generator": None, "base_sha256": None},
    {"images": [BundleImage("Straße – 写真 \U0001f600.jpg", 65535, 1, JPEGS[0])], "mode": "jpeg",
     "update": {"kind": "none"}, "update_bytes": b""},
])
def test_round_trip_is_bit_exact(overrides: dict[str, Any]) -> None:
    b = make_bundle(**overrides)
    data = write_bundle(b)
    parsed = parse_bundle(data)
    assert parsed == b
    assert write_bundle(parsed) == data
    assert parsed.header_bytes == b.header_bytes == 24 + struct.unpack_from("<Q", data, 12)[0]
    assert peek_header(data)["bundle_id"] == b.bundle_id


def test_byte_layout_matches_the_documentation(good: bytes) -> None:
    magic, version, n = struct.unpack_from("<8sIQ", good)
    assert (magic, version) == (b"\x89GCB\r\n\x1a\n", 1) and magic == MAGIC and FORMAT_VERSION == 1
    raw = good[20: 20 + n]
    assert struct.unpack_from("<I", good, 20 + n)[0] == zlib.crc32(raw)
    assert raw.isascii() and b" " not in raw
    header = json.loads(raw)
    assert list(header) == ["format", "bundle_id", "created", "mode", "generator", "base_sha256",
                            "update", "images", "sections", "metrics", "decision"]
    assert header["update"] == {"kind": "delta", "step": 0.0125, "params": ["body.0.bias"]}
    assert header["images"][1] == {"name": "img1.png", "w": 9, "h": 8, "q": 25, "psnr_jpeg": 28.5}
    data = good[24 + n:]
    blobs = [*JPEGS, b"\x00\x01\x02"]  # jpeg/0, jpeg/1, jpeg/2, update: implied by position
    assert data == b"".join(blobs)
    assert header["sections"] == [[len(blob), zlib.crc32(blob)] for blob in blobs]


def test_header_is_compact() -> None:
    """Per-image header cost: the image object plus one [length, crc32] pair, nothing else."""
    one = make_bundle(images=[BundleImage("a.png", 8, 8, JPEGS[0])], metrics={}, decision={})
    two = make_bundle(images=[BundleImage("a.png", 8, 8, JPEGS[0]), BundleImage("b.png", 8, 8, JPEGS[1])],
                      metrics={}, decision={})
    write_bundle(one)
    write_bundle(two)
    per_image = two.header_bytes - one.header_bytes
    entry = f',{{"name":"b.png","w":8,"h":8}},[{len(JPEGS[1])},{zlib.crc32(JPEGS[1])}]'
    assert per_image == len(entry) <= 48
    assert b"\"section\"" not in write_bundle(two)[: two.header_bytes]


def test_accepts_bytearray_and_memoryview(good: bytes) -> None:
    assert parse_bundle(bytearray(good)) == parse_bundle(memoryview(good)) == parse_bundle(good)


def test_new_bundle_id_is_valid_and_fresh() -> None:
    ids = {new_bundle_id() for _ in range(100)}
    assert len(ids) == 100
    write_bundle(make_bundle(bundle_id=ids.pop()))


# ------------------------------------------------------------------ corrupted bundles

def test_every_truncation_is_rejected(good: bytes) -> None:
    for k in range(len(good)):
        reject(good[:k])


@pytest.mark.parametrize("extra", [b"\0", b"\xff\xd9", b"x" * 1000])
def test_trailing_bytes_are_rejected(good: bytes, extra: bytes) -> None:
    assert "trailing bytes" in reject(good + extra)


def test_every_single_bit_flip_is_rejected(good: bytes) -> None:
    for i in range(len(good)):
        for bit in range(8):
            flipped = bytearray(good)
            flipped[i] ^= 1 << bit
            reject(bytes(flipped))


def test_swapped_jpeg_payloads_are_caught_by_crc(good: bytes) -> None:
    n = struct.unpack_from("<Q", good, 12)[0]
    a, b = JPEGS[0], JPEGS[1]
    swapped = good[: 24 + n] + b + a + good[24 + n + len(a) + len(b):]
    assert len(swapped) == len(good)
    assert "CRC-32 mismatch" in reject(swapped)


def test_reordered_section_entries_are_rejected(good: bytes) -> None:
    h = peek_header(good)
    n = struct.unpack_from("<Q", good, 12)[0]
    h["sections"][0], h["sections"][1] = h["sections"][1], h["sections"][0]
    assert "section jpeg/0 CRC-32 mismatch" in reject(frame(h, good[24 + n:]))


def _shorten_first(sections: list[list[int]]) -> list[list[int]]:
    return [[sections[0][0] - 10, sections[0][1]], *sections[1:]]


@pytest.mark.parametrize(("edit", "message"), [
    (_shorten_first, "section lengths do not add up: 10 trailing bytes after the last section"),
    (lambda s: [s[1], s[0], *s[2:]], "section jpeg/0 CRC-32 mismatch"),
    (lambda s: s[:3], "sections must be a list of 4 [length, crc32] pairs"),
    (lambda s: [*s, [1, 0]], "got 5 entries"),
    (lambda s: [[*s[0], 0], *s[1:]], "sections[0] (jpeg/0) must be a [length, crc32] pair of integers"),
    (lambda s: [s[0][:1], *s[1:]], "must be a [length, crc32] pair"),
    (lambda s: [{"length": s[0][0], "crc32": s[0][1]}, *s[1:]], "must be a [length, crc32] pair"),
    (lambda s: [[False, 0], *s[1:]], "sections[0] (jpeg/0) length must be an integer in 1..9223372036854775808, got False"),
    (lambda s: [*s[:3], [3, 0.0]], "sections[3] (update) crc32 must be an integer in 0..4294967295, got 0.0"),
    (lambda s: [[2**63 + 1, 0], *s[1:]], "length must be an integer in 1..9223372036854775808, got 9223372036854775809"),
    (lambda s: [[2**63, 0]] * 4, "section lengths do not add up: sections[0] (jpeg/0) has length 9223372036854775808"),
    (lambda s: "[]", "sections must be a list of 4 [length, crc32] pairs, one per section ['jpeg/0', 'jpeg/1',"),
])
def test_bad_section_tables_are_rejected(good: bytes, edit: Any, message: str) -> None:
    h = peek_header(good)
    n = struct.unpack_from("<Q", good, 12)[0]
    h["sections"] = edit(h["sections"])
    assert message in reject(frame(h, good[24 + n:]))


def test_update_section_key_is_rejected_by_the_parser(good: bytes) -> None:
    h = peek_header(good)
    n = struct.unpack_from("<Q", good, 12)[0]
    h["update"] = {"kind": "delta", "section": "update", **{k: v for k, v in h["update"].items() if k != "kind"}}
    assert "update must not carry 'section'" in reject(frame(h, good[24 + n:]))


def _reframe(good: bytes, edit: Any) -> bytes:
    n = struct.unpack_from("<Q", good, 12)[0]
    raw = edit(good[20: 20 + n].decode())
    return frame(raw.encode(), good[24 + n:])


@pytest.mark.parametrize("edit", [
    lambda t: json.dumps(json.loads(t)),  # whitespace
    lambda t: json.dumps(dict(reversed(json.loads(t).items())), separators=(",", ":")),  # key order
    lambda t: t.replace('"step":0.0125', '"step":1.25e-2'),  # number spelling
    lambda t: t.replace('"img0.png"', '"img0\\u002epng"'),  # needless escape of "."
    lambda t: t.replace('"img1.png"', '"é.png"'),  # raw UTF-8 instead of \u00e9
    lambda t: t.replace('"decision":{"ship_update":true}', '"decision":{}'),  # empty optional object
], ids=["whitespace", "key-order", "number-spelling", "needless-escape", "raw-utf8", "empty-decision"])
def test_non_canonical_headers_are_rejected(good: bytes, edit: Any) -> None:
    assert "not in canonical form" in reject(_reframe(good, edit))


def test_canonical_reframe_is_accepted(good: bytes) -> None:
    assert _reframe(good, lambda t: t) == good


# ------------------------------------------------------------------ limits

def test_size_limit_is_checked_before_anything_else(good: bytes) -> None:
    limits = BundleLimits(max_bundle_bytes=len(good) - 1)
    assert f"the limit is {len(good) - 1} bytes" in reject(good, limits)
    assert "the limit is 10 bytes" in reject(b"garbage, not even the magic", BundleLimits(max_bundle_bytes=10))
    parse_bundle(good, BundleLimits(max_bundle_bytes=len(good)))


@pytest.mark.parametrize(("limits", "message"), [
    (BundleLimits(max_header_bytes=100), "is outside 2..100"),
    (BundleLimits(max_images=2), "images must be a list of 1..2 entries, got 3 entries"),
    (BundleLimits(max_pixels=70), "images[1] is 9x8 = 72 pixels; the limit is 70 pixels"),
])
def test_configurable_limits(good: bytes, limits: BundleLimits, message: str) -> None:
    assert message in reject(good, limits)
    with pytest.raises(BundleError):
        write_bundle(make_bundle(), limits)


def test_errors_map_to_http_400(good: bytes) -> None:
    with pytest.raises(CodecError) as info:
        parse_bundle(good[:-1])
    assert info.value.http_status == 400


def test_non_bytes_input_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse_bundle("not bytes")  # type: ignore[arg-type]


# ------------------------------------------------------------------ the writer applies the same rules

@pytest.mark.parametrize(("overrides", "message"), [
    ({"images": [BundleImage("a", 8, 8, JPEGS[0], {"w": 3})]}, "collide with the reserved keys"),
    ({"images": [BundleImage("../a", 8, 8, JPEGS[0])]}, "is not a safe file name"),
    ({"images": [BundleImage("a", np.int64(8), 8, JPEGS[0])]}, "images[0].w must be an integer"),  # type: ignore[arg-type]
    ({"images": [BundleImage("a", 8, 8, b"not a jpeg")]}, "section jpeg/0 is not a JPEG"),
    ({"images": [BundleImage("a", 8, 8, JPEGS[0], {"psnr": float("inf")})]}, "not JSON-serialisable"),
    ({"images": [BundleImage("a", 8, 8, JPEGS[0], {"q": np.float32(1)})]}, "not JSON-serialisable"),
    ({"images": []}, "images must be a list of 1..1000 entries, got 0 entries"),
    ({"update": {"kind": "none"}}, "update.kind 'none' needs empty update_bytes, got 3 bytes"),
    ({"update_bytes": b""}, "update.kind 'delta' needs non-empty update_bytes"),
    ({"images": [BundleImage("a", 8, 8, JPEGS[0], {"name": "b"})]}, "collide with the reserved keys"),
    ({"images": [BundleImage("a", 8, 8, JPEGS[0], {"h": 8})]}, "collide with the reserved keys"),
    ({"update": {"kind": "delta", "section": "jpeg/0"}}, "update must not carry 'section'"),
    ({"update": {"kind": "delta", "section": "update"}}, "update must not carry 'section'"),
    ({"update": {"kind": "none", "section": None}, "update_bytes": b""}, "update must not carry 'section'"),
    ({"update_bytes": "abc"}, "update_bytes must be bytes, got 'abc'"),
    ({"update": {"kind": "diff"}}, "update.kind must be one of"),
    ({"mode": "sr3"}, "mode must be one of"),
    ({"created": "2025-13-45"}, "created must be an ISO 8601"),
    ({"metrics": {"deep": json.loads("[" * 40 + "]" * 40)}}, "nested deeper than 32 levels"),
])
def test_writer_rejects_what_the_parser_would(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(BundleError) as info:
        write_bundle(make_bundle(**overrides))
    assert message in str(info.value)


def test_section_is_an_ordinary_image_info_key() -> None:
    """Only name/w/h are reserved in an image object; the JPEG of image i is always section i."""
    b = make_bundle(images=[BundleImage("a", 8, 8, JPEGS[0], {"section": "jpeg/1"}),
                            BundleImage("b", 9, 8, JPEGS[1])])
    data = write_bundle(b)
    parsed = parse_bundle(data)
    assert parsed == b and parsed.images[0].jpeg == JPEGS[0] and write_bundle(parsed) == data


def test_writer_size_limits() -> None:
    b = make_bundle()
    size = len(write_bundle(b))
    with pytest.raises(BundleError, match=f"bundle would be {size} bytes"):
        write_bundle(b, BundleLimits(max_bundle_bytes=size - 1))
    with pytest.raises(BundleError, match="header length .* is outside 2..64"):
        write_bundle(b, BundleLimits(max_header_bytes=64))


# ------------------------------------------------------------------ the malicious folder

def test_malicious_folder_is_complete() -> None:
    files = {p.name for p in Path(FOLDER).iterdir() if p.suffix == ".bin"}
    assert files == set(EXPECTED)
    assert {name: msg for name, (_, msg) in make_cases().items()} == EXPECTED
    assert len(files) >= 25


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malicious_bundle_is_rejected_with_its_message(name: str) -> None:
    message = reject((FOLDER / name).read_bytes())
    assert EXPECTED[name] in message
    assert len(message) < 400
