"""Run a generator over whole images: uint8 in, uint8 out, tiled with bounded memory.

Tiles overlap by at least the generator's receptive radius and only each tile's centre is
pasted back, so tiled output equals untiled output (up to float rounding in the last ulp).
"""

from __future__ import annotations

import numpy as np
import torch

from .generator import CompactGenerator

DEFAULT_TILE = 512


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """``(H,W,3) uint8`` → ``(1,3,H,W) float32 in [0,1]``."""
    return torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1)[None].float().div_(255.0)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """``(1,3,H,W) float`` → ``(H,W,3) uint8`` (clamped, rounded)."""
    return t[0].clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def restore(model: CompactGenerator, rgb: np.ndarray, *, q: int | None = None, tile: int = DEFAULT_TILE) -> np.ndarray:
    """Apply ``model`` to a decoded JPEG ``(H,W,3) uint8``; returns ``(H,W,3) uint8``.

    ``tile`` is the core tile side (a multiple of the generator's unshuffle factor); 0 = untiled.
    """
    device = next(model.parameters()).device
    qt = None if q is None else torch.tensor([float(q)], device=device)
    h, w = rgb.shape[:2]
    with torch.inference_mode():
        if tile <= 0 or (h <= tile and w <= tile):
            return to_uint8(model(to_tensor(rgb).to(device), qt).cpu())
        s = model.cfg.unshuffle
        tile -= tile % s
        pad = -(-model.receptive_radius // s) * s  # round up to a multiple of s
        out = np.empty_like(rgb)
        for y0 in range(0, h, tile):
            for x0 in range(0, w, tile):
                y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
                ya, xa = max(0, y0 - pad), max(0, x0 - pad)
                yb, xb = min(h, y1 + pad), min(w, x1 + pad)
                # Keep the tile's grid aligned to the unshuffle grid of the full image.
                yb = ya + ((yb - ya) // s) * s if yb < h else yb
                xb = xa + ((xb - xa) // s) * s if xb < w else xb
                res = to_uint8(model(to_tensor(rgb[ya:yb, xa:xb]).to(device), qt).cpu())
                out[y0:y1, x0:x1] = res[y0 - ya : y1 - ya, x0 - xa : x1 - xa]
        return out
