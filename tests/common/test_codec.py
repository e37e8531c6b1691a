from __future__ import annotations

import numpy as np
import pytest
import torch

from common.bundle import parse_bundle
from common.codec import EncodeOptions, OptionsError, decode_bundle, encode_images, inspect_bundle
from common.finetune import FinetuneConfig, finetune
from common.generator import GeneratorConfig, build_generator
from common.imageio import jpeg_decode, jpeg_encode, load_image
from common.infer import restore
from common.metrics import psnr
from common.weights import load_base_model


@pytest.fixture(scope="module")
def full_samples(sample_paths) -> list[tuple[str, np.ndarray]]:  # type: ignore[no-untyped-def]
    return [(p.stem, load_image(p)) for p in sample_paths]


@pytest.fixture(scope="module")
def matched(full_samples):  # type: ignore[no-untyped-def]
    return encode_images(full_samples, EncodeOptions(match_jpeg=75, budget_seconds=4, seed=1))


def test_match_jpeg_keeps_its_promise(full_samples, matched) -> None:  # type: ignore[no-untyped-def]
    ref_total = 0
    for (_, rgb), row in zip(full_samples, matched.summary["images"], strict=True):
        ref = jpeg_encode(rgb, 75, optimize=False, progressive=False)
        ref_total += len(ref)
        assert row["psnr"] >= psnr(jpeg_decode(ref), rgb) - 1e-9
    assert len(matched.bundle) < ref_total
    assert matched.summary["bytes"]["total"] == len(matched.bundle)
    assert matched.summary["saving"] > 0


def test_decode_reproduces_sender_psnr(full_samples, matched) -> None:  # type: ignore[no-untyped-def]
    dec = decode_bundle(matched.bundle)
    for (_, rgb), out, im in zip(full_samples, dec.images, dec.bundle.images, strict=True):
        assert out.shape == rgb.shape
        assert abs(psnr(out, rgb) - im.info["pr"]) < 0.01


def test_plain_jpeg_is_recoverable_from_bundle(matched) -> None:  # type: ignore[no-untyped-def]
    b = parse_bundle(matched.bundle)
    for im in b.images:
        assert jpeg_decode(im.jpeg).shape == (im.height, im.width, 3)


def test_finetune_steps_raise_psnr_above_jpeg(small_images) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = build_generator(GeneratorConfig(channels=16, blocks=2))
    pairs = [(jpeg_decode(jpeg_encode(rgb, 15)), rgb, 15) for _, rgb in small_images[:2]]
    before = np.mean([psnr(d, o) for d, o, _ in pairs])
    names = [n for n, _ in model.named_parameters()]
    rep = finetune(model, pairs, names, FinetuneConfig(budget_seconds=120, max_steps=40, lr=2e-3, patch=64),
                   torch.device("cpu"))
    after = np.mean([psnr(restore(model, d), o) for d, o, _ in pairs])
    assert rep.steps == 40
    assert 0.2 < after - before < 8.0


def test_payoff_falls_back_when_update_cannot_pay() -> None:
    rng = np.random.default_rng(0)
    imgs = [(f"t{i}", (rng.random((24, 24, 3)) * 255).astype(np.uint8)) for i in range(2)]
    r = encode_images(imgs, EncodeOptions(quality=30, match_jpeg=None, budget_seconds=2, max_steps=20))
    assert r.summary["decision"]["chosen"] in ("jpeg", "base")
    assert r.summary["bytes"]["update"] == 0
    assert "delta" in r.summary["decision"]["candidates"]


def test_forced_update_kinds(small_images) -> None:  # type: ignore[no-untyped-def]
    opts = {"quality": 20, "match_jpeg": None, "budget_seconds": 2, "max_steps": 5}
    full = encode_images(small_images, EncodeOptions(update="full", **opts))  # type: ignore[arg-type]
    b = inspect_bundle(full.bundle)
    _, sha = load_base_model()
    n_params = sum(p.numel() for p in load_base_model()[0].parameters())
    assert b.update["kind"] == "full" and b.base_sha256 is None
    assert len(b.update_bytes) == 4 * n_params
    none = encode_images(small_images, EncodeOptions(update="none", **opts))  # type: ignore[arg-type]
    assert parse_bundle(none.bundle).update["kind"] == "none"
    jpeg = encode_images(small_images, EncodeOptions(mode="jpeg", **opts))  # type: ignore[arg-type]
    jb = parse_bundle(jpeg.bundle)
    assert jb.generator is None and jb.mode == "jpeg"
    dec = decode_bundle(jpeg.bundle)
    assert all(np.array_equal(o, jpeg_decode(i.jpeg)) for o, i in zip(dec.images, jb.images, strict=True))


def test_update_share_cap_bounds_the_chosen_delta(small_images) -> None:  # type: ignore[no-untyped-def]
    opts = {"quality": 20, "match_jpeg": None, "mode": "restore", "max_steps": 25, "budget_seconds": 60}
    free = encode_images(small_images, EncodeOptions(max_update_share=1.0, **opts))  # type: ignore[arg-type]
    capped = encode_images(small_images, EncodeOptions(max_update_share=0.01, **opts))  # type: ignore[arg-type]
    d_free, d_cap = free.summary["decision"], capped.summary["decision"]
    cap = int(0.01 / 0.99 * d_cap["candidates"]["base"]["total_bytes"])
    assert any(t["bytes"] > cap for t in d_free["steps_tried"])  # the cap has something to refuse
    assert all(t["cost"] is not None for t in d_free["steps_tried"])
    assert all((t["cost"] is None) == (t["bytes"] > cap) for t in d_cap["steps_tried"])
    assert d_cap["candidates"]["delta"]["update_bytes"] <= cap
    assert capped.summary["bytes"]["update"] <= cap
    with pytest.raises(OptionsError, match="max_update_share"):
        EncodeOptions(max_update_share=0).check()


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"quality": 0}, "quality=0"),
        ({"match_jpeg": 101}, "match_jpeg=101"),
        ({"mode": "sr8"}, "mode='sr8'"),
        ({"update": "some"}, "update='some'"),
        ({"budget_seconds": -1}, "budget_seconds"),
    ],
)
def test_bad_options(small_images, opts, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OptionsError, match=message):
        encode_images(small_images, EncodeOptions(**opts))


def test_tiled_equals_untiled() -> None:
    model, _ = load_base_model()
    rng = np.random.default_rng(1)
    img = jpeg_decode(jpeg_encode((rng.random((150, 203, 3)) * 255).astype(np.uint8), 30))
    assert np.array_equal(restore(model, img, tile=0), restore(model, img, tile=64))
