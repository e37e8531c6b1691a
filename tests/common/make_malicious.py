"""Write the adversarial bundles in ``tests/common/malicious/`` and their EXPECTED.json.

Run from the repository root: ``python -m tests.common.make_malicious``. Each file is a small
valid bundle with one thing broken; EXPECTED.json maps the file name to a substring of the
BundleError message it must produce. Header CRCs are recomputed, so each case reaches the check
it targets instead of failing early on the CRC.
"""

from __future__ import annotations

import copy
import json
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from common.bundle import MAGIC, Bundle, BundleImage, peek_header, write_bundle
from common.imageio import jpeg_encode

FOLDER = Path(__file__).with_name("malicious")
Header = dict[str, Any]


def valid_bundle() -> bytes:
    """Two 8x8 JPEGs and a 5-byte delta update; fixed ids so the files are reproducible."""
    rng = np.random.default_rng(1234)
    jpegs = [jpeg_encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), 20) for _ in range(2)]
    return write_bundle(Bundle(
        bundle_id="malicious-base", created="2025-01-01T00:00:00+00:00", mode="restore",
        generator={"arch": "srvgg", "channels": 16}, base_sha256="0" * 64,
        update={"kind": "delta", "step": 0.01}, update_bytes=b"\x01\x02\x03\x04\x05",
        images=[BundleImage("a.png", 8, 8, jpegs[0], {"q": 20}), BundleImage("b.png", 8, 8, jpegs[1])],
    ))


def frame(header: Header | bytes, data: bytes, *, version: int = 1, n: int | None = None,
          crc: int | None = None, magic: bytes = MAGIC) -> bytes:
    """Assemble magic | version | N | JSON | crc32(JSON) | data, with overridable fields."""
    raw = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    n = len(raw) if n is None else n
    crc = zlib.crc32(raw) if crc is None else crc
    return magic + struct.pack("<IQ", version, n) + raw + struct.pack("<I", crc) + data


