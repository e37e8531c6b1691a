"""Every registered generator architecture: shapes, near-identity init, exact tiling, config and
weight round trips, SRResNet's batch-norm folding, and config validation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from common.errors import BundleError, UnknownArchError
from common.generator import (
    Generator,
    GeneratorConfig,
    arch_class,
    archs,
    build_generator,
    default_config,
    load_state_strict,
)
from common.infer import restore

ARCH_SCALES = [pytest.param(a, s, id=f"{a}-x{s}") for a in archs() for s in arch_class(a).scales]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small convolutions gain nothing from threads; leave the other core alone."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def small_config(arch: str, scale: int, blocks: int = 1) -> GeneratorConfig:
    """The default config at ``scale`` made narrow and shallow, for speed."""
    cls = arch_class(arch)
    lo, hi = cls.block_range
    return default_config(arch, scale, channels=max(8, cls.channel_range[0]), blocks=min(max(blocks, lo), hi))


def randomise_tail(model: Generator, seed: int = 0) -> None:
    """Replace the near-zero init of the last layer so the residual is not negligible."""
    tail = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)][-1]
    g = torch.Generator().manual_seed(seed)
    fan_in = tail.weight[0].numel() if isinstance(tail, nn.Conv2d) else tail.weight[:, 0].numel()
    with torch.no_grad():
        tail.weight.copy_(torch.randn(tail.weight.shape, generator=g) * (2.0 / fan_in**0.5))
        if tail.bias is not None:
            tail.bias.copy_(torch.randn(tail.bias.shape, generator=g) * 0.01)


def test_all_archs_registered() -> None:
    assert set(archs()) >= {"srvgg", "srcnn", "fsrcnn", "srresnet", "rrdb", "unet"}
    assert archs()[0] == "srvgg"
    for a in ("srcnn", "fsrcnn", "srresnet", "rrdb", "unet"):
        assert arch_class(a).scales == (1, 2, 4)
        for s in (1, 2, 4):
            build_generator(default_config(a, s))  # the shipped defaults are valid


@pytest.mark.parametrize(("arch", "scale"), ARCH_SCALES)
def test_shape_and_near_identity_init(arch: str, scale: int) -> None:
    torch.manual_seed(0)
    model = build_generator(small_config(arch, scale)).eval()
    assert model.receptive_radius >= (2 if scale > 1 else 1)
    assert model.multiple >= 1
    with torch.no_grad():
        for h, w in ((17, 23), (5, 7)):
            x = torch.rand(2, 3, h, w)
            y = model(x)
            assert y.shape == (2, 3, scale * h, scale * w)
            assert torch.isfinite(y).all()
            # An untrained net is a small perturbation of the fixed upsample.
            assert (y - model.upsample(x)).abs().max() < 0.15


@pytest.mark.parametrize(("arch", "scale"), ARCH_SCALES)
def test_training_form_backpropagates(arch: str, scale: int) -> None:
    torch.manual_seed(5)
    model = build_generator(small_config(arch, scale), train_form=True).train()
    x = torch.rand(2, 3, 12, 12)
    loss = (model(x) - torch.rand(2, 3, 12 * scale, 12 * scale)).abs().mean()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0


def _window_check(model: Generator, x: torch.Tensor, ya: int, yb: int, xa: int, xb: int) -> None:
    """The model on a crop equals the model on the whole image, away from the crop's inner edges."""
    s, r = model.scale, model.receptive_radius
    h, w = x.shape[-2:]
    y0, y1 = (ya + r if ya > 0 else 0), (yb - r if yb < h else h)
    x0, x1 = (xa + r if xa > 0 else 0), (xb - r if xb < w else w)
    assert y1 > y0 and x1 > x0
    with torch.no_grad():
        full = model(x)[..., s * y0 : s * y1, s * x0 : s * x1]
        crop = model(x[..., ya:yb, xa:xb])[..., s * (y0 - ya) : s * (y1 - ya), s * (x0 - xa) : s * (x1 - xa)]
    torch.testing.assert_close(crop, full, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("arch", "scale"), ARCH_SCALES)
