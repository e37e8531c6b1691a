"""Bundle container: the bytes a sender ships and a receiver parses (format version 1).

Byte layout, all integers little-endian (docs/bundle-format.md has the full specification)::

    offset   size  field
    0        8     magic b"\\x89GCB\\r\\n\\x1a\\n"  (89 47 43 42 0D 0A 1A 0A)
    8        4     u32 format version, = 1
    12       8     u64 N, header length, 2 <= N <= limits.max_header_bytes
    20       N     header: compact, ASCII-only JSON object
    20+N     4     u32 CRC-32 (zlib.crc32) of the N header bytes
    24+N     ...   data area: sections "jpeg/0" .. "jpeg/{n-1}" [, "update"], back to back

``header["sections"]`` is one ``[length, crc32]`` pair per section in that fixed order; names and
offsets are implied (section i starts where section i-1 ends), and the lengths must add up to the
data-area size exactly, so there are no gaps, no overlaps and nothing after the last section. The
header must be byte-identical to what :func:`write_bundle` writes for the same content, so every
accepted bundle re-serialises to exactly its input. Any violation raises ``BundleError`` quoting
the bad value and the allowed range, cheapest check first. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import math
import re
import struct
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

from .errors import BundleError

MAGIC = b"\x89GCB\r\n\x1a\n"
FORMAT_VERSION = 1
MODES = ("jpeg", "restore", "sr2", "sr4")
UPDATE_KINDS = ("none", "delta", "full")
MAX_JSON_DEPTH = 32
MAX_INT = 2**63
MAX_SIDE = 65535
_PREFIX = struct.Struct("<8sIQ")  # magic, version, header length N
_CRC = struct.Struct("<I")
FIXED_BYTES = _PREFIX.size + _CRC.size  # 24: everything outside the JSON and the data area
_REQUIRED = ("format", "bundle_id", "created", "mode", "generator", "base_sha256", "update", "images", "sections")
_OPTIONAL = ("metrics", "decision")
_IMAGE_KEYS = ("name", "w", "h")  # reserved: BundleImage.info must not use them
_BUNDLE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_BAD_NAME_CHAR = re.compile("[/\\\\\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# A JSON string (to its closing quote, or to the end if unterminated) or a bracket; linear time.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+"?|[\[\]{}]', re.DOTALL)
_JPEG_SOI, _JPEG_EOI = b"\xff\xd8\xff", b"\xff\xd9"
Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True)
class BundleLimits:
    """Caps a parser enforces before it allocates or trusts anything."""

    max_bundle_bytes: int = 512 * 2**20
    max_header_bytes: int = 2**20
    max_images: int = 1000
    max_pixels: int = 50_000_000


@dataclass
class BundleImage:
    """One payload image: a complete JPEG file of ``width x height`` pixels."""

    name: str
    width: int
    height: int
    jpeg: bytes
    info: dict[str, Any] = field(default_factory=dict)  # extra header keys ("q", "psnr_jpeg", ...)


@dataclass
class Bundle:
    """Parsed bundle. ``update`` is ``{"kind": "none"}`` or ``{"kind": "delta"|"full", ...}``."""

    bundle_id: str
    created: str
    mode: str
    generator: dict[str, Any] | None
    base_sha256: str | None
    update: dict[str, Any]
    update_bytes: bytes  # b"" iff update["kind"] == "none"
    images: list[BundleImage]
    metrics: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    header_bytes: int = field(default=0, compare=False)  # 24 + N: all bytes outside the sections


def new_bundle_id() -> str:
    """A fresh random bundle id (32 lowercase hex digits)."""
    return uuid.uuid4().hex


def _fail(msg: str) -> NoReturn:
    raise BundleError(msg)


def _q(value: Any) -> str:
    r = repr(value)
    return r if len(r) <= 80 else r[:77] + "..."


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if type(value) is not int or not lo <= value <= hi:  # bool and float are rejected too
        _fail(f"{where} must be an integer in {lo}..{hi}, got {_q(value)}")
    return value


def _dict(value: Any, where: str, nullable: bool = False) -> None:
    if not (isinstance(value, dict) or (nullable and value is None)):
        _fail(f"{where} must be a JSON object{' or null' if nullable else ''}, got {_q(value)}")


def _one_of(value: Any, where: str, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        _fail(f"{where} must be one of {list(allowed)}, got {_q(value)}")


def _frame(data: Buffer, limits: BundleLimits) -> tuple[memoryview, int]:
    """Check size, magic, version, header length and header CRC; return (view, N)."""
    view = memoryview(data).cast("B")  # TypeError for non-buffers: a caller bug, not bad input
    size = len(view)
    if size > limits.max_bundle_bytes:
        _fail(f"bundle is {size} bytes; the limit is {limits.max_bundle_bytes} bytes")
    head = bytes(view[:8])
    if head != MAGIC[: len(head)]:
        _fail(f"bad magic {head!r}; expected {MAGIC!r} (not a gancodec bundle)")
    if size < FIXED_BYTES + 2:
        _fail(f"bundle is truncated: {size} bytes; a bundle has at least {FIXED_BYTES + 2}")
    _, version, n = _PREFIX.unpack_from(view)
    if version != FORMAT_VERSION:
        _fail(f"format version {version} is not supported; this reader supports {FORMAT_VERSION}")
    if not 2 <= n <= limits.max_header_bytes:
        _fail(f"header length {n} is outside 2..{limits.max_header_bytes}")
    if n > size - FIXED_BYTES:
        _fail(f"header length {n} runs past the end of the bundle (at most {size - FIXED_BYTES} fits)")
    (crc,) = _CRC.unpack_from(view, _PREFIX.size + n)
    actual = zlib.crc32(view[_PREFIX.size: _PREFIX.size + n])
    if crc != actual:
        _fail(f"header CRC-32 mismatch: stored {crc:#010x}, computed {actual:#010x}")
    return view, n


def _reject_constant(token: str) -> NoReturn:
    _fail(f"header JSON contains {token}; NaN and Infinity are not allowed")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        _fail(f"header JSON number {_q(token)} is outside the finite float range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            _fail(f"header JSON repeats the key {_q(key)} in one object")
        out[key] = value
    return out


def _load_json(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        _fail(f"header is not valid UTF-8: byte {raw[e.start]:#04x} at offset {e.start}")
    depth = 0
    for m in _JSON_TOKEN.finditer(text):  # bound the depth before json.loads can recurse
        tok = m.group()
        depth += 1 if tok in ("[", "{") else -1 if tok in ("]", "}") else 0
        if depth > MAX_JSON_DEPTH:
            _fail(f"header JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        obj = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                         object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        _fail(f"header is not valid JSON: {e.msg} (character {e.pos})")
    except (ValueError, RecursionError) as e:  # e.g. an integer literal over 4300 digits
        _fail(f"header is not valid JSON: {_q(str(e))}")
    if not isinstance(obj, dict):
        _fail(f"header must be a JSON object, got {type(obj).__name__}")
    return obj


def peek_header(data: Buffer, limits: BundleLimits = BundleLimits()) -> dict[str, Any]:
    """The raw header dict after the framing and JSON checks only (no schema, no sections)."""
    view, n = _frame(data, limits)
    return _load_json(bytes(view[_PREFIX.size: _PREFIX.size + n]))


def _check_header(h: dict[str, Any], limits: BundleLimits) -> None:
    if missing := [k for k in _REQUIRED if k not in h]:
        _fail(f"header is missing required keys {missing}; required: {list(_REQUIRED)}")
    if unknown := [k for k in h if k not in _REQUIRED + _OPTIONAL]:
        _fail(f"header has unknown keys {_q(unknown)}; allowed: {list(_REQUIRED + _OPTIONAL)}")
    _int(h["format"], "header.format", FORMAT_VERSION, FORMAT_VERSION)
    if not isinstance(h["bundle_id"], str) or not _BUNDLE_ID.fullmatch(h["bundle_id"]):
        _fail(f"bundle_id must be 1..64 characters of A-Z a-z 0-9 _ -, got {_q(h['bundle_id'])}")
    created = h["created"]
    try:
        if not isinstance(created, str) or len(created) > 40:
            raise ValueError
        datetime.fromisoformat(created)
    except ValueError:
        _fail(f"created must be an ISO 8601 date-time of at most 40 characters, got {_q(created)}")
    _one_of(h["mode"], "mode", MODES)
    _dict(h["generator"], "generator", nullable=True)
    sha = h["base_sha256"]
    if sha is not None and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
        _fail(f"base_sha256 must be 64 lowercase hex digits or null, got {_q(sha)}")
    for key in _OPTIONAL:
        if key in h:
            _dict(h[key], key)
    update = h["update"]
    _dict(update, "update")
    if "kind" not in update:
        _fail(f"update must have the key 'kind', got keys {_q(list(update))}")
    if "section" in update:
        _fail(f"update must not carry 'section' (the update section is implied by update.kind), "
              f"got {_q(update['section'])}")
    _one_of(update["kind"], "update.kind", UPDATE_KINDS)
    _check_images(h["images"], limits)


def _check_images(images: Any, limits: BundleLimits) -> None:
    if not isinstance(images, list) or not 1 <= len(images) <= limits.max_images:
        count = f"{len(images)} entries" if isinstance(images, list) else _q(images)
        _fail(f"images must be a list of 1..{limits.max_images} entries, got {count}")
    names: set[str] = set()
    for i, im in enumerate(images):
        where = f"images[{i}]"
        _dict(im, where)
        if missing := [k for k in _IMAGE_KEYS if k not in im]:
            _fail(f"{where} is missing keys {missing}; required: {list(_IMAGE_KEYS)}")
        name = im["name"]
        if not isinstance(name, str) or not 1 <= len(name) <= 200:
            _fail(f"{where}.name must be a string of 1..200 characters, got {_q(name)}")
        if name in (".", "..") or _BAD_NAME_CHAR.search(name):
            _fail(f"{where}.name {_q(name)} is not a safe file name (no '/', '\\', control "
                  "characters or surrogates; not '.' or '..')")
        if name in names:
            _fail(f"{where}.name {_q(name)} is a duplicate image name")
        names.add(name)
        w = _int(im["w"], f"{where}.w", 1, MAX_SIDE)
        h = _int(im["h"], f"{where}.h", 1, MAX_SIDE)
        if w * h > limits.max_pixels:
            _fail(f"{where} is {w}x{h} = {w * h} pixels; the limit is {limits.max_pixels} pixels")


def _section_names(n_images: int, update_kind: str) -> list[str]:
    return [f"jpeg/{i}" for i in range(n_images)] + (["update"] if update_kind != "none" else [])


def _check_sections(h: dict[str, Any], data_len: int) -> list[tuple[str, int, int, int]]:
    """One ``[length, crc32]`` pair per implied section; the lengths add up to ``data_len`` exactly.

    Returns ``(name, offset, length, crc32)`` per section, offsets cumulative from 0.
    """
    names = _section_names(len(h["images"]), h["update"]["kind"])
    sections = h["sections"]
    if not isinstance(sections, list) or len(sections) != len(names):
        count = f"{len(sections)} entries" if isinstance(sections, list) else _q(sections)
        _fail(f"sections must be a list of {len(names)} [length, crc32] pairs, one per section "
              f"{_q(names)}, got {count}")
    out, end = [], 0
    for i, (s, name) in enumerate(zip(sections, names, strict=True)):
        where = f"sections[{i}] ({name})"
        if not isinstance(s, list) or len(s) != 2:
            _fail(f"{where} must be a [length, crc32] pair of integers, got {_q(s)}")
        length = _int(s[0], f"{where} length", 1, MAX_INT)
        crc = _int(s[1], f"{where} crc32", 0, 2**32 - 1)
        if length > data_len - end:  # never forms end + length, so a 64-bit reader cannot overflow
            _fail(f"section lengths do not add up: {where} has length {length} but only "
                  f"{data_len - end} of the {data_len} data-area bytes are left at offset {end}")
        out.append((name, end, length, crc))
        end += length
    if end != data_len:
        _fail(f"section lengths do not add up: {data_len - end} trailing bytes after the last section "
              f"(data area is {data_len} bytes, the lengths sum to {end})")
    return out


def parse_bundle(data: Buffer, limits: BundleLimits = BundleLimits()) -> Bundle:
    """Validate and decode a bundle; raises :class:`BundleError` on any violation."""
    view, n = _frame(data, limits)
    h = _load_json(bytes(view[_PREFIX.size: _PREFIX.size + n]))
    _check_header(h, limits)
    start = FIXED_BYTES + n
    sections = _check_sections(h, len(view) - start)
    blobs: dict[str, memoryview] = {}
    for name, off, length, crc in sections:
        blob = view[start + off: start + off + length]
        if zlib.crc32(blob) != crc:
            _fail(f"section {name} CRC-32 mismatch: header says {crc:#010x}, data has {zlib.crc32(blob):#010x}")
        blobs[name] = blob
    for name, blob in blobs.items():
        if name != "update" and (blob[:3] != _JPEG_SOI or blob[-2:] != _JPEG_EOI):
            _fail(f"section {name} is not a JPEG: starts {bytes(blob[:3]).hex()}, ends "
                  f"{bytes(blob[-2:]).hex()}; expected ffd8ff...ffd9")
    u = h["update"]
    images = [BundleImage(im["name"], im["w"], im["h"], bytes(blobs[f"jpeg/{i}"]),
                          {k: v for k, v in im.items() if k not in _IMAGE_KEYS})
              for i, im in enumerate(h["images"])]
    bundle = Bundle(h["bundle_id"], h["created"], h["mode"], h["generator"], h["base_sha256"],
                    {"kind": u["kind"], **{k: v for k, v in u.items() if k != "kind"}},
                    bytes(blobs.get("update", b"")), images, h.get("metrics", {}), h.get("decision", {}),
                    header_bytes=start)
    canonical = _dumps(_header_dict(bundle, h["sections"]))
    if canonical != view[_PREFIX.size: _PREFIX.size + n]:
        _fail("header JSON is not in canonical form (compact separators, ASCII escapes, the writer's "
              "key order, no empty 'metrics'/'decision'); re-write it with write_bundle")
    return bundle


def _header_dict(b: Bundle, sections: list[list[int]]) -> dict[str, Any]:
    rest = {k: v for k, v in b.update.items() if k != "kind"}
    h: dict[str, Any] = {
        "format": FORMAT_VERSION, "bundle_id": b.bundle_id, "created": b.created, "mode": b.mode,
        "generator": b.generator, "base_sha256": b.base_sha256,
        "update": {"kind": b.update.get("kind"), **rest},
        "images": [{"name": im.name, "w": im.width, "h": im.height, **im.info} for im in b.images],
        "sections": sections,
    }
    h.update({k: v for k, v in (("metrics", b.metrics), ("decision", b.decision)) if v})
    return h


def _dumps(h: dict[str, Any]) -> bytes:
    try:
        return json.dumps(h, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")
    except (TypeError, ValueError, RecursionError) as e:
        _fail(f"header is not JSON-serialisable (plain dict/list/str/int/finite float/bool/None only): {e}")


def _check_writable(b: Bundle) -> list[bytes]:
    """Type checks the writer needs before it can build the header; returns the section payloads."""
    for i, im in enumerate(b.images):
        if not isinstance(im, BundleImage) or not isinstance(im.jpeg, bytes) or not isinstance(im.info, dict):
            _fail(f"images[{i}] must be a BundleImage with jpeg bytes and an info dict, got {_q(im)}")
        if clash := [k for k in im.info if k in _IMAGE_KEYS]:
            _fail(f"images[{i}].info keys {clash} collide with the reserved keys {list(_IMAGE_KEYS)}")
    for key in ("update", "metrics", "decision"):
        _dict(getattr(b, key), f"Bundle.{key}")
    if "section" in b.update:
        _fail(f"update must not carry 'section' (the update section is implied by update.kind), "
              f"got {_q(b.update['section'])}")
    kind = b.update.get("kind")
    _one_of(kind, "update.kind", UPDATE_KINDS)
    if not isinstance(b.update_bytes, bytes):
        _fail(f"update_bytes must be bytes, got {_q(b.update_bytes)}")
    if (kind == "none") != (not b.update_bytes):
        _fail(f"update.kind {kind!r} needs {'empty' if kind == 'none' else 'non-empty'} update_bytes, "
              f"got {len(b.update_bytes)} bytes")
    return [im.jpeg for im in b.images] + ([b.update_bytes] if b.update_bytes else [])


def write_bundle(b: Bundle, limits: BundleLimits = BundleLimits()) -> bytes:
    """Serialise ``b`` under the same rules :func:`parse_bundle` enforces; sets ``b.header_bytes``."""
    blobs = _check_writable(b)
    sections = [[len(blob), zlib.crc32(blob)] for blob in blobs]
    offset = sum(len(blob) for blob in blobs)
    h = _header_dict(b, sections)
    _check_header(h, limits)  # clear schema errors before the JSON and size errors they may cause
    raw = _dumps(h)
    if FIXED_BYTES + len(raw) + offset > limits.max_bundle_bytes:
        _fail(f"bundle would be {FIXED_BYTES + len(raw) + offset} bytes; the limit is "
              f"{limits.max_bundle_bytes} bytes")
    out = b"".join([_PREFIX.pack(MAGIC, FORMAT_VERSION, len(raw)), raw, _CRC.pack(zlib.crc32(raw)), *blobs])
    parse_bundle(out, limits)  # the receiver's rules verbatim (header size, depth, markers, ...)
    b.header_bytes = FIXED_BYTES + len(raw)
    return out
