from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.cli import main, unique_names
from common.imageio import load_image
from common.metrics import psnr


def test_encode_decode_end_to_end(tmp_path: Path, small_images, capsys) -> None:  # type: ignore[no-untyped-def]
    paths = []
    for name, rgb in small_images:
        p = tmp_path / f"{name}.png"
        Image.fromarray(rgb).save(p)
        paths.append(str(p))
    bundle = tmp_path / "set.gcb"
    rc = main(["encode", *paths, "--out", str(bundle), "--match-jpeg", "60", "--budget-seconds", "2", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["bytes"]["total"] == bundle.stat().st_size
    out = tmp_path / "out"
    assert main(["decode", str(bundle), "--out", str(out), "--jpeg"]) == 0
    for (name, rgb), row in zip(small_images, summary["images"], strict=True):
        rec = load_image(out / f"{name}.png")
        assert rec.shape == rgb.shape
        assert abs(psnr(rec, rgb) - row["psnr"]) < 0.01
        assert (out / f"{name}.jpg").exists()
    assert "MP/s" in capsys.readouterr().out


def test_encode_text_summary_and_errors(tmp_path: Path, small_images, capsys) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "a.png"
    Image.fromarray(small_images[0][1]).save(p)
    assert main(["encode", str(p), "--out", str(tmp_path / "b.gcb"), "--quality", "30", "--mode", "jpeg"]) == 0
    text = capsys.readouterr().out
    assert "decision: jpeg" in text and "saving" in text
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["encode", str(bad), "--out", str(tmp_path / "c.gcb")]) == 2
    assert "not a supported image" in capsys.readouterr().err
    (tmp_path / "junk.gcb").write_bytes(b"\x89GCB\r\n\x1a\njunk")
    assert main(["decode", str(tmp_path / "junk.gcb"), "--out", str(tmp_path / "o")]) == 2
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "c.gcb").exists()


def test_quality_and_match_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["encode", "x.png", "--out", "y", "--quality", "5", "--match-jpeg", "5"])


def test_unique_names() -> None:
    assert unique_names([Path("a.png"), Path("b/a.jpg"), Path("c.png")]) == ["a", "a-2", "c"]


def test_load_image_formats_and_limits(tmp_path: Path) -> None:
    from common.errors import ImageError, ImageTooLargeError

    rgb = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    for fmt in ("PNG", "BMP", "WEBP", "TIFF", "JPEG"):
        p = tmp_path / f"x.{fmt.lower()}"
        Image.fromarray(rgb).save(p, format=fmt)
        assert load_image(p).shape == (20, 30, 3)
    rgba = Image.fromarray(np.zeros((10, 10, 4), np.uint8))
    rgba.save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png")[0, 0].tolist() == [255, 255, 255]  # transparent -> white
    gray16 = Image.fromarray((np.arange(100).reshape(10, 10) * 600).astype(np.uint16))
    gray16.save(tmp_path / "g.png")
    assert load_image(tmp_path / "g.png").dtype == np.uint8
    with pytest.raises(ImageTooLargeError, match="limit is 100 pixels"):
        load_image(tmp_path / "x.png", max_pixels=100)
    with pytest.raises(ImageError, match="at least 8"):
        Image.fromarray(rgb[:4]).save(tmp_path / "thin.png")
        load_image(tmp_path / "thin.png")
    with pytest.raises(ImageError, match="corrupt|not a supported"):
        load_image((tmp_path / "x.png").read_bytes()[:60])
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")
