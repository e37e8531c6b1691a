"""Property tests: a mutated bundle is either rejected with BundleError or is byte-identical to
what the writer would produce for what the parser returned. Nothing else may escape."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from common.bundle import Bundle, BundleImage, parse_bundle, write_bundle
from common.errors import BundleError
from common.imageio import jpeg_encode
from tests.common.make_malicious import frame

FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

_RNG = np.random.default_rng(7)
JPEGS = [jpeg_encode(_RNG.integers(0, 256, (8, 8 + i, 3), dtype=np.uint8), 15) for i in range(2)]
SEEDS = [
    write_bundle(Bundle("fuzz-1", "2025-01-01T00:00:00", "restore", {"arch": "srvgg"}, "f" * 64,
                        {"kind": "delta", "step": 0.5}, b"\x07" * 6,
                        [BundleImage("a.png", 8, 8, JPEGS[0], {"q": 15}), BundleImage("b", 9, 8, JPEGS[1])],
                        {"bpp": 2.0})),
    write_bundle(Bundle("fuzz-2", "2025-01-01", "jpeg", None, None, {"kind": "none"}, b"",
                        [BundleImage("only.jpg", 8, 8, JPEGS[0])])),
]


def check(data: bytes) -> None:
    """The property: reject with BundleError, or accept exactly the writer's bytes."""
    try:
        bundle = parse_bundle(data)
    except BundleError as e:
        event(f"rejected: {str(e).split(':')[0][:40]}")
        return
    event("accepted")
    assert write_bundle(bundle) == data


# ------------------------------------------------------------------ raw byte mutations

positions = st.integers(0, 4096)
mutation = st.one_of(
    st.tuples(st.just("flip"), positions, st.integers(0, 7)),
    st.tuples(st.just("set"), positions, st.integers(0, 255)),
    st.tuples(st.just("truncate"), positions),
    st.tuples(st.just("insert"), positions, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), positions, st.integers(1, 64)),
    st.tuples(st.just("splice"), positions, positions, st.integers(1, 64)),
)


def mutate(data: bytes, op: tuple[Any, ...]) -> bytes:
    buf = bytearray(data)
    size = max(len(buf), 1)
    kind, at = op[0], op[1] % size
    if kind == "flip" and buf:
        buf[at] ^= 1 << op[2]
    elif kind == "set" and buf:
        buf[at] = op[2]
    elif kind == "truncate":
        del buf[at:]
    elif kind == "insert":
        buf[at:at] = op[2]
    elif kind == "delete":
        del buf[at: at + op[2]]
    elif kind == "splice":  # copy a chunk of the bundle over another place (a "plausible" corruption)
        src = op[2] % size
        buf[at: at + op[3]] = buf[src: src + op[3]]
    return bytes(buf)


@FUZZ
@given(seed=st.sampled_from(SEEDS), ops=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_bundles_are_rejected_or_identical(seed: bytes, ops: list[tuple[Any, ...]]) -> None:
    data = seed
    for op in ops:
        data = mutate(data, op)
    check(data)


# ------------------------------------------------------------------ header mutations behind a valid CRC
# The header CRC stops almost every random change above at the framing stage; these re-frame the
# mutated JSON with a correct length and CRC so that the schema and section checks get fuzzed.

def split(data: bytes) -> tuple[bytes, bytes]:
    n = struct.unpack_from("<Q", data, 12)[0]
    return data[20: 20 + n], data[24 + n:]


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", ".", "..", "../x", "a/b", "jpeg/0", "jpeg/1", "update", "none", "delta", "jpeg",
                       "sr2", "é", "\x00", "2025-01-01", "f" * 64])
    | st.text(max_size=8) | st.sampled_from([0, 1, 6, 8, 9, 65535, 65536, 2**32 - 1, 2**63, 2**64]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6) | st.sampled_from(["section", "kind", "name", "w", "h"]), inner,
                      max_size=3),
    max_leaves=8,
)


@FUZZ
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_header_value_mutations_are_rejected_or_identical(seed: bytes, data: st.DataObject) -> None:
    raw, area = split(seed)
    header = json.loads(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths(header)[1:]))
        parent = header
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(json_values)
        if not paths(header)[1:]:
            break
    check(frame(header, area))


