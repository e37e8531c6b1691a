"""Bjøntegaard delta metrics (VCEG-M33) between two rate-distortion curves, numpy only.

A curve is a sequence of ``(rate, psnr_db)`` points (rate in any positive unit, e.g. bits per pixel).

BD-rate: log10(rate) is interpolated as a function of PSNR for both curves, integrated over the PSNR
interval where both curves (and the optional ``psnr_range``) overlap, and the mean difference is
turned back into a rate ratio::

    bd_rate = (10 ** mean(log10 r_test(D) - log10 r_anchor(D)) - 1) * 100   [%]

Negative means the test curve needs fewer bits for the same PSNR. BD-PSNR is the mirror image:
PSNR as a function of log10(rate), mean difference in dB (positive = test is better).

Two interpolations are offered: ``"pchip"`` (monotone piecewise cubic Hermite, as in the JCT-VC /
JVET common-test-conditions spreadsheets; the default) and ``"cubic"`` (the original single cubic
polynomial least-squares fit of VCEG-M33).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Curve = Sequence[tuple[float, float]]
METHODS = ("pchip", "cubic")
MIN_POINTS = 4


def _points(curve: Curve, name: str) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(curve, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} curve must be a list of (rate, psnr) pairs, got shape {arr.shape}")
    if len(arr) < MIN_POINTS:
        raise ValueError(f"{name} curve has {len(arr)} points; BD metrics need at least {MIN_POINTS}")
    if not np.all(np.isfinite(arr)) or np.any(arr[:, 0] <= 0):
        raise ValueError(f"{name} curve has a non-finite value or a rate <= 0: {arr.tolist()}")
    return arr[:, 0], arr[:, 1]


def _sorted_xy(x: np.ndarray, y: np.ndarray, name: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if np.any(np.diff(x) <= 0):
        raise ValueError(f"{name} curve has repeated {what} values {x.tolist()}; they must be distinct")
    return x, y


def _end_slope(h0: float, h1: float, d0: float, d1: float) -> float:
    """Three-point end slope, kept shape-preserving (Moler, 'Numerical Computing with MATLAB')."""
    s = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
    if np.sign(s) != np.sign(d0):
        return 0.0
    if np.sign(d0) != np.sign(d1) and abs(s) > abs(3 * d0):
        return 3 * d0
    return float(s)


def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Derivatives at the knots of the monotone piecewise cubic Hermite interpolant (Fritsch-Carlson).

    ``x`` strictly increasing, ``len(x) >= 2``. Interior slopes are the weighted harmonic mean of the
    neighbouring secants, or 0 where the data has a local extremum.
    """
    h = np.diff(x)
    delta = np.diff(y) / h
    d = np.zeros_like(y)
    if len(x) == 2:
        return np.full_like(y, delta[0])
    w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
    same_sign = delta[:-1] * delta[1:] > 0
    safe0 = np.where(same_sign, delta[:-1], 1.0)
    safe1 = np.where(same_sign, delta[1:], 1.0)
    d[1:-1] = np.where(same_sign, (w1 + w2) / (w1 / safe0 + w2 / safe1), 0.0)
    d[0] = _end_slope(h[0], h[1], delta[0], delta[1])
    d[-1] = _end_slope(h[-1], h[-2], delta[-1], delta[-2])
    return d


def pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Exact integral over ``[lo, hi]`` (inside ``[x[0], x[-1]]``) of the pchip interpolant of (x, y)."""
    d = pchip_slopes(x, y)
    h = np.diff(x)
    delta = np.diff(y) / h
    # On segment k, with t = x - x[k]:  p(t) = y_k + d_k t + c2 t^2 + c3 t^3.
    c2 = (3 * delta - 2 * d[:-1] - d[1:]) / h
    c3 = (d[:-1] + d[1:] - 2 * delta) / h**2
    ta = np.clip(lo - x[:-1], 0.0, h)
    tb = np.clip(hi - x[:-1], 0.0, h)

    def antiderivative(t: np.ndarray) -> np.ndarray:
        return y[:-1] * t + d[:-1] * t**2 / 2 + c2 * t**3 / 3 + c3 * t**4 / 4

    return float(np.sum(antiderivative(tb) - antiderivative(ta)))


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    if method == "pchip":
        return pchip_integral(x, y, lo, hi)
    if method == "cubic":
        poly = np.polyint(np.polyfit(x, y, 3))
        return float(np.polyval(poly, hi) - np.polyval(poly, lo))
    raise ValueError(f"unknown BD interpolation {method!r}; choose one of {METHODS}")


def _interval(xa: np.ndarray, xt: np.ndarray, limit: tuple[float, float] | None, what: str) -> tuple[float, float]:
    lo, hi = max(xa[0], xt[0]), min(xa[-1], xt[-1])
    if limit is not None:
        lo, hi = max(lo, limit[0]), min(hi, limit[1])
    if not hi > lo:
        raise ValueError(
            f"the curves do not overlap in {what}: anchor [{xa[0]:.4g}, {xa[-1]:.4g}], "
            f"test [{xt[0]:.4g}, {xt[-1]:.4g}], range {limit}"
        )
    return float(lo), float(hi)


def psnr_overlap(anchor: Curve, test: Curve, psnr_range: tuple[float, float] | None = None) -> tuple[float, float]:
    """The PSNR interval ``(lo, hi)`` that :func:`bd_rate` integrates over."""
    pa = np.sort(_points(anchor, "anchor")[1])
    pt = np.sort(_points(test, "test")[1])
    return _interval(pa, pt, psnr_range, "PSNR")


def bd_rate(
    anchor: Curve, test: Curve, *, method: str = "pchip", psnr_range: tuple[float, float] | None = None
) -> float:
    """BD-rate of ``test`` against ``anchor`` in percent (negative = fewer bits at equal PSNR).

    ``psnr_range=(lo, hi)`` restricts the integration to that PSNR interval (clipped to the overlap).
    Raises ``ValueError`` for fewer than 4 points, repeated PSNRs, or no overlap.
    """
    ra, pa = _points(anchor, "anchor")
    rt, pt = _points(test, "test")
    pa, la = _sorted_xy(pa, np.log10(ra), "anchor", "PSNR")
    pt, lt = _sorted_xy(pt, np.log10(rt), "test", "PSNR")
    lo, hi = _interval(pa, pt, psnr_range, "PSNR")
    diff = (_integral(pt, lt, lo, hi, method) - _integral(pa, la, lo, hi, method)) / (hi - lo)
    return float((10.0**diff - 1.0) * 100.0)


def bd_psnr(
    anchor: Curve, test: Curve, *, method: str = "pchip", rate_range: tuple[float, float] | None = None
) -> float:
    """BD-PSNR of ``test`` against ``anchor`` in dB (positive = higher PSNR at equal rate).

    ``rate_range=(lo, hi)`` (in rate units, not log) restricts the integration interval.
    """
    ra, pa = _points(anchor, "anchor")
    rt, pt = _points(test, "test")
    la, pa = _sorted_xy(np.log10(ra), pa, "anchor", "rate")
    lt, pt = _sorted_xy(np.log10(rt), pt, "test", "rate")
    limit = None if rate_range is None else (float(np.log10(rate_range[0])), float(np.log10(rate_range[1])))
    lo, hi = _interval(la, lt, limit, "log-rate")
    return float((_integral(lt, pt, lo, hi, method) - _integral(la, pa, lo, hi, method)) / (hi - lo))
