"""Builds the candidate plans (jpeg, base, delta, full) for one image set and picks one.

A :class:`Plan` fixes each image's payload quality and whether the generator runs on it, and
records the PSNR the receiver will reproduce. See :mod:`common.codec` for the decision rule.

Modes: ``restore`` (full-size payload, generator removes JPEG artefacts), ``sr2``/``sr4`` (the
payload is downsampled by 2/4, the generator upsamples it back) and ``auto``, which builds the
base-generator plan of every mode that has a base for the chosen architecture, keeps the cheapest
mode by the same cost rule, and spends the fine-tuning budget on that mode only.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .errors import CodecError, UnknownBaseError
from .finetune import FinetuneConfig, Objective, StepPicker, aligned_window, finetune, pick_device
from .generator import Generator, GeneratorConfig, build_generator, default_config, load_state_strict
from .infer import to_tensor, to_uint8
from .search import SetImage, jpeg_slope, min_quality
from .update import decode_update, encode_delta, encode_full, quantize_delta, select_params
from .weights import latest_base, load_base

if TYPE_CHECKING:
    from .codec import EncodeOptions

ProgressFn = Callable[[str, int, int], None]
STEPS = tuple(2.0 ** (-k / 2) for k in range(4, 23))  # 2^-2 .. 2^-11, half-octaves
# The quantisation-aware phase trains for the finest step whose delta fits both the update-share
# cap (with this margin: QAT grows a delta by a few per cent) and QAT_VALUE_SHARE of what the float
# gain is worth at the set's JPEG price; the step search after training measures what it bought.
QAT_CAP_MARGIN, QAT_VALUE_SHARE = 0.85, 0.5
EVAL_CROPS, EVAL_PATCH = 32, 128
MODE_SCALE = {"restore": 1, "sr2": 2, "sr4": 4}
PERCEPTUAL_FIDELITY_DB = 40.0  # a perceptual update is quantised until its output drifts this far


class PlanOptionsError(CodecError):
    """The options ask for something no plan can do (e.g. an untrained config without --update full)."""

    http_status = 422


def base_name(mode: str, arch: str = "srvgg") -> str:
    """Name of the newest shipped base for a mode and architecture: ``restore-v1``, ``sr4-v2``,
    ``restore-srcnn-v1``, ... (older versions stay shipped so their bundles still decode)."""
    return latest_base(mode if arch == "srvgg" else f"{mode}-{arch}")


@dataclass
class Plan:
    kind: str
    mode: str
    scale: int
    images: list[SetImage]
    qs: list[int]
    gs: list[bool]
    psnrs: list[float]
    psnr_payload: list[float]
    targets: list[float]
    ref_bytes: list[int]
    update_header: dict[str, Any] = field(default_factory=lambda: {"kind": "none"})
    update_bytes: bytes = b""

    def payload(self, i: int) -> bytes:
        """Image ``i``'s JPEG: downsampled by the plan's scale where the generator runs on it."""
        return self.images[i].payload(self.qs[i], self.scale if self.gs[i] else 1)[0]

    @property
    def jpeg_bytes(self) -> int:
        return sum(len(self.payload(i)) for i in range(len(self.images)))

    @property
    def total(self) -> int:
        return self.jpeg_bytes + len(self.update_bytes)

    @property
    def update_header_bytes(self) -> int:
        """What the update's description adds to the bundle header (its parameter list): a few
        hundred bytes, which decide between plans on a small set."""
        if not self.update_bytes:
            return 0
        return len(json.dumps(self.update_header, separators=(",", ":"), ensure_ascii=True))

    @property
    def mean_psnr(self) -> float:
        return float(np.mean(self.psnrs))


@dataclass
class PlanResult:
    chosen: Plan
    config: GeneratorConfig | None
    base_sha: str | None
    ref_quality: int
    decision: dict[str, Any]
    finetune_seconds: float = 0.0


@dataclass
class _Ctx:
    """What every plan of one encode shares."""

    imgs: list[SetImage]
    match: bool
    q_ref: int
    targets: list[float]
    ref_bytes: list[int]
    lam: float  # bytes per dB of mean PSNR (fixed-quality mode's per-image choice)
    progress: ProgressFn | None


def _plan(ctx: _Ctx, kind: str, mode: str, model: Generator | None, tag: int, guesses: list[int],
          always: bool = False) -> Plan:
    """Per image: payload quality and whether the generator runs (see :mod:`common.codec`).

    ``always`` (a perceptual generator at a fixed quality): it runs on every image, since texture,
    not PSNR, is what was asked for. With ``--match-jpeg`` the PSNR promise still decides."""
    imgs, n = ctx.imgs, len(ctx.imgs)
    s = model.scale if model is not None else 1
    qs, gs, ps, pp = [], [], [], []
    for i, im in enumerate(imgs):
        if ctx.progress is not None:
            ctx.progress(f"plan:{kind}", i, n)
        if ctx.match:
            t = ctx.targets[i]
            def jpeg_ok(q: int, im: SetImage = im, t: float = t) -> bool:
                return im.score(None, 0, q) >= t

            def gen_ok(q: int, im: SetImage = im, t: float = t) -> bool:
                return im.score(model, tag, q) >= t

            qj = min_quality(jpeg_ok, 100, guess=ctx.q_ref) or 100
            best = (len(im.payload(qj)[0]), qj, False)
            if model is not None:
                # Restore: never above qj (the generator only adds). SR: any quality of the small payload.
                qg = min_quality(gen_ok, qj if s == 1 else 100, guess=guesses[i])
                if qg is not None and len(im.payload(qg, s)[0]) < best[0]:
                    best = (len(im.payload(qg, s)[0]), qg, True)
            _, q, g = best
        else:
            q = ctx.q_ref
            g = False
            if model is not None:
                pg, pj = im.score(model, tag, q), im.score(None, 0, q)
                if s == 1:
                    g = always or pg > pj
                else:  # fewer bytes, usually fewer dB: worth it at the set's price of a dB
                    price = ctx.lam / n
                    g = always or len(im.payload(q, s)[0]) - price * pg < len(im.payload(q)[0]) - price * pj
        qs.append(q)
        gs.append(g)
        ps.append(im.score(model if g else None, tag if g else 0, q))
        pp.append(im.payload_psnr(q, s if g else 1))
    if ctx.progress is not None:
        ctx.progress(f"plan:{kind}", n, n)
    return Plan(kind, mode if any(gs) else "jpeg", s, imgs, qs, gs, ps, pp, ctx.targets, ctx.ref_bytes)


def _model(cfg: GeneratorConfig, state: dict[str, torch.Tensor]) -> Generator:
    m = build_generator(cfg)
    load_state_strict(m, state)
    return m.eval()


Crop = tuple[np.ndarray, np.ndarray, int]


def _eval_crops(pairs: Sequence[Crop], seed: int, scale: int, multiple: int) -> list[Crop]:
    """A fixed set of (payload, original, q) crops, the original ``scale`` times the payload."""
    rng = random.Random(seed + 1)
    crops = []
    for k in range(EVAL_CROPS):
        d, o, q = pairs[k % len(pairs)]
        y0, x0, ph, pw = aligned_window(rng, d.shape[0], d.shape[1], max(multiple, EVAL_PATCH // scale), multiple)
        crops.append((d[y0 : y0 + ph, x0 : x0 + pw],
                      o[scale * y0 : scale * (y0 + ph), scale * x0 : scale * (x0 + pw)], q))
    return crops


def _crop_outputs(model: Generator, crops: list[Crop]) -> list[np.ndarray]:
    with torch.inference_mode():
        return [to_uint8(model(to_tensor(d), torch.tensor([float(q)]))).astype(np.float64) for d, _, q in crops]


def _mse(outs: list[np.ndarray], refs: list[np.ndarray]) -> float:
    return float(np.mean([np.mean((a - b) ** 2) for a, b in zip(outs, refs, strict=True)]))


def _choose_step(cfg: GeneratorConfig, base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor],
                 names: list[str], crops: list[Crop], lam: float, progress: ProgressFn | None,
                 forced: bool = False, perceptual: bool = False, max_bytes: int | None = None,
                 trained_step: float | None = None,
                 ) -> tuple[dict[str, Any], bytes, dict[str, torch.Tensor], list]:
    """Quantisation step by rate-distortion: minimise update bytes − λ·(dB gained over the base),
    over half-octave steps, among the updates of at most ``max_bytes`` (the update-share cap).

    ``forced`` (``--update delta``): only steps that leave a non-empty update compete, if any do.
    ``perceptual``: PSNR is not the goal, so take the coarsest step whose output stays within
    ``PERCEPTUAL_FIDELITY_DB`` of the unquantised perceptual generator's output (no cap) -- unless
    it was trained through the quantiser (``trained_step``): then that step is the update.
    When no step is admissible, the coarsest non-empty one is taken (the finest, for perceptual) if
    an update was asked for (``forced`` or perceptual); otherwise none is: ``--update auto`` never
    ships an update over the cap.
    """
    steps = STEPS if not perceptual or trained_step is None else (trained_step,)
    fixed = steps is not STEPS
    template = build_generator(cfg).state_dict()
    origs = [o.astype(np.float64) for _, o, _ in crops]
    mse_base = _mse(_crop_outputs(_model(cfg, base), crops), origs)
    tuned_out = _crop_outputs(_model(cfg, tuned), crops) if perceptual and not fixed else []
    tried: list[tuple[float, dict[str, Any], bytes, dict[str, torch.Tensor]]] = []
    trace = []
    for k, step in enumerate(steps):
        header, data = encode_delta(quantize_delta(tuned, base, names, step), step)
        state = decode_update(header, data, template, base)  # exactly what the receiver rebuilds
        outs = _crop_outputs(_model(cfg, state), crops)
        gain = 10 * math.log10(mse_base / max(_mse(outs, origs), 1e-12))
        if fixed:
            cost = float(len(data))
        elif perceptual:
            drift = 10 * math.log10(255.0**2 / max(_mse(outs, tuned_out), 1e-12))
            cost = len(data) if drift >= PERCEPTUAL_FIDELITY_DB else math.inf
        else:
            cost = len(data) - lam * gain
            if max_bytes is not None and len(data) > max_bytes:
                cost = math.inf
        if (forced or perceptual) and not data:
            cost = math.inf
        trace.append({"step": step, "bytes": len(data), "gain_db": round(gain, 4), "cost": round(cost, 1) if cost < math.inf else None})
        tried.append((cost, header, data, state))
        if progress is not None:
            progress("measuring", k + 1, len(steps))
    finite = [t for t in tried if t[0] < math.inf]
    if finite:
        best = min(finite, key=lambda t: t[0])
    elif not (forced or perceptual):
        best = (0.0, {"kind": "none"}, b"", base)
    else:
        nonempty = [t for t in tried if t[2]] or tried
        best = nonempty[-1] if perceptual else nonempty[0]
    return best[1], best[2], best[3], trace


def _qat_picker(cfg: GeneratorConfig, base: dict[str, torch.Tensor], names: list[str], crops: list[Crop],
                lam: float, max_bytes: int | None, note: dict[str, Any], perceptual: bool = False,
                ) -> StepPicker:
    """The step the quantisation-aware phase trains for (see ``QAT_*``), from the float phase's state;
    None (stay in float) when the float phase gained nothing. A perceptual update is not priced
    in dB: only the cap bounds it. What it saw goes in ``note``."""

    def pick(state: dict[str, torch.Tensor]) -> float | None:
        origs = [o.astype(np.float64) for _, o, _ in crops]
        gain = 10 * math.log10(_mse(_crop_outputs(_model(cfg, base), crops), origs)
                               / max(_mse(_crop_outputs(_model(cfg, state), crops), origs), 1e-12))
        budget = math.inf if perceptual else QAT_VALUE_SHARE * lam * max(gain, 0.0)
        if max_bytes is not None:
            budget = min(budget, QAT_CAP_MARGIN * max_bytes)
        chosen, size = None, 0
        for step in STEPS:  # coarse to fine: the delta only grows
            n = len(encode_delta(quantize_delta(state, base, names, step), step)[1])
            if n > budget:
                break
            chosen, size = step, n
        if chosen is None and (gain > 0 or perceptual):
            chosen, size = STEPS[0], -1
        note.update({"float_gain_db": round(gain, 4), "byte_budget": int(min(budget, 2**62)), "step": chosen,
                     "bytes_at_switch": size})
        return chosen

    return pick


def resolve_base(opts: EncodeOptions, mode: str) -> tuple[GeneratorConfig, dict[str, torch.Tensor] | None, str | None]:
    """Config, base weights and hash for ``mode``; weights None when the options describe a config
    with no shipped base (allowed only with ``--update full``: it is then trained from scratch)."""
    scale = MODE_SCALE[mode]
    name = opts.base or base_name(mode, opts.arch)
    try:
        cfg, state, sha = load_base(name)
    except UnknownBaseError:
        cfg, state, sha = default_config(opts.arch, scale), None, None
    if cfg.scale != scale or cfg.arch != opts.arch:
        raise PlanOptionsError(f"base {name!r} is {cfg.arch} at scale {cfg.scale}; mode {mode} with "
                               f"arch {opts.arch} needs scale {scale}")
    wanted = default_config(opts.arch, scale, channels=opts.channels or cfg.channels,
                            blocks=opts.blocks or cfg.blocks, unshuffle=cfg.unshuffle, qcond=cfg.qcond)
    if wanted != cfg or state is None:
        if opts.update != "full":
            raise PlanOptionsError(f"no shipped base for {wanted.to_dict()} ({name!r}); only --update full "
                                   "can send it (its weights are then trained from scratch on the set)")
        return wanted, None, None
    return cfg, state, sha


def _objective(opts: EncodeOptions, device: torch.device) -> Objective | None:
    if opts.objective != "perceptual":
        return None
    from .perceptual import PRETRAINED_ADV_WEIGHT, PerceptualObjective, load_discriminator, load_vgg19

    vgg = load_vgg19(opts.vgg_weights).to(device) if opts.vgg_weights else None
    return PerceptualObjective(device, vgg=vgg, seed=opts.seed, discriminator=load_discriminator(),
                               adv_weight=PRETRAINED_ADV_WEIGHT)


def make_plans(images: Sequence[tuple[str, np.ndarray]], opts: EncodeOptions,
               progress: ProgressFn | None = None) -> PlanResult:
    imgs = [SetImage(n, rgb) for n, rgb in images]
    match = opts.quality is None
    q_ref = int(opts.match_jpeg if match else opts.quality)  # type: ignore[arg-type]
    refs = [im.reference(q_ref) for im in imgs]
    n = len(imgs)
    ctx = _Ctx(imgs, match, q_ref, [r[1] for r in refs], [r[0] for r in refs],
               0.0 if match else jpeg_slope(imgs, [q_ref] * n), progress)
    plans = {"jpeg": _plan(ctx, "jpeg", "jpeg", None, 0, [q_ref] * n)}
    decision: dict[str, Any] = {"match_jpeg": q_ref if match else None, "quality": None if match else q_ref}
    modes = {"jpeg": [], "auto": ["restore", "sr2", "sr4"]}.get(opts.mode, [opts.mode])

    # 1. The base generator of each candidate mode (auto: skip modes without a base for the arch).
    bases: dict[str, tuple[GeneratorConfig, dict[str, torch.Tensor] | None, str | None]] = {}
    refused: dict[str, str] = {}
    for mode in modes:
        try:
            bases[mode] = resolve_base(opts, mode)
        except PlanOptionsError as e:
            if opts.mode != "auto":
                raise
            refused[mode] = str(e)
            continue
        cfg, state, _ = bases[mode]
        if state is not None:
            guess = max(1, q_ref - 15) if mode == "restore" else q_ref
            plans[f"{mode}/base"] = _plan(ctx, f"{mode}/base", mode, _model(cfg, state), len(plans), [guess] * n)
    if opts.mode == "auto" and not bases:
        raise PlanOptionsError("--mode auto: no mode can run these options; "
                               + "; ".join(f"{m}: {why}" for m, why in refused.items()))
    base_plans = {m: plans[f"{m}/base"] for m in bases if f"{m}/base" in plans}
    if opts.mode == "auto" and base_plans:
        decision["modes"] = {m: {"total_bytes": p.total, "psnr": round(p.mean_psnr, 4)} for m, p in base_plans.items()}
        mode = min(base_plans, key=lambda m: _cost(base_plans[m], ctx, plans["jpeg"].mean_psnr))
    else:
        mode = modes[0] if modes else "jpeg"
    decision["mode"] = mode
    if f"{mode}/base" in plans:  # the chosen mode's base plan is "base"; others keep "<mode>/base"
        plans["base"] = plans.pop(f"{mode}/base")
        plans["base"].kind = "base"
        base_plans[mode] = plans["base"]

    # 2. Fine-tune the chosen mode's generator on the set; code the update; re-plan with it.
    ft_seconds, lam = 0.0, ctx.lam
    cfg_out: GeneratorConfig | None = None
    sha_out: str | None = None
    if mode in bases:
        cfg, base_state, sha = bases[mode]
        cfg_out, sha_out = cfg, sha
        s = cfg.scale
        base_plan = base_plans.get(mode)
        ref_qs = base_plan.qs if base_plan is not None and s == 1 else plans["jpeg"].qs
        lam = jpeg_slope(imgs, ref_qs) if match else ctx.lam
        budget_ok = opts.budget_seconds > 0 and opts.max_steps != 0
        if opts.update in ("auto", "delta", "full") and budget_ok:
            qs_train = sorted({(q, k) for k, q in enumerate(base_plan.qs if base_plan else plans["jpeg"].qs)})
            pairs = [(imgs[k].payload(q, s)[1], imgs[k].target(s), q) for q, k in qs_train]
            if match:  # also a little below, where the tuned model should take the payload
                pairs += [(imgs[k].payload(max(1, q - 5), s)[1], imgs[k].target(s), max(1, q - 5)) for q, k in qs_train]
            torch.manual_seed(opts.seed)  # the from-scratch init (no base) is seeded too
            tuned_model = build_generator(cfg)
            if base_state is not None:
                load_state_strict(tuned_model, base_state)
            start = {k: v.detach().clone() for k, v in tuned_model.state_dict().items()}
            names = select_params(start, opts.subset)
            device = pick_device(opts.device)
            cap = _update_cap(opts.max_update_share, base_plan or plans["jpeg"])
            crops = _eval_crops(pairs, opts.seed, s, tuned_model.multiple)
            qat_note: dict[str, Any] = {}
            qat: StepPicker | None = None
            perceptual = opts.objective == "perceptual"
            # A perceptual update is trained through the quantiser only under a cap (nothing else
            # bounds it) and without --alpha blending (which would re-quantise a blend).
            if (opts.update in ("auto", "delta") and base_state is not None
                    and (not perceptual or (cap is not None and opts.alpha >= 1))):
                qat = _qat_picker(cfg, base_state, names, crops, lam, cap, qat_note, perceptual)
            rep = finetune(tuned_model, pairs, names,
                           FinetuneConfig(budget_seconds=opts.budget_seconds, max_steps=opts.max_steps,
                                          seed=opts.seed), device, progress, _objective(opts, device), qat)
            ft_seconds = rep.seconds
            decision["finetune"] = {"steps": rep.steps, "seconds": round(rep.seconds, 2), "device": rep.device,
                                    "params": sum(start[k].numel() for k in names), "subset": opts.subset,
                                    "objective": opts.objective}
            if qat_note:
                decision["finetune"]["qat"] = {**qat_note, "from_step": rep.qat_start}
            if perceptual:
                from .perceptual import PRETRAINED_DISCRIMINATOR

                decision["finetune"]["discriminator"] = PRETRAINED_DISCRIMINATOR.stem
            tuned = {k: v.detach().clone() for k, v in tuned_model.state_dict().items()}
            if opts.objective == "perceptual" and base_state is not None and opts.alpha < 1:
                from .perceptual import interpolate_states

                tuned = interpolate_states(base_state, tuned, opts.alpha)
                decision["finetune"]["alpha"] = opts.alpha
            guesses = [max(1, q - 2) for q in (base_plan.qs if base_plan else plans["jpeg"].qs)]
            if opts.update in ("auto", "delta") and base_state is not None:
                header, data, state, trace = _choose_step(
                    cfg, base_state, tuned, names, crops, lam, progress, forced=opts.update == "delta",
                    perceptual=perceptual, max_bytes=cap, trained_step=rep.qat_step)
                p = _plan(ctx, "delta", mode, _model(cfg, state), len(plans) + 1, guesses, always=perceptual)
                p.update_header, p.update_bytes = header, data
                if not data:  # every delta quantised to zero: this is the base plan again
                    p.kind = "base"
                plans["delta"] = p
                decision["steps_tried"] = trace
            if opts.update == "full":
                header, data = encode_full(tuned, opts.full_dtype)
                state = decode_update(header, data, build_generator(cfg).state_dict(), None)
                p = _plan(ctx, "full", mode, _model(cfg, state), len(plans) + 1, guesses)
                p.update_header, p.update_bytes = header, data
                plans["full"] = p
                sha_out = None
    ctx.lam = lam
    chosen = _pick(plans, opts, ctx, mode)
    if not any(chosen.gs):  # no image runs the generator: that is the plain JPEG plan, say so
        chosen = plans["jpeg"]
    decision.update({
        "chosen": chosen.kind, "lambda_bytes_per_db": round(lam, 1),
        "candidates": {k: {"total_bytes": p.total, "update_bytes": len(p.update_bytes),
                           "psnr": round(p.mean_psnr, 4), "generator_images": sum(p.gs)}
                       for k, p in plans.items()},
    })
    if chosen.mode != "jpeg":
        cfg_out, _, base_sha = bases[chosen.mode]
        sha_out = None if chosen.kind == "full" else base_sha
    return PlanResult(chosen, cfg_out if chosen.mode != "jpeg" else None, sha_out, q_ref, decision, ft_seconds)


def _update_cap(share: float, plan: Plan) -> int | None:
    """Largest update that stays ``share`` of a bundle with ``plan``'s JPEG payloads (None: no cap)."""
    return None if share >= 1 else int(share / (1 - share) * plan.jpeg_bytes)


def _cost(p: Plan, ctx: _Ctx, ref_psnr: float) -> float:
    # Match mode: bytes alone (every plan meets the targets). Fixed quality: bytes minus the value
    # of the extra dB at the JPEG price λ.
    size = p.total + p.update_header_bytes
    return size if ctx.match else size - ctx.lam * (p.mean_psnr - ref_psnr)


def _pick(plans: dict[str, Plan], opts: EncodeOptions, ctx: _Ctx, mode: str) -> Plan:
    if opts.mode == "jpeg":
        return plans["jpeg"]
    forced = {"none": "base", "delta": "delta", "full": "full"}.get(opts.update)
    if opts.objective == "perceptual" and "delta" in plans:
        forced = "delta"  # asked for texture, not PSNR: the PSNR-priced rule would refuse it
    if forced is not None and forced in plans:
        return plans[forced]
    ref = plans["jpeg"].mean_psnr
    return min(plans.values(), key=lambda p: _cost(p, ctx, ref))
