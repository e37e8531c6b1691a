"""Per-set fine-tuning: overfit the generator to (decoded JPEG, original) pairs of one image set.

Random crops from every pair, MSE loss (PSNR is the target) or any other ``objective`` (the
perceptual one, :mod:`common.perceptual`), Adam with a cosine learning rate annealed over the
*time* budget, so the schedule completes whatever the machine speed. Only the parameters named in
``names`` move; the rest stay at the base values. For a super-resolution generator (scale s) the
decoded payload is s times smaller than the original and crops are taken at matching places.

Quantisation-aware phase (``qat``): the update travels as ``base + step·round((w − base)/step)``,
and a delta trained in float loses most of its gain at the coarse steps a small update needs
(13 Manga109 pages, q20: +1.39 dB unquantised, −0.10 dB at step 2⁻⁴). So after
``1 − qat_fraction`` of the budget, ``qat(state)`` picks a step and the rest of the run trains
through the quantiser (straight-through gradient): with the default 30 % the same pages keep
+1.07 dB at 2⁻⁴ (``docs/results/update_probe_manga_q20.jsonl``).

    float phase ─▶ qat(state) → step ─▶ QAT phase: forward with base + step·round(δ/step)
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from .generator import Generator

ProgressFn = Callable[[str, int, int], None]
Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class FinetuneConfig:
    budget_seconds: float = 60.0
    max_steps: int | None = None
    # Many small steps beat few large ones within a wall-time budget: on 13 Manga109 pages at q20
    # (60 s, 2 CPU cores) batch 4 of 64² at lr 1e-3 ran 1149 steps and gained +0.34 dB at equal
    # bytes over the base; batch 8 of 128² at 3e-4 ran 161 steps for +0.14 dB
    # (docs/results/finetune_probe.py, results in finetune_probe_manga_q20.jsonl).
    lr: float = 1e-3
    batch: int = 4
    patch: int = 64
    seed: int = 0
    qat_fraction: float = 0.3  # share of the budget trained through the quantiser (when qat is given)


@dataclass
class FinetuneReport:
    steps: int
    seconds: float
    final_loss: float
    device: str
    qat_step: float | None = None  # the step the QAT phase trained for (None: float only)
    qat_start: int | None = None  # the training step at which it began


StepPicker = Callable[[dict[str, torch.Tensor]], float | None]  # float-phase state -> QAT step


def fake_quantize(params: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor], step: float) -> dict[str, torch.Tensor]:
    """``base + step·round((p − base)/step)`` with a straight-through gradient to ``p``."""
    out = {}
    for n, p in params.items():
        d = p - base[n]
        out[n] = p + (torch.round(d / step) * step - d).detach()
    return out


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def aligned_window(rng: random.Random, h: int, w: int, patch: int, multiple: int) -> tuple[int, int, int, int]:
    """A random ``patch``-sided window (clipped to the image) of an ``h x w`` input, its corner on
    the generator's ``multiple`` grid: ``(y0, x0, ph, pw)``."""
    ph, pw = min(patch, h), min(patch, w)
    y0, x0 = rng.randrange(h - ph + 1), rng.randrange(w - pw + 1)
    return y0 - y0 % multiple, x0 - x0 % multiple, ph, pw


def _crop_batch(
    pairs: Sequence[tuple[torch.Tensor, torch.Tensor, int]], rng: random.Random, batch: int, patch: int,
    scale: int, multiple: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    xs, ys, qs = [], [], []
    for _ in range(batch):
        x, y, q = pairs[rng.randrange(len(pairs))]
        qs.append(float(q))
        y0, x0, ph, pw = aligned_window(rng, x.shape[-2], x.shape[-1], max(multiple, patch // scale), multiple)
        xs.append(x[:, y0 : y0 + ph, x0 : x0 + pw])
        ys.append(y[:, scale * y0 : scale * (y0 + ph), scale * x0 : scale * (x0 + pw)])
    if len({t.shape for t in xs}) > 1:  # mixed small images: pad to the largest crop
        hh, ww = max(t.shape[-2] for t in xs), max(t.shape[-1] for t in xs)
        xs = [F.pad(t, (0, ww - t.shape[-1], 0, hh - t.shape[-2]), mode="replicate") for t in xs]
        ys = [F.pad(t, (0, scale * ww - t.shape[-1], 0, scale * hh - t.shape[-2]), mode="replicate") for t in ys]
    return torch.stack(xs), torch.stack(ys), torch.tensor(qs, device=xs[0].device)


def finetune(
    model: Generator,
    pairs: Sequence[tuple[np.ndarray, np.ndarray, int]],
    names: Sequence[str],
    cfg: FinetuneConfig,
    device: torch.device,
    progress: ProgressFn | None = None,
    objective: Objective | None = None,
    qat: StepPicker | None = None,
) -> FinetuneReport:
    """Fine-tune ``model`` in place on ``(decoded, original, payload quality)`` triples (uint8 images).

    Each original is ``scale`` times its decoded payload (padded to a multiple of the scale).
    ``objective(pred, target)`` replaces the MSE loss when given. ``qat(state)`` is called once,
    at ``1 − cfg.qat_fraction`` of the budget, with the current state dict (on the CPU); the step it
    returns is trained through for the rest of the run (None: stay in float).
    """
    loss_fn = objective if objective is not None else F.mse_loss
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    tensors = [
        (torch.from_numpy(np.array(d)).permute(2, 0, 1).float().div(255).to(device),
         torch.from_numpy(np.array(o)).permute(2, 0, 1).float().div(255).to(device), q)
        for d, o, q in pairs
    ]
    model.to(device).train()
    wanted = set(names)
    params = []
    for n, p in model.named_parameters():
        p.requires_grad_(n in wanted)
        if n in wanted:
            params.append(p)
    opt = torch.optim.Adam(params, lr=cfg.lr)
    t0 = time.monotonic()
    step, loss_avg = 0, 0.0
    max_steps = cfg.max_steps if cfg.max_steps is not None else 1_000_000
    qat_step: float | None = None
    qat_start: int | None = None
    # The quantiser's origin: the values fine-tuning started from (the base the receiver holds).
    anchor = {n: p.detach().clone() for n, p in model.named_parameters() if n in wanted} if qat else {}
    while step < max_steps:
        elapsed = time.monotonic() - t0
        if elapsed >= cfg.budget_seconds:
            break
        frac = max(elapsed / cfg.budget_seconds, step / max_steps)
        if qat is not None and qat_start is None and frac >= 1.0 - cfg.qat_fraction:
            qat_start = step
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            qat_step = qat(state)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        x, y, q = _crop_batch(tensors, rng, cfg.batch, cfg.patch, model.scale, model.multiple)
        if qat_step is not None:
            live = {n: p for n, p in model.named_parameters() if n in wanted}
            pred = functional_call(model, fake_quantize(live, anchor, qat_step), (x, q))
        else:
            pred = model(x, q)
        loss = loss_fn(pred, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        lv = float(loss.detach())
        loss_avg = lv if step == 1 else 0.9 * loss_avg + 0.1 * lv
        if progress is not None:
            done = int(1000 * min(1.0, max((time.monotonic() - t0) / cfg.budget_seconds, step / max_steps)))
            progress("training", done, 1000)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval().cpu()
    return FinetuneReport(steps=step, seconds=time.monotonic() - t0, final_loss=loss_avg, device=str(device),
                          qat_step=qat_step, qat_start=qat_start)
