"""Quality metrics on ``(H, W, 3) uint8`` arrays: RGB PSNR, MS-SSIM, luma PSNR (for the SR
literature's tables) and the source thesis's two similarity figures (histogram correlation,
exact-pixel match rate)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def mse(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """RGB PSNR in dB for 8-bit images (peak 255); 100 dB for identical images."""
    m = mse(a, b)
    return 100.0 if m == 0 else 10.0 * math.log10(255.0**2 / m)


def hist_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """OpenCV-style histogram correlation (``compareHist(..., HISTCMP_CORREL)``) of 256-bin
    per-channel histograms, averaged over R, G, B; 1.0 for identical histograms."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    out = []
    for c in range(a.shape[2]):
        ha = np.bincount(a[..., c].ravel(), minlength=256).astype(np.float64)
        hb = np.bincount(b[..., c].ravel(), minlength=256).astype(np.float64)
        da, db = ha - ha.mean(), hb - hb.mean()
        den = math.sqrt(float(np.sum(da * da) * np.sum(db * db)))
        out.append(1.0 if den == 0 else float(np.sum(da * db)) / den)
    return float(np.mean(out))


def exact_match_rate(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels whose three 8-bit channels are all exactly equal."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    return float(np.mean(np.all(a == b, axis=-1)))


def y_psnr(a: np.ndarray, b: np.ndarray, shave: int = 0) -> float:
    """PSNR of the BT.601 luma (Y of YCbCr, 16..235 range, as MATLAB's rgb2ycbcr and the SR
    literature) with ``shave`` border pixels removed on every side."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    w = np.array([65.481, 128.553, 24.966]) / 255.0

    def y(x: np.ndarray) -> np.ndarray:
        v = 16.0 + x.astype(np.float64) @ w
        return v[shave:-shave, shave:-shave] if shave else v

    m = float(np.mean((y(a) - y(b)) ** 2))
    return 100.0 if m == 0 else 10.0 * math.log10(255.0**2 / m)


_MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _gauss(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _ssim_parts(x: torch.Tensor, y: torch.Tensor, win: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = x.shape[1]
    wx = win.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    wy = win.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, wx, groups=c), wy, groups=c)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return (lum * cs).mean(dim=(2, 3)), cs.mean(dim=(2, 3))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (Wang et al. 2003, 5 scales, 11x11 Gaussian) of two uint8 RGB images, mean over channels.

    Images smaller than 161 px on a side use as many scales as fit.
    """
    x = torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1)[None]
    y = torch.from_numpy(b.astype(np.float64)).permute(2, 0, 1)[None]
    win = _gauss()
    levels = 5
    while levels > 1 and min(x.shape[-2:]) // 2 ** (levels - 1) < 11:
        levels -= 1
    w = torch.tensor(_MS_WEIGHTS[:levels], dtype=torch.float64)
    w = w / w.sum()
    vals = []
    for i in range(levels):
        ssim, cs = _ssim_parts(x, y, win)
        vals.append(ssim if i == levels - 1 else cs)
        if i < levels - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    stack = torch.stack([v.clamp_min(0) for v in vals], dim=0)  # (levels, 1, C)
    out = torch.prod(stack ** w.view(-1, 1, 1), dim=0)
    return float(out.mean())