def test_receptive_radius_and_multiple_make_crops_exact(arch: str, scale: int) -> None:
    """Float-level check of the tiling contract: crops starting on a multiple of ``multiple`` and
    overlapping by ``receptive_radius`` reproduce the whole image's output (odd sizes, all edges)."""
    torch.manual_seed(1)
    model = build_generator(small_config(arch, scale, blocks=3 if arch == "unet" else 2)).eval()
    randomise_tail(model)
    r, m = model.receptive_radius, model.multiple
    a = -(-(r // 2) // m) * m  # an inner cut on the grid
    h, w = 2 * r + 2 * a + 2 * m + 3, 2 * r + 2 * a + 3 * m + 5
    x = torch.rand(1, 3, h, w)
    for ya, yb, xa, xb in ((0, h - a, 0, w - a),  # top-left crop
                           (a, h, a, w),  # bottom-right crop: the padding to ``multiple`` must agree
                           (a, h - a + 1, 0, w - a + 1)):  # inner cuts on both sides of a row band
        _window_check(model, x, ya, yb, xa, xb)


@pytest.mark.parametrize(("arch", "scale"), ARCH_SCALES)
def test_receptive_radius_bounds_the_exact_support(arch: str, scale: int) -> None:
    """Structural check: with positive weights and inputs (no cancellation, every ReLU open) the
    gradient of one output pixel is non-zero exactly on the input pixels it depends on. Over every
    phase of the grid that support stays within ``receptive_radius`` of the pixel's input cell,
    and the bound is tight to within a few pixels."""
    torch.manual_seed(4)
    model = build_generator(small_config(arch, scale, blocks=2)).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.abs() + 0.01)
    r, m, s = model.receptive_radius, model.multiple, scale
    n = 2 * r + 3 * m + 4
    c = (n // 2) - (n // 2) % m
    reach = 0
    for px in range(s * c, s * (c + m)):
        x = (torch.rand(1, 3, n, n, dtype=torch.float64) + 0.5).requires_grad_()
        model(x)[0, 0, s * c, px].backward()
        assert x.grad is not None
        cols = torch.nonzero(x.grad[0].abs().sum((0, 1))).flatten()
        reach = max(reach, px // s - int(cols.min()), int(cols.max()) - px // s)
    assert reach <= r <= reach + 3


@pytest.mark.parametrize(("arch", "scale"), ARCH_SCALES)
def test_tiled_restore_equals_untiled(arch: str, scale: int) -> None:
    torch.manual_seed(2)
    model = build_generator(small_config(arch, scale, blocks=2)).eval()
    randomise_tail(model)
    rgb = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    whole = restore(model, rgb, tile=0)
    assert whole.shape == (scale * 70, scale * 90, 3)
    assert np.mean((whole > 0) & (whole < 255)) > 0.5  # not saturated, so a wrong overlap would show
    tiled = restore(model, rgb, tile=32)
    # Equal up to float rounding: a different tile size may change the convolution's summation
    # order, which flips an odd value sitting on a rounding boundary (the float-level check above
    # is exact to 1e-5).
    diff = np.abs(tiled.astype(np.int16) - whole)
    assert diff.max() <= 1 and np.count_nonzero(diff) <= 1e-4 * diff.size


@pytest.mark.parametrize(("arch", "scale"), ARCH_SCALES)
def test_config_and_weights_round_trip(arch: str, scale: int) -> None:
    cfg = small_config(arch, scale)
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    model = build_generator(cfg)
    other = build_generator(GeneratorConfig.from_dict(cfg.to_dict()))
    load_state_strict(other, model.state_dict())
    load_state_strict(other, model.deploy_state())
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(other(x), model(x))


def _bn_count(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_srresnet_batch_norm_folds_into_deploy_form(scale: int) -> None:
    torch.manual_seed(3)
    cfg = default_config("srresnet", scale, channels=8, blocks=2)
    train = build_generator(cfg, train_form=True)
    deploy = build_generator(cfg)
    assert _bn_count(train) == 2 * cfg.blocks + 1
    assert _bn_count(deploy) == 0
    assert deploy.deploy_state().keys() == deploy.state_dict().keys()
    randomise_tail(train)
    with torch.no_grad():
        for m in train.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
        train.train()
        for _ in range(4):  # running statistics move away from (0, 1)
            train(torch.rand(2, 3, 16, 16) * 2 - 0.5)
    bns = [m for m in train.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.running_mean is not None and m.running_mean.abs().max() > 0.01 for m in bns)
    train.eval()
    load_state_strict(deploy, train.deploy_state())
    assert any(k.endswith(".bn.running_var") for k in train.state_dict())  # folding left train intact
    x = torch.rand(2, 3, 13, 10)
    with torch.no_grad():
        torch.testing.assert_close(deploy(x), train(x), atol=1e-5, rtol=0)


def test_srresnet_thesis_config() -> None:
    """The thesis's SRResNet-7 (64 wide, restore) builds; its size is recorded in the docstring."""
    model = build_generator(default_config("srresnet", 1, channels=64, blocks=7))
    n = sum(v.numel() for v in model.deploy_state().values())
    assert n == 585_603 and 4 * n == 2_342_412


def test_unknown_arch_refused() -> None:
    with pytest.raises(UnknownArchError):
        GeneratorConfig(arch="esrgan-xxl")
    with pytest.raises(UnknownArchError):
        GeneratorConfig.from_dict({"arch": "nope", "channels": 16})
    with pytest.raises(UnknownArchError):
        default_config("nope")


@pytest.mark.parametrize("arch", archs())
def test_out_of_range_config_refused(arch: str) -> None:
    cls = arch_class(arch)
    base = default_config(arch).to_dict()
    (clo, chi), (blo, bhi) = cls.channel_range, cls.block_range
    for key, value in (("channels", clo - 1), ("channels", chi + 1), ("blocks", blo - 1),
                       ("blocks", bhi + 1), ("scale", 3), ("unshuffle", 3), ("qcond", 2)):
        with pytest.raises(BundleError) as e:
            GeneratorConfig.from_dict({**base, key: value})
        assert not isinstance(e.value, UnknownArchError)
