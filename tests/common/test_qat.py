"""Quantisation-aware fine-tuning: the trained-through quantiser is the one the receiver applies."""

from __future__ import annotations

import math

import numpy as np
import torch

from common.codec import EncodeOptions, decode_bundle, encode_images
from common.finetune import FinetuneConfig, fake_quantize, finetune
from common.generator import GeneratorConfig, build_generator, load_state_strict
from common.imageio import jpeg_decode, jpeg_encode
from common.infer import restore
from common.metrics import psnr
from common.planner import STEPS
from common.update import apply_delta, quantize_delta


def test_fake_quantize_is_the_receivers_rebuild_with_identity_gradient() -> None:
    torch.manual_seed(0)
    base = {"w": torch.randn(4, 3)}
    p = (base["w"] + 0.3 * torch.randn(4, 3)).requires_grad_(True)
    step = 2.0**-4
    fq = fake_quantize({"w": p}, base, step)["w"]
    rebuilt = apply_delta(base, quantize_delta({"w": p}, base, ["w"], step), step)["w"]
    assert torch.allclose(fq, rebuilt, atol=1e-6)
    fq.sum().backward()
    assert p.grad is not None and torch.equal(p.grad, torch.ones(4, 3))


def test_qat_phase_trains_the_quantised_model(small_images) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = build_generator(GeneratorConfig(channels=16, blocks=2))
    base = {k: v.detach().clone() for k, v in model.state_dict().items()}
    pairs = [(jpeg_decode(jpeg_encode(rgb, 15)), rgb, 15) for _, rgb in small_images[:2]]
    before = float(np.mean([psnr(d, o) for d, o, _ in pairs]))
    names = [n for n, _ in model.named_parameters()]
    seen: list[dict[str, torch.Tensor]] = []
    step = 2.0**-6

    def pick(state: dict[str, torch.Tensor]) -> float:
        seen.append(state)
        return step

    rep = finetune(model, pairs, names, FinetuneConfig(budget_seconds=120, max_steps=60, lr=2e-3, qat_fraction=0.5),
                   torch.device("cpu"), qat=pick)
    assert rep.steps == 60 and rep.qat_step == step and rep.qat_start == 30
    assert len(seen) == 1 and set(seen[0]) == set(base)
    tuned = model.state_dict()
    quant = build_generator(model.cfg)
    load_state_strict(quant, apply_delta(base, quantize_delta(tuned, base, names, step), step))
    after = float(np.mean([psnr(restore(quant.eval(), d), o) for d, o, _ in pairs]))
    assert 0.2 < after - before < 8.0  # the quantised model, as shipped, gained


def test_encode_records_the_qat_step_and_decodes_what_it_measured(small_images) -> None:  # type: ignore[no-untyped-def]
    opts = EncodeOptions(quality=20, match_jpeg=None, mode="restore", update="delta", max_steps=20,
                         budget_seconds=60, max_update_share=1.0)
    r = encode_images(small_images, opts)
    qat = r.summary["decision"]["finetune"]["qat"]
    assert qat["from_step"] == math.ceil(20 * (1 - FinetuneConfig().qat_fraction) - 1e-9)
    assert qat["step"] is None or qat["step"] in STEPS
    assert qat["byte_budget"] >= 0 and "float_gain_db" in qat
    dec = decode_bundle(r.bundle)
    for (_, rgb), out, im in zip(small_images, dec.images, dec.bundle.images, strict=True):
        assert abs(psnr(out, rgb) - im.info["pr"]) < 0.01


def test_auto_never_ships_an_update_over_the_cap() -> None:
    from common.planner import _choose_step

    torch.manual_seed(0)
    cfg = GeneratorConfig(channels=8, blocks=1)
    base = {k: v.detach().clone() for k, v in build_generator(cfg).state_dict().items()}
    tuned = {k: v + 0.5 * torch.randn_like(v) for k, v in base.items()}  # every step leaves a delta
    rng = np.random.default_rng(0)
    crops = [((rng.random((16, 16, 3)) * 255).astype(np.uint8), (rng.random((16, 16, 3)) * 255).astype(np.uint8), 20)]
    names = list(base)
    header, data, state, trace = _choose_step(cfg, base, tuned, names, crops, 1e6, None, max_bytes=8)
    assert all(t["bytes"] > 8 and t["cost"] is None for t in trace)  # nothing fits
    assert header == {"kind": "none"} and data == b"" and state is base
    header, data, _, _ = _choose_step(cfg, base, tuned, names, crops, 1e6, None, forced=True, max_bytes=8)
    assert header["kind"] == "delta" and data  # --update delta asked for one: the coarsest is sent


def test_the_decision_counts_the_update_header() -> None:
    import json

    from common.planner import Plan, _cost, _Ctx
    from common.search import SetImage

    im = SetImage("a", np.zeros((16, 16, 3), np.uint8))
    row = ([im], [20], [True], [30.0], [29.0], [29.0], [100])
    base = Plan("base", "restore", 1, *row)
    header = {"kind": "delta", "coding": "rc1", "params": [["body.0.weight", 0.0625]]}
    delta = Plan("delta", "restore", 1, *row, update_header=header, update_bytes=b"x")
    ctx = _Ctx([im], True, 75, [29.0], [100], 0.0, None)
    assert base.update_header_bytes == 0
    assert delta.update_header_bytes == len(json.dumps(header, separators=(",", ":"))) > 50
    assert delta.total == base.total + 1  # one byte of update...
    assert _cost(delta, ctx, 29.0) == delta.total + delta.update_header_bytes  # ...plus its header entry
    assert _cost(base, ctx, 29.0) == base.total
