"""Per-set fine-tuning: overfit the generator to (decoded JPEG, original) pairs of one image set.

Random crops from every pair, MSE loss (PSNR is the target), Adam with a cosine learning rate
annealed over the *time* budget, so the schedule completes whatever the machine speed. Only the
parameters named in ``names`` move; the rest stay at the base values.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .generator import CompactGenerator

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class FinetuneConfig:
    budget_seconds: float = 60.0
    max_steps: int | None = None
    lr: float = 3e-4
    batch: int = 8
    patch: int = 128
    seed: int = 0


@dataclass
class FinetuneReport:
    steps: int
    seconds: float
    final_loss: float
    device: str


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _crop_batch(
    pairs: Sequence[tuple[torch.Tensor, torch.Tensor, int]], rng: random.Random, batch: int, patch: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    xs, ys, qs = [], [], []
    for _ in range(batch):
        x, y, q = pairs[rng.randrange(len(pairs))]
        qs.append(float(q))
        h, w = x.shape[-2:]
        ph, pw = min(patch, h), min(patch, w)
        # Crop on the 8x8 JPEG grid so block-boundary artefacts stay where the network saw them.
        y0 = rng.randrange(0, h - ph + 1)
        x0 = rng.randrange(0, w - pw + 1)
        y0, x0 = y0 - y0 % 2, x0 - x0 % 2
        xs.append(x[:, y0 : y0 + ph, x0 : x0 + pw])
        ys.append(y[:, y0 : y0 + ph, x0 : x0 + pw])
    if len({t.shape for t in xs}) > 1:  # mixed small images: pad to the largest crop
        hh, ww = max(t.shape[-2] for t in xs), max(t.shape[-1] for t in xs)
        xs = [F.pad(t, (0, ww - t.shape[-1], 0, hh - t.shape[-2]), mode="replicate") for t in xs]
        ys = [F.pad(t, (0, ww - t.shape[-1], 0, hh - t.shape[-2]), mode="replicate") for t in ys]
    return torch.stack(xs), torch.stack(ys), torch.tensor(qs, device=xs[0].device)


def finetune(
    model: CompactGenerator,
    pairs: Sequence[tuple[np.ndarray, np.ndarray, int]],
    names: Sequence[str],
    cfg: FinetuneConfig,
    device: torch.device,
    progress: ProgressFn | None = None,
) -> FinetuneReport:
    """Fine-tune ``model`` in place on ``(decoded, original, payload quality)`` triples (uint8 images)."""
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
    while step < max_steps:
        elapsed = time.monotonic() - t0
        if elapsed >= cfg.budget_seconds:
            break
        frac = max(elapsed / cfg.budget_seconds, step / max_steps)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        x, y, q = _crop_batch(tensors, rng, cfg.batch, cfg.patch)
        loss = F.mse_loss(model(x, q), y)
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
    return FinetuneReport(steps=step, seconds=time.monotonic() - t0, final_loss=loss_avg, device=str(device))