def make_cases() -> dict[str, tuple[bytes, str]]:
    """File name -> (bundle bytes, substring expected in the BundleError message)."""
    good = valid_bundle()
    h0 = peek_header(good)
    data = good[24 + len(json.dumps(h0, separators=(",", ":"))):]
    s0 = h0["sections"]  # [[length, crc32], ...] for jpeg/0, jpeg/1, update
    j0 = data[: s0[0][0]]

    def edit(fn: Callable[[Header], object], payload: bytes = data) -> bytes:
        h = copy.deepcopy(h0)
        fn(h)
        return frame(h, payload)

    def image(key: str, value: Any, i: int = 0) -> Callable[[Header], object]:
        return lambda h: h["images"][i].__setitem__(key, value)

    def section(field: int, value: Any, i: int = 0) -> Callable[[Header], object]:
        """Set sections[i][field]: field 0 is the length, 1 the CRC-32."""
        return lambda h: h["sections"][i].__setitem__(field, value)

    def raw(text: str | bytes) -> bytes:
        return frame(text.encode() if isinstance(text, str) else text, b"")

    not_jpeg = b"GIF89a" + j0[6:]
    many = [{"name": f"{i}.png", "w": 8, "h": 8} for i in range(1001)]
    old_form = {"name": "jpeg/0", "offset": 0, "length": s0[0][0], "crc32": s0[0][1]}
    n_digits = "9" * 5000
    return {
        # framing
        "empty.bin": (b"", "truncated"),
        "truncated_fixed_header.bin": (good[:15], "truncated"),
        "bad_magic.bin": (b"PK\x03\x04" + good[4:], "bad magic"),
        "wrong_version.bin": (frame(h0, data, version=2), "format version 2 is not supported"),
        "huge_header_len.bin": (frame(h0, data, n=2**63), "header length 9223372036854775808 is outside 2.."),
        "header_len_too_small.bin": (frame(b"{}", data, n=1), "header length 1 is outside 2.."),
        "header_len_past_end.bin": (frame(h0, b"", n=100_000), "runs past the end of the bundle"),
        "header_crc_mismatch.bin": (frame(h0, data, crc=zlib.crc32(b"x")), "header CRC-32 mismatch"),
        # JSON
        "non_utf8_header.bin": (raw(b'{"format":1,"bundle_id":"\xff\xfe"}'), "not valid UTF-8"),
        "json_not_object.bin": (raw("[1,2,3]"), "must be a JSON object, got list"),
        "json_syntax_error.bin": (raw('{"format":1,'), "not valid JSON"),
        "json_nan.bin": (raw('{"format":NaN}'), "NaN and Infinity are not allowed"),
        "json_infinity.bin": (raw('{"format":-Infinity}'), "contains -Infinity"),
        "json_float_overflow.bin": (raw('{"format":1e999}'), "outside the finite float range"),
        "json_huge_int.bin": (raw('{"format":' + n_digits + "}"), "not valid JSON"),
        "deep_nesting.bin": (raw("[" * 5000 + "]" * 5000), "nested deeper than 32 levels"),
        "duplicate_json_keys.bin": (raw('{"mode":"jpeg","mode":"sr4"}'), "repeats the key 'mode'"),
        "noncanonical_whitespace.bin": (frame(json.dumps(h0).encode(), data), "not in canonical form"),
        # header schema
        "missing_keys.bin": (edit(lambda h: h.pop("images")), "missing required keys ['images']"),
        "unknown_key.bin": (edit(lambda h: h.update(evil=1)), "unknown keys ['evil']"),
        "format_mismatch.bin": (edit(lambda h: h.update(format=2)), "header.format must be an integer in 1..1"),
        "bad_bundle_id.bin": (edit(lambda h: h.update(bundle_id="../../etc")), "bundle_id must be 1..64"),
        "bad_created.bin": (edit(lambda h: h.update(created="yesterday")), "created must be an ISO 8601"),
        "unknown_mode.bin": (edit(lambda h: h.update(mode="sr8")), "mode must be one of"),
        "generator_not_object.bin": (edit(lambda h: h.update(generator="x")), "generator must be a JSON object"),
        "bad_base_sha256.bin": (edit(lambda h: h.update(base_sha256="A" * 64)), "base_sha256 must be 64 lowercase"),
        "update_none_with_section.bin": (edit(lambda h: h["update"].update(kind="none")),
                                         "sections must be a list of 2 [length, crc32] pairs"),
        "update_delta_without_section.bin": (edit(lambda h: h["sections"].pop(), data[: -s0[2][0]]),
                                             "sections must be a list of 3 [length, crc32] pairs"),
        "update_with_section.bin": (edit(lambda h: h["update"].update(section="update")),
                                    "update must not carry 'section'"),
        "unknown_update_kind.bin": (edit(lambda h: h["update"].update(kind="pickle")),
                                    "update.kind must be one of"),
        "no_images.bin": (edit(lambda h: h.update(images=[])), "images must be a list of 1..1000 entries, got 0"),
        "too_many_images.bin": (edit(lambda h: h.update(images=many)), "1..1000 entries, got 1001 entries"),
        "bool_as_int.bin": (edit(image("w", True)), "images[0].w must be an integer in 1..65535, got True"),
        "side_too_large.bin": (edit(image("h", 65536)), "images[0].h must be an integer in 1..65535"),
        "pixel_bomb.bin": (edit(lambda h: h["images"][0].update(w=65535, h=65535)),
                           "65535x65535 = 4294836225 pixels; the limit is 50000000"),
        "duplicate_image_names.bin": (edit(image("name", "a.png", 1)), "duplicate image name"),
        "path_traversal_name.bin": (edit(image("name", "../x")), "is not a safe file name"),
        "dotdot_name.bin": (edit(image("name", "..")), "is not a safe file name"),
        "backslash_name.bin": (edit(image("name", "..\\x")), "is not a safe file name"),
        "control_char_name.bin": (edit(image("name", "a\nb")), "is not a safe file name"),
        "nul_name.bin": (edit(image("name", "a\x00b")), "is not a safe file name"),
        "empty_name.bin": (edit(image("name", "")), "name must be a string of 1..200"),
        "image_missing_key.bin": (edit(lambda h: h["images"][1].pop("h")), "images[1] is missing keys ['h']"),
        # sections and data
        "sections_not_a_list.bin": (edit(lambda h: h.update(sections={"jpeg/0": s0[0]})),
                                    "sections must be a list of 3 [length, crc32] pairs"),
        "section_count_mismatch.bin": (edit(lambda h: h["sections"].pop()), "sections must be a list of 3"),
        "too_many_sections.bin": (edit(lambda h: h["sections"].append([5, zlib.crc32(b"\0" * 5)]),
                                       data + b"\0" * 5), "got 4 entries"),
        "section_not_a_pair.bin": (edit(lambda h: h["sections"][0].append("/etc/passwd")),
                                   "sections[0] (jpeg/0) must be a [length, crc32] pair"),
        "section_old_object_form.bin": (edit(lambda h: h["sections"].__setitem__(0, old_form)),
                                        "sections[0] (jpeg/0) must be a [length, crc32] pair"),
        "float_as_int.bin": (edit(section(0, float(s0[0][0]))),
                             "sections[0] (jpeg/0) length must be an integer in 1..9223372036854775808, got 537.0"),
        "bool_as_length.bin": (edit(section(0, True, 2)), "sections[2] (update) length must be an integer in 1.."),
        "negative_length.bin": (edit(section(0, -1)), "sections[0] (jpeg/0) length must be an integer in 1.."),
        "huge_length.bin": (edit(section(0, 2**64, 1)),
                            "sections[1] (jpeg/1) length must be an integer in 1..9223372036854775808"),
        "zero_length_section.bin": (edit(section(0, 0)), "sections[0] (jpeg/0) length must be an integer in 1.."),
        "crc_out_of_range.bin": (edit(section(1, 2**32, 1)),
                                 "sections[1] (jpeg/1) crc32 must be an integer in 0..4294967295, got 4294967296"),
        "negative_crc.bin": (edit(section(1, -1)), "sections[0] (jpeg/0) crc32 must be an integer in 0..4294967295"),
        "section_lengths_short.bin": (edit(section(0, s0[0][0] - 10)),
                                      "section lengths do not add up: 10 trailing bytes"),
        "section_lengths_long.bin": (edit(section(0, s0[1][0] + 100, 1)),
                                     "section lengths do not add up: sections[1] (jpeg/1) has length"),
        "length_sum_overflow.bin": (edit(lambda h: h.update(sections=[[2**63, 0]] * 3)),
                                    "section lengths do not add up: sections[0] (jpeg/0) has length 9223372036854775808"),
        "section_past_end.bin": (good[:-3], "section lengths do not add up: sections[2] (update)"),
        "trailing_bytes.bin": (good + b"\0" * 7, "7 trailing bytes after the last section"),
        "sections_reordered.bin": (edit(lambda h: h.update(sections=[s0[1], s0[0], s0[2]])),
                                   "section jpeg/0 CRC-32 mismatch"),
        "crc_mismatch.bin": (good[:-20] + bytes([good[-20] ^ 1]) + good[-19:], "section jpeg/1 CRC-32 mismatch"),
        "not_a_jpeg.bin": (edit(section(1, zlib.crc32(not_jpeg)), not_jpeg + data[len(j0):]),
                           "section jpeg/0 is not a JPEG"),
    }


def main(argv: list[str] | None = None) -> int:
    folder = Path(argv[0]) if argv else FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    cases = make_cases()
    for name, (blob, _) in cases.items():
        (folder / name).write_bytes(blob)
    expected = {name: msg for name, (_, msg) in sorted(cases.items())}
    (folder / "EXPECTED.json").write_text(json.dumps(expected, indent=2) + "\n")
    print(f"wrote {len(cases)} bundles to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
