"""``gancodec bench`` end to end on three tiny synthetic images (a fake codec and the real one)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from common import bench
from common.imageio import jpeg_decode, jpeg_encode

QS = ["10", "20", "30", "40"]


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:64].astype(np.float64)
    for i in range(3):
        rgb = np.stack([x * 3 + 20 * i, y * 4 + 10 * np.sin(x / 5), (x + y) * 2], axis=-1)
        rgb = np.clip(rgb + rng.normal(0, 3, rgb.shape), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"img{i}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


@dataclass
class FakeOptions:
    quality: int | None = None
    match_jpeg: int | None = 75
    update: str = "auto"
    budget_seconds: float = 60.0
    max_steps: int | None = None
    device: str = "auto"
    mode: str = "restore"
    arch: str = "srvgg"
    channels: int | None = None
    blocks: int | None = None
    objective: str = "fidelity"
    alpha: float = 1.0


def fake_codec() -> bench.CodecApi:
    """JPEG payloads; the 'generator' pulls the decoded JPEG towards the original (more with an update)."""
    made: dict[bytes, list[np.ndarray]] = {}

    def encode_images(images: list[tuple[str, np.ndarray]], opts: FakeOptions, progress: Any = None) -> Any:
        assert opts.quality is not None and opts.match_jpeg is None
        if progress:
            progress("training", 1, 1)
        jpegs = [jpeg_encode(rgb, opts.quality) for _, rgb in images]
        update = b"" if opts.update == "none" else bytes(4)
        bundle = b"FAKE" + len(made).to_bytes(4, "little") + b"".join(jpegs) + update
        w = 0.1 if opts.update == "none" else 0.2
        made[bundle] = [np.round((1 - w) * jpeg_decode(j) + w * rgb).astype(np.uint8)
                        for j, (_, rgb) in zip(jpegs, images, strict=True)]
        chosen = "base" if opts.update == "none" else "delta"
        parts = {"jpeg": sum(map(len, jpegs)), "update": len(update), "header": 8, "total": len(bundle)}
        summary = {"bytes": parts, "decision": {"chosen": chosen}, "seconds": {"finetune": 0.01, "total": 0.02}}
        return SimpleNamespace(bundle=bundle, summary=summary)

    def decode_bundle(data: bytes, progress: Any = None) -> Any:
        return SimpleNamespace(bundle=None, images=made[data])

    return bench.CodecApi(FakeOptions, encode_images, decode_bundle)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = bench.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_bench_all_curves_with_fake_codec(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench, "load_codec", fake_codec)
    out, png = tmp_path / "res" / "r.json", tmp_path / "rd.png"
    argv = ["--data", str(tiny_dir), "--qualities", *QS, "--other-qualities", "5", "10", "20", "40", "60", "80",
            "--budget-seconds", "1", "--out", str(out), "--plot", str(png)]
    rc, stdout, _ = _run(argv, capsys)
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["images"] == 3 and res["pixels"] == 3 * 64 * 48
    assert res["command"][:2] == ["gancodec", "bench"] and res["settings"]["budget_seconds"] == 1.0
    assert {"torch", "cpu", "cuda", "gpu"} <= set(res["environment"]) and res["date"]
    assert set(res["curves"]) == set(bench.DEFAULT_CURVES)
    for name, curve in res["curves"].items():
        if curve["available"]:
            assert len(curve["points"]) == len(curve["qualities"]) >= 4, name
            assert all(p["bpp"] > 0 and math.isfinite(p["psnr"]) and 0 < p["ms_ssim"] <= 1 for p in curve["points"])
        else:
            assert name == "avif" and curve["reason"]
    for name in ("jpeg", "jpeg_opt"):
        rates = [p["bpp"] for p in res["curves"][name]["points"]]
        assert rates == sorted(rates) and len(set(rates)) == len(rates), name
    tuned = res["curves"]["gancodec"]["points"]
    assert [p["decision"]["chosen"] for p in tuned] == ["delta"] * 4
    assert all(p["parts"]["total"] == p["bytes"] and 0 < p["update_share"] < 0.1 for p in tuned)
    vs = res["bd"]["vs_anchor"]
    assert vs["jpeg_opt"]["bd_rate_pct"] < 0 and vs["jpeg_opt"]["coverage"] == pytest.approx(1.0)
    assert math.isfinite(vs["gancodec"]["bd_rate_pct"]) and math.isfinite(vs["gancodec_base"]["bd_rate_pct"])
    assert res["bd"]["finetune_vs_base"]["bd_psnr_db"] > 0
    assert res["codec"]["gancodec"]["decode_mps_median"] > 0
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size == (960, 640)
    assert "BD-rate" in stdout and "fine-tuned vs base generator" in stdout


def test_bench_with_the_real_codec(tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("common.codec")
    out = tmp_path / "r.json"
    argv = ["--data", str(tiny_dir), "--qualities", *QS, "--curves", "jpeg", "jpeg_opt", "gancodec",
            "--update", "none", "--budget-seconds", "1", "--no-ms-ssim", "--out", str(out), "--json"]
    rc, stdout, _ = _run(argv, capsys)
    assert rc == 0
    res = json.loads(stdout)
    assert res == json.loads(out.read_text())
    assert set(res["curves"]) == {"jpeg", "jpeg_opt", "gancodec"}  # update=none: no separate base curve
    for p in res["curves"]["gancodec"]["points"]:
        assert p["bytes"] == p["parts"]["total"] and p["parts"]["update"] == 0 and p["ms_ssim"] is None
        assert p["decode_mps"] > 0 and p["psnr"] > 20
    for name in ("jpeg_opt", "gancodec"):
        assert math.isfinite(res["bd"]["vs_anchor"][name]["bd_rate_pct"]), res["bd"]["vs_anchor"][name]


def test_avif_missing_is_recorded_not_fatal(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench.features, "check", lambda name: name != "avif")
    out = tmp_path / "r.json"
    rc, stdout, _ = _run(["--data", str(tiny_dir), "--curves", "avif", "--qualities", *QS,
                          "--no-ms-ssim", "--out", str(out)], capsys)
    assert rc == 0
    curves = json.loads(out.read_text())["curves"]
    assert set(curves) == {"jpeg", "avif"} and not curves["avif"]["available"] and not curves["avif"]["points"]
    assert "unavailable" in stdout


@pytest.mark.parametrize("case", ["empty", "missing", "glob"])
def test_no_images_is_a_clear_error(
    case: str, tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = {"empty": tmp_path / "empty", "missing": tmp_path / "nope", "glob": tiny_dir}[case]
    if case == "empty":
        folder.mkdir()
    out = tmp_path / "r.json"
    rc, _, err = _run(["--data", str(folder), "--glob", "cbsd68_*", "--out", str(out)], capsys)
    assert rc == 2 and "no images" in err and str(folder) in err
    assert not out.exists()


def test_bench_sr_curves_get_a_low_rate_summary(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str] = []
    api = fake_codec()
    encode = api.encode_images

    def spy(images: Any, opts: FakeOptions, progress: Any = None) -> Any:
        seen.append(opts.mode)
        return encode(images, opts, progress)

    monkeypatch.setattr(bench, "load_codec", lambda: bench.CodecApi(FakeOptions, spy, api.decode_bundle))
    out = tmp_path / "r.json"
    argv = ["--data", str(tiny_dir), "--qualities", "1", "3", *QS, "--curves", "jpeg", "gancodec", "gancodec_sr2",
            "gancodec_auto", "--budget-seconds", "1", "--out", str(out), "--no-ms-ssim", "--low-rate-bpp", "5",
            "--crops", str(tmp_path / "crops.png")]
    rc, stdout, _ = _run(argv, capsys)
    assert rc == 0
    res = json.loads(out.read_text())
    assert seen.count("sr2") == 6 and seen.count("auto") == 6 and seen.count("restore") == 6
    low = res["low_rate"]
    assert set(low["vs_restore"]) == {"gancodec_sr2", "gancodec_auto"} and low["max_bpp"] == 5
    assert "BD vs gancodec restore at <= 5.0 bpp" in stdout
    p = res["curves"]["gancodec_sr2"]["points"][0]
    assert 0 <= p["exact_match"] <= 1 and -1 <= p["hist_corr"] <= 1
    with Image.open(tmp_path / "crops.png") as fig:  # original + one panel per curve
        assert fig.width > 5 * 48


def test_mark_frontier() -> None:
    rows: list[dict[str, Any]] = [
        {"arch": "a", "bd_rate_pct": -20.0, "decode_mps_median": 3.0},
        {"arch": "b", "bd_rate_pct": -25.0, "decode_mps_median": 1.0},
        {"arch": "c", "bd_rate_pct": -15.0, "decode_mps_median": 2.0},  # a is better and faster
        {"arch": "d", "bd_rate_pct": None, "decode_mps_median": 9.0},
    ]
    bench.mark_frontier(rows)
    assert [r["dominated_by"] for r in rows] == [[], [], ["a"], None]
    rows[2]["generator_mps"] = 5.0  # a measured generator speed takes precedence over bundle decode speed
    bench.mark_frontier(rows)
    assert rows[2]["dominated_by"] == [] and rows[0]["dominated_by"] == []


def test_reuse_recomputes_tables_without_measuring(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench, "load_codec", fake_codec)
    first = tmp_path / "a.json"
    common = ["--data", str(tiny_dir), "--qualities", *QS, "--curves", "jpeg", "gancodec", "--archs", "srvgg",
              "--budget-seconds", "1", "--no-ms-ssim"]
    assert _run([*common, "--out", str(first)], capsys)[0] == 0

    def no_codec() -> bench.CodecApi:
        raise AssertionError("--reuse must not encode anything")

    monkeypatch.setattr(bench, "load_codec", no_codec)
    second = tmp_path / "b.json"
    rc, stdout, _ = _run([*common, "--out", str(second), "--reuse", str(first)], capsys)
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    assert rc == 0 and b["reused"] == str(first) and b["curves"] == a["curves"] and b["bd"] == a["bd"]
    assert b["archs"][0]["bd_rate_pct"] == a["archs"][0]["bd_rate_pct"] and "frontier" in stdout
    # other images, or curves the file lacks: a clear error, nothing written
    (tiny_dir / "img0.png").unlink()
    rc, _, err = _run([*common, "--out", str(tmp_path / "c.json"), "--reuse", str(first)], capsys)
    assert rc == 2 and "other images" in err and not (tmp_path / "c.json").exists()


def test_bench_arch_table_with_fake_codec(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str] = []
    api = fake_codec()
    encode = api.encode_images

    def spy(images: Any, opts: FakeOptions, progress: Any = None) -> Any:
        seen.append(opts.arch)
        return encode(images, opts, progress)

    monkeypatch.setattr(bench, "load_codec", lambda: bench.CodecApi(FakeOptions, spy, api.decode_bundle))
    out = tmp_path / "r.json"
    argv = ["--data", str(tiny_dir), "--qualities", *QS, "--curves", "jpeg", "--archs", "srvgg", "srcnn",
            "--budget-seconds", "1", "--out", str(out), "--no-ms-ssim", "--thesis", "--thesis-steps", "2"]
    rc, stdout, _ = _run(argv, capsys)
    assert rc == 0 and seen.count("srvgg") == len(QS) + 1 and seen.count("srcnn") == len(QS)
    assert seen.count("srresnet") == 1  # the thesis point
    res = json.loads(out.read_text())
    assert not (tmp_path / "r.partial.json").exists()  # removed once the full result is written
    rows = {r["arch"]: r for r in res["archs"]}
    assert set(rows) == {"srvgg", "srcnn"}
    for r in rows.values():
        assert r["params"] > 0 and r["mac_per_pixel"] > 0 and r["base_bytes"] > 0
        assert r["bd_rate_pct"] is not None and isinstance(r["dominated_by"], list)
        assert r["generator_mps"] > 0  # the base generator's own speed, timed on the set
    assert rows["srvgg"]["params"] != rows["srcnn"]["params"]
    assert "frontier" in stdout
    th = res["thesis"]
    assert th["ours"]["options"] == {"mode": "restore"}  # same mode as the thesis: PSNRs compare
    assert th["thesis"]["options"] == {"mode": "restore", "arch": "srresnet", "channels": 64, "blocks": 7,
                                       "update": "full", "max_steps": 2}
    assert th["bundle_ratio"] == th["thesis"]["bytes"] / th["ours"]["bytes"] and "bundle ratio" in stdout
