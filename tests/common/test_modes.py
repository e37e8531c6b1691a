"""Super-resolution modes, every architecture and the perceptual objective through the codec API."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.bundle import Bundle, BundleImage, new_bundle_id, parse_bundle, write_bundle
from common.codec import EncodeOptions, OptionsError, decode_bundle, encode_images, inspect_bundle
from common.errors import BundleError, UnknownArchError
from common.generator import GeneratorConfig, archs, build_generator, default_config
from common.imageio import downsample, jpeg_decode, jpeg_encode
from common.metrics import psnr
from common.planner import MODE_SCALE, STEPS, PlanOptionsError
from common.update import encode_full

ODD = [(37, 29), (50, 41), (9, 7)]  # (width, height): no side a multiple of 2 or 4


def _images(sizes: list[tuple[int, int]], seed: int = 0) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for i, (w, h) in enumerate(sizes):
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        rgb = np.stack([x * 5 + 30, y * 6 + 20 * np.sin(x / 3), (x + y) * 3], axis=-1) + rng.normal(0, 4, (h, w, 3))
        out.append((f"img{i}", np.clip(rgb, 0, 255).astype(np.uint8)))
    return out


def test_downsample_covers_odd_sizes() -> None:
    rgb = _images([(37, 29)])[0][1]
    assert downsample(rgb, 2).shape == (15, 19, 3)
    assert downsample(rgb, 4).shape == (8, 10, 3)
    assert downsample(rgb, 1) is rgb


@pytest.mark.parametrize("mode", ["sr2", "sr4"])
def test_sr_bundles_round_trip_at_odd_sizes(mode: str) -> None:
    imgs = _images(ODD)
    r = encode_images(imgs, EncodeOptions(quality=40, match_jpeg=None, mode=mode, update="delta", max_steps=3))
    s = {"sr2": 2, "sr4": 4}[mode]
    b = inspect_bundle(r.bundle)
    assert b.mode == mode and b.generator is not None and b.generator["scale"] == s
    assert r.summary["mode"] == mode
    dec = decode_bundle(r.bundle, tile=8)  # tiny tiles: the tiled SR path
    for (name, rgb), im, out in zip(imgs, b.images, dec.images, strict=True):
        assert out.shape == rgb.shape, name
        w, h = im.width, im.height
        jpeg_shape = jpeg_decode(im.jpeg).shape[:2]
        assert jpeg_shape == ((-(-h // s), -(-w // s)) if im.info["g"] else (h, w))
        assert abs(psnr(out, rgb) - im.info["pr"]) < 0.01  # the receiver sees what the sender measured


def test_sr_bundle_with_wrong_payload_size_is_refused() -> None:
    r = encode_images(_images(ODD[:1]), EncodeOptions(quality=40, match_jpeg=None, mode="sr2", update="none"))
    b = parse_bundle(r.bundle)
    if not b.images[0].info["g"]:
        pytest.skip("the planner sent this image at full size")
    b.images[0].height += 4  # header now promises a size the small JPEG cannot come from
    with pytest.raises(BundleError, match="expected"):
        decode_bundle(write_bundle(b))


def test_mode_and_generator_scale_must_agree() -> None:
    r = encode_images(_images(ODD[:1]), EncodeOptions(quality=40, match_jpeg=None, mode="sr2", update="none"))
    b = parse_bundle(r.bundle)
    b.mode = "sr4"
    with pytest.raises(BundleError, match="does not match a generator of scale 2"):
        inspect_bundle(write_bundle(b))


def test_auto_mode_reports_every_candidate_mode() -> None:
    r = encode_images(_images(ODD), EncodeOptions(quality=20, match_jpeg=None, mode="auto", update="none"))
    d = r.summary["decision"]
    assert set(d["modes"]) == {"restore", "sr2", "sr4"} and d["mode"] in d["modes"]
    assert r.summary["mode"] in ("jpeg", d["mode"])
    assert [o.shape for o in decode_bundle(r.bundle).images] == [rgb.shape for _, rgb in _images(ODD)]


@pytest.mark.parametrize("arch", archs())
@pytest.mark.parametrize("mode", ["restore", "sr2", "sr4"])
def test_every_arch_round_trips_in_every_mode(arch: str, mode: str) -> None:
    """Encode: small from-scratch configs (full weights travel), so no shipped base is needed; the
    planner may still send plain JPEG if one training step does not help. Decode: a bundle that
    runs this generator on the image, built from the same config, always."""
    imgs = _images([(37, 29)], seed=1)
    opts = EncodeOptions(quality=50, match_jpeg=None, mode=mode, arch=arch, channels=8, blocks=1,
                         update="full", max_steps=1, full_dtype="f16")
    r = encode_images(imgs, opts)
    assert decode_bundle(r.bundle).images[0].shape == imgs[0][1].shape
    b = inspect_bundle(r.bundle)
    assert r.summary["mode"] in ("jpeg", mode)
    if b.mode == mode:
        assert b.update["kind"] == "full" and b.base_sha256 is None
        assert b.generator is not None and b.generator["arch"] == arch
    forced = _generator_bundle(imgs[0][1], default_config(arch, MODE_SCALE[mode], channels=8, blocks=1), mode)
    assert decode_bundle(forced).images[0].shape == imgs[0][1].shape


def _generator_bundle(rgb: np.ndarray, cfg: GeneratorConfig, mode: str) -> bytes:
    torch.manual_seed(0)
    header, data = encode_full(build_generator(cfg).state_dict(), "f32")
    h, w = rgb.shape[:2]
    jpeg = jpeg_encode(downsample(rgb, cfg.scale), 50)
    return write_bundle(Bundle(new_bundle_id(), "2026-01-01T00:00:00Z", mode, cfg.to_dict(), None, header, data,
                               [BundleImage("x", w, h, jpeg, {"q": 50, "g": 1})]))


def test_config_without_a_base_needs_full_update() -> None:
    with pytest.raises(PlanOptionsError, match="only --update full"):
        encode_images(_images(ODD[:1]), EncodeOptions(quality=30, match_jpeg=None, arch="srvgg", channels=8))


def test_unknown_arch_option_is_refused_with_the_known_names() -> None:
    with pytest.raises(UnknownArchError, match="srcnn"):
        EncodeOptions(arch="esrgan-xl").check()


@pytest.mark.parametrize("bad", [{"alpha": 1.5}, {"objective": "gan"}, {"mode": "sr3"},
                                 {"vgg_weights": "/x.safetensors"}])
def test_bad_mode_objective_alpha_are_refused(bad: dict) -> None:
    with pytest.raises(OptionsError):
        EncodeOptions(**bad).check()


def test_perceptual_finetune_changes_the_generator_and_ships_no_discriminator() -> None:
    torch.manual_seed(0)
    imgs = _images([(64, 48), (48, 40)], seed=2)
    r = encode_images(imgs, EncodeOptions(quality=20, match_jpeg=None, objective="perceptual", max_steps=4,
                                          budget_seconds=30, max_update_share=1.0))
    d = r.summary["decision"]
    assert d["finetune"]["objective"] == "perceptual" and d["finetune"]["steps"] == 4
    b = inspect_bundle(r.bundle)
    assert b.update["kind"] == "delta" and len(b.update_bytes) > 0  # the generator moved
    names = {n for n, _ in b.update["params"]}
    assert names and all(n.startswith("body.") for n in names)  # generator weights only
    assert [o.shape for o in decode_bundle(r.bundle).images] == [rgb.shape for _, rgb in imgs]


def test_perceptual_alpha_zero_is_the_base() -> None:
    imgs = _images([(64, 48)], seed=3)
    r = encode_images(imgs, EncodeOptions(quality=20, match_jpeg=None, objective="perceptual", alpha=0.0,
                                          max_steps=2, update="delta"))
    assert r.summary["decision"]["finetune"]["alpha"] == 0.0
    assert r.summary["bytes"]["update"] == 0  # θ_base + 0·Δ: nothing to send


def test_perceptual_update_under_a_cap_is_trained_through_its_step() -> None:
    imgs = _images([(96, 80), (80, 64)], seed=4)
    opts = {"quality": 20, "match_jpeg": None, "objective": "perceptual", "max_steps": 30, "budget_seconds": 60}
    r = encode_images(imgs, EncodeOptions(max_update_share=0.5, **opts))  # type: ignore[arg-type]
    d = r.summary["decision"]
    qat = d["finetune"]["qat"]
    assert qat["step"] in STEPS and qat["from_step"] == 21
    assert d["finetune"]["discriminator"] == "disc16-v1"  # the shipped, pretrained critic
    assert [t["step"] for t in d["steps_tried"]] == [qat["step"]]  # the trained step is the update
    assert d["candidates"]["delta"]["generator_images"] == len(imgs)  # texture asked for: runs on all
    b = inspect_bundle(r.bundle)
    assert b.update["kind"] == "delta" and 0 < len(b.update_bytes) <= r.summary["bytes"]["jpeg"]  # share 0.5
    assert all(step == qat["step"] for _, step in b.update["params"])
    free = encode_images(imgs, EncodeOptions(max_update_share=1.0, **opts))  # type: ignore[arg-type]
    assert "qat" not in free.summary["decision"]["finetune"]  # no cap: float, the 40 dB rule
    assert len(free.summary["decision"]["steps_tried"]) == len(STEPS)