@FUZZ
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_header_key_insertions_are_rejected_or_identical(seed: bytes, data: st.DataObject) -> None:
    """Adding a key anywhere, "section" in particular (the writer never emits it)."""
    raw, area = split(seed)
    header = json.loads(raw)
    objects = [p for p in paths(header) if isinstance(_at(header, p), dict)]
    target = _at(header, data.draw(st.sampled_from(objects)))
    key = data.draw(st.sampled_from(["section", "sections", "name", "offset", "kind", "w", "x"]))
    target[key] = data.draw(json_values)
    check(frame(header, area))


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        node = node[key]
    return node


# Section-table values near the boundaries: the true lengths and CRCs, off-by-one, 0, 2**32, 2**63, ...
table_ints = st.sampled_from([0, 1, 2, 5, 6, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**63 + 1, 2**64, -1])


@FUZZ
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_section_table_mutations_are_rejected_or_identical(seed: bytes, data: st.DataObject) -> None:
    raw, area = split(seed)
    header = json.loads(raw)
    table = header["sections"]
    truth = [v for pair in table for v in pair]
    value = st.sampled_from(truth) | st.sampled_from(truth).map(lambda v: v + 1) | table_ints | json_values
    pair = st.lists(value, min_size=2, max_size=2) | st.lists(value, max_size=3) | value
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["set", "replace", "insert", "delete", "swap"]))
        i = data.draw(st.integers(0, max(len(table) - 1, 0)))
        if op == "set" and table and isinstance(table[i], list) and table[i]:
            table[i][data.draw(st.integers(0, len(table[i]) - 1))] = data.draw(value)
        elif op == "replace" and table:
            table[i] = data.draw(pair)
        elif op == "insert":
            table.insert(i, data.draw(pair))
        elif op == "delete" and table:
            del table[i]
        elif op == "swap" and len(table) > 1:
            j = data.draw(st.integers(0, len(table) - 1))
            table[i], table[j] = table[j], table[i]
    check(frame(header, area))


@FUZZ
@given(seed=st.sampled_from(SEEDS), ops=st.lists(mutation, min_size=1, max_size=3))
def test_header_text_mutations_are_rejected_or_identical(seed: bytes, ops: list[tuple[Any, ...]]) -> None:
    raw, area = split(seed)
    for op in ops:
        raw = mutate(raw, op)
    check(frame(raw, area))


# ------------------------------------------------------------------ generated content

safe_names = st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"], exclude_characters="/\\"),
                     min_size=1, max_size=12).filter(lambda n: n not in (".", ".."))
infos = st.dictionaries(st.sampled_from(["q", "psnr", "psnr_jpeg", "note", "é", "section"]),
                        st.one_of(st.integers(0, 100), st.floats(allow_nan=False, allow_infinity=False),
                                  st.none(), st.text(max_size=4)), max_size=3)
images = st.lists(st.tuples(safe_names, st.integers(1, 65535), st.integers(1, 9), st.sampled_from(JPEGS), infos),
                  min_size=1, max_size=4, unique_by=lambda t: t[0])
json_objects = st.dictionaries(st.text(max_size=5), json_values, max_size=3)


@settings(max_examples=150, deadline=None, database=None)
@given(imgs=images, mode=st.sampled_from(["jpeg", "restore", "sr2", "sr4"]), kind=st.sampled_from(["delta", "full"]),
       update_bytes=st.binary(max_size=8), generator=st.none() | json_objects, metrics=json_objects,
       decision=json_objects)
def test_any_valid_content_round_trips_exactly(imgs: list[tuple[Any, ...]], mode: str, kind: str, update_bytes: bytes,
                                               generator: dict[str, Any] | None, metrics: dict[str, Any],
                                               decision: dict[str, Any]) -> None:
    update = {"kind": kind if update_bytes else "none", "step": 0.25}
    b = Bundle("gen", "2025-06-01T08:00:00Z", mode, generator, None, update, update_bytes,
               [BundleImage(*im) for im in imgs], metrics, decision)
    data = write_bundle(b)
    parsed = parse_bundle(data)
    assert parsed == b
    assert write_bundle(parsed) == data
