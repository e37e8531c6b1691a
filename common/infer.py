"""Run a generator over whole images: uint8 in, uint8 out, tiled with bounded memory.

Tiles overlap by at least the generator's receptive radius and only each tile's centre is
pasted back, so tiled output equals untiled output (up to float rounding in the last ulp). For
super-resolution generators (``scale`` s > 1) tiles are cut from the input and the output is s
times larger.
"""

from __future__ import annotations

import numpy as np
import torch

from .generator import Generator

DEFAULT_TILE = 512


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """``(H,W,3) uint8`` → ``(1,3,H,W) float32 in [0,1]``."""
    return torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1)[None].float().div_(255.0)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """``(1,3,H,W) float`` → ``(H,W,3) uint8`` (clamped, rounded)."""
    return t[0].clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def restore(model: Generator, rgb: np.ndarray, *, q: int | None = None, tile: int = DEFAULT_TILE) -> np.ndarray:
    """Apply ``model`` to a decoded payload ``(h,w,3) uint8``; returns ``(s·h, s·w, 3) uint8``.

    ``tile`` is the core tile side in input pixels (rounded down to the generator's ``multiple``);
    0 = untiled. Tiles overlap by the receptive radius, so the result equals the untiled one.
    """
    device = next(model.parameters()).device
    qt = None if q is None else torch.tensor([float(q)], device=device)
    h, w = rgb.shape[:2]
    s, m = model.scale, model.multiple
    with torch.inference_mode():
        if tile <= 0 or (h <= tile and w <= tile):
            return to_uint8(model(to_tensor(rgb).to(device), qt).cpu())
        tile = max(m, tile - tile % m)
        pad = -(-model.receptive_radius // m) * m  # round up to a multiple of m
        out = np.empty((s * h, s * w, 3), dtype=np.uint8)
        for y0 in range(0, h, tile):
            for x0 in range(0, w, tile):
                y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
                ya, xa = max(0, y0 - pad), max(0, x0 - pad)
                yb, xb = min(h, y1 + pad), min(w, x1 + pad)
                # Keep the tile's grid aligned to the generator's grid over the full image.
                yb = ya + ((yb - ya) // m) * m if yb < h else yb
                xb = xa + ((xb - xa) // m) * m if xb < w else xb
                res = to_uint8(model(to_tensor(rgb[ya:yb, xa:xb]).to(device), qt).cpu())
                out[s * y0 : s * y1, s * x0 : s * x1] = res[s * (y0 - ya) : s * (y1 - ya), s * (x0 - xa) : s * (x1 - xa)]
        return out
