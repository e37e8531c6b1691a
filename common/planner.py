"""Builds the candidate plans (jpeg, base, delta, full) for one image set and picks one.

A :class:`Plan` fixes each image's payload quality and whether the generator runs on it, and
records the PSNR the receiver will reproduce. See :mod:`common.codec` for the decision rule.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .finetune import FinetuneConfig, finetune, pick_device
from .generator import CompactGenerator, GeneratorConfig, build_generator, load_state_strict
from .infer import to_tensor, to_uint8
from .search import SetImage, jpeg_slope, min_quality
from .update import decode_update, encode_delta, encode_full, quantize_delta, select_params
from .weights import load_base

if TYPE_CHECKING:
    from .codec import EncodeOptions

ProgressFn = Callable[[str, int, int], None]
STEPS = tuple(2.0**-k for k in range(4, 12))
EVAL_CROPS, EVAL_PATCH = 32, 128


@dataclass
class Plan:
    kind: str
    images: list[SetImage]
    qs: list[int]
    gs: list[bool]
    psnrs: list[float]
    psnr_payload: list[float]
    targets: list[float]
    ref_bytes: list[int]
    update_header: dict[str, Any] = field(default_factory=lambda: {"kind": "none"})
    update_bytes: bytes = b""

    @property
    def jpeg_bytes(self) -> int:
        return sum(len(im.payload(q)[0]) for im, q in zip(self.images, self.qs, strict=True))

    @property
    def total(self) -> int:
        return self.jpeg_bytes + len(self.update_bytes)

    @property
    def mean_psnr(self) -> float:
        return float(np.mean(self.psnrs))


@dataclass
class PlanResult:
    chosen: Plan
    config: GeneratorConfig
    base_sha: str
    ref_quality: int
    decision: dict[str, Any]
    finetune_seconds: float = 0.0


def _plan(kind: str, imgs: list[SetImage], model: CompactGenerator | None, tag: int, match: bool,
          q_ref: int, targets: list[float], ref_bytes: list[int], guesses: list[int],
          progress: ProgressFn | None) -> Plan:
    qs, gs, ps, pp = [], [], [], []
    for i, im in enumerate(imgs):
        if progress is not None:
            progress(f"plan:{kind}", i, len(imgs))
        if match:
            t = targets[i]
            def jpeg_ok(q: int, im: SetImage = im, t: float = t) -> bool:
                return im.score(None, 0, q) >= t

            def gen_ok(q: int, im: SetImage = im, t: float = t) -> bool:
                return im.score(model, tag, q) >= t

            qj = min_quality(jpeg_ok, 100, guess=q_ref) or 100
            best = (len(im.payload(qj)[0]), qj, False)
            if model is not None:
                qg = min_quality(gen_ok, qj, guess=guesses[i])
                if qg is not None and len(im.payload(qg)[0]) < best[0]:
                    best = (len(im.payload(qg)[0]), qg, True)
            _, q, g = best
        else:
            q = q_ref
            g = model is not None and im.score(model, tag, q) > im.score(None, 0, q)
        qs.append(q)
        gs.append(g)
        ps.append(im.score(model if g else None, tag if g else 0, q))
        pp.append(im.score(None, 0, q))
    if progress is not None:
        progress(f"plan:{kind}", len(imgs), len(imgs))
    return Plan(kind, imgs, qs, gs, ps, pp, targets, ref_bytes)


def _model(cfg: GeneratorConfig, state: dict[str, torch.Tensor]) -> CompactGenerator:
    m = build_generator(cfg)
    load_state_strict(m, state)
    return m.eval()


Crop = tuple[np.ndarray, np.ndarray, int]


def _eval_crops(pairs: Sequence[Crop], seed: int) -> list[Crop]:
    rng = random.Random(seed + 1)
    crops = []
    for k in range(EVAL_CROPS):
        d, o, q = pairs[k % len(pairs)]
        h, w = d.shape[:2]
        ph, pw = min(EVAL_PATCH, h), min(EVAL_PATCH, w)
        y0, x0 = rng.randrange(h - ph + 1) & ~1, rng.randrange(w - pw + 1) & ~1
        crops.append((d[y0 : y0 + ph, x0 : x0 + pw], o[y0 : y0 + ph, x0 : x0 + pw], q))
    return crops


def _crop_mse(model: CompactGenerator, crops: list[Crop]) -> float:
    tot = 0.0
    with torch.inference_mode():
        for d, o, q in crops:
            out = to_uint8(model(to_tensor(d), torch.tensor([float(q)]))).astype(np.float64)
            tot += float(np.mean((out - o) ** 2))
    return tot / len(crops)


def _choose_step(cfg: GeneratorConfig, base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor],
                 names: list[str], crops: list[Crop], lam: float,
                 progress: ProgressFn | None, forced: bool = False) -> tuple[dict[str, Any], bytes, dict[str, torch.Tensor], list]:
    """Quantisation step by rate-distortion: minimise update bytes − λ·(dB gained over the base).

    ``forced`` (``--update delta``): only steps that leave a non-empty update compete, if any do.
    """
    template = build_generator(cfg).state_dict()
    mse_base = _crop_mse(_model(cfg, base), crops)
    best: tuple[float, dict[str, Any], bytes, dict[str, torch.Tensor]] | None = None
    trace = []
    for k, step in enumerate(STEPS):
        header, data = encode_delta(quantize_delta(tuned, base, names, step), step)
        state = decode_update(header, data, template, base)  # exactly what the receiver rebuilds
        gain = 10 * math.log10(mse_base / max(_crop_mse(_model(cfg, state), crops), 1e-12))
        cost = len(data) - lam * gain
        trace.append({"step": step, "bytes": len(data), "gain_db": round(gain, 4), "cost": round(cost, 1)})
        if forced and not data:
            cost = math.inf
        if best is None or cost < best[0]:
            best = (cost, header, data, state)
        if progress is not None:
            progress("measuring", k + 1, len(STEPS))
    assert best is not None
    return best[1], best[2], best[3], trace


def make_plans(images: Sequence[tuple[str, np.ndarray]], opts: EncodeOptions,
               progress: ProgressFn | None = None) -> PlanResult:
    imgs = [SetImage(n, rgb) for n, rgb in images]
    match = opts.quality is None
    q_ref = int(opts.match_jpeg if match else opts.quality)  # type: ignore[arg-type]
    refs = [im.reference(q_ref) for im in imgs]
    targets, ref_bytes = [r[1] for r in refs], [r[0] for r in refs]
    cfg, base_state, sha = load_base(opts.base)
    n = len(imgs)

    def plan(kind: str, model: CompactGenerator | None, tag: int, guesses: list[int]) -> Plan:
        return _plan(kind, imgs, model, tag, match, q_ref, targets, ref_bytes, guesses, progress)

    plans = {"jpeg": plan("jpeg", None, 0, [q_ref] * n)}
    decision: dict[str, Any] = {"match_jpeg": q_ref if match else None, "quality": None if match else q_ref}
    ft_seconds = 0.0
    lam = 0.0
    if opts.mode == "restore":
        base_plan = plan("base", _model(cfg, base_state), 1, [max(1, q_ref - 15)] * n)
        plans["base"] = base_plan
        lam = jpeg_slope(imgs, base_plan.qs)
        budget_ok = opts.budget_seconds > 0 and opts.max_steps != 0
        if opts.update in ("auto", "delta", "full") and budget_ok:
            qs_train = sorted({(q, k) for k, q in enumerate(base_plan.qs)})
            pairs = [(imgs[k].payload(q)[1], imgs[k].rgb, q) for q, k in qs_train]
            if match:  # also a little below, where the tuned model should take the payload
                pairs += [(imgs[k].payload(max(1, q - 5))[1], imgs[k].rgb, max(1, q - 5)) for q, k in qs_train]
            tuned_model = _model(cfg, base_state)
            names = select_params(base_state, opts.subset)
            rep = finetune(tuned_model, pairs, names,
                           FinetuneConfig(budget_seconds=opts.budget_seconds, max_steps=opts.max_steps,
                                          seed=opts.seed), pick_device(opts.device), progress)
            ft_seconds = rep.seconds
            decision["finetune"] = {"steps": rep.steps, "seconds": round(rep.seconds, 2), "device": rep.device,
                                    "params": sum(base_state[k].numel() for k in names), "subset": opts.subset}
            tuned = {k: v.detach().clone() for k, v in tuned_model.state_dict().items()}
            guesses = [max(1, q - 2) for q in base_plan.qs]
            if opts.update in ("auto", "delta"):
                header, data, state, trace = _choose_step(cfg, base_state, tuned, names,
                                                          _eval_crops(pairs, opts.seed), lam, progress,
                                                          forced=opts.update == "delta")
                p = plan("delta", _model(cfg, state), 2, guesses)
                p.update_header, p.update_bytes = header, data
                if not data:  # every delta quantised to zero: this is the base plan again
                    p.kind = "base"
                plans["delta"] = p
                decision["steps_tried"] = trace
            if opts.update == "full":
                header, data = encode_full(tuned, opts.full_dtype)
                state = decode_update(header, data, build_generator(cfg).state_dict(), None)
                p = plan("full", _model(cfg, state), 3, guesses)
                p.update_header, p.update_bytes = header, data
                plans["full"] = p
    chosen = _pick(plans, opts, match, lam)
    decision.update({
        "chosen": chosen.kind, "lambda_bytes_per_db": round(lam, 1),
        "candidates": {k: {"total_bytes": p.total, "update_bytes": len(p.update_bytes),
                           "psnr": round(p.mean_psnr, 4), "generator_images": sum(p.gs)}
                       for k, p in plans.items()},
    })
    return PlanResult(chosen, cfg, sha, q_ref, decision, ft_seconds)


def _pick(plans: dict[str, Plan], opts: EncodeOptions, match: bool, lam: float) -> Plan:
    forced = {"none": "base", "delta": "delta", "full": "full"}.get(opts.update)
    if opts.mode == "jpeg":
        return plans["jpeg"]
    if forced is not None and forced in plans:
        return plans[forced]
    ref = plans["jpeg"].mean_psnr

    def cost(p: Plan) -> float:
        # Match mode: bytes alone (every plan meets the targets). Fixed quality: bytes minus the
        # value of the extra dB at the JPEG price λ.
        return p.total if match else p.total - lam * (p.mean_psnr - ref)

    return min(plans.values(), key=cost)
