"""Bjøntegaard delta metrics: exact cases, published curve pairs, and input errors."""

from __future__ import annotations

import numpy as np
import pytest

from common.bdrate import bd_psnr, bd_rate, pchip_integral, pchip_slopes, psnr_overlap

# "Sample" pair shipped with the public VCEG-M33 reference scripts (rates in kbit/s, PSNR in dB),
# and "Test 1" of the FAU-LMS bjontegaard package (libx265 presets). Expected values were computed
# outside this code base with scipy.interpolate.PchipInterpolator.integrate (pchip) and
# numpy.polyfit/polyint (cubic), following the same definition.
SAMPLE_ANCHOR = list(zip([686.76, 309.58, 157.11, 85.95], [40.28, 37.18, 34.24, 31.42], strict=True))
SAMPLE_TEST = list(zip([893.34, 407.8, 204.93, 112.75], [40.39, 37.21, 34.17, 31.24], strict=True))
X265_ANCHOR = list(zip([9487.76, 4593.60, 2486.44, 1358.24], [40.037, 38.615, 36.845, 34.851], strict=True))
X265_TEST = list(zip([9787.80, 4469.00, 2451.52, 1356.24], [40.121, 38.651, 36.970, 34.987], strict=True))


def test_identical_curves_give_zero() -> None:
    for method in ("pchip", "cubic"):
        assert bd_rate(SAMPLE_ANCHOR, SAMPLE_ANCHOR, method=method) == pytest.approx(0.0, abs=1e-9)
        assert bd_psnr(SAMPLE_ANCHOR, SAMPLE_ANCHOR, method=method) == pytest.approx(0.0, abs=1e-9)


def test_rate_scaled_by_0_8_is_minus_20_percent() -> None:
    scaled = [(r * 0.8, p) for r, p in X265_ANCHOR]
    for method in ("pchip", "cubic"):
        assert bd_rate(X265_ANCHOR, scaled, method=method) == pytest.approx(-20.0, abs=1e-6)
        assert bd_rate(scaled, X265_ANCHOR, method=method) == pytest.approx(25.0, abs=1e-6)


def test_psnr_shift_gives_bd_psnr() -> None:
    shifted = [(r, p + 0.5) for r, p in SAMPLE_ANCHOR]
    assert bd_psnr(SAMPLE_ANCHOR, shifted) == pytest.approx(0.5, abs=1e-9)
    assert bd_rate(SAMPLE_ANCHOR, shifted) < 0


def test_published_pairs_match_reference_values() -> None:
    assert bd_rate(SAMPLE_ANCHOR, SAMPLE_TEST, method="cubic") == pytest.approx(31.3973740549, abs=1e-6)
    assert bd_rate(SAMPLE_ANCHOR, SAMPLE_TEST) == pytest.approx(31.3798782024, abs=1e-6)
    assert bd_rate(X265_ANCHOR, X265_TEST, method="cubic") == pytest.approx(-4.4204627061, abs=1e-6)
    assert bd_rate(X265_ANCHOR, X265_TEST) == pytest.approx(-4.4174853506, abs=1e-6)
    assert bd_psnr(X265_ANCHOR, X265_TEST) == pytest.approx(0.1196927854, abs=1e-6)
    assert bd_psnr(SAMPLE_ANCHOR, SAMPLE_TEST) == pytest.approx(-1.1834724046, abs=1e-6)


def test_point_order_does_not_matter() -> None:
    assert bd_rate(X265_ANCHOR[::-1], X265_TEST) == pytest.approx(bd_rate(X265_ANCHOR, X265_TEST), abs=1e-12)


def test_psnr_range_restricts_the_interval() -> None:
    lo, hi = psnr_overlap(X265_ANCHOR, X265_TEST, (36.0, 39.0))
    assert (lo, hi) == (36.0, 39.0)
    scaled = [(r * 0.8, p) for r, p in X265_ANCHOR]
    assert bd_rate(X265_ANCHOR, scaled, psnr_range=(36.0, 39.0)) == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate(X265_ANCHOR, X265_TEST, psnr_range=(36.0, 39.0)) != pytest.approx(
        bd_rate(X265_ANCHOR, X265_TEST), abs=1e-3
    )


def test_pchip_is_exact_for_lines_and_monotone() -> None:
    x = np.array([0.0, 1.0, 3.0, 4.0, 7.0])
    assert pchip_integral(x, 2 * x + 1, 0.5, 6.0) == pytest.approx((36 + 6) - (0.25 + 0.5))
    y = np.array([0.0, 0.1, 5.0, 5.1, 5.2])
    assert np.all(pchip_slopes(x, y) >= 0)
    assert np.all(pchip_slopes(x, np.array([0.0, 1.0, 0.0, 1.0, 0.0]))[1:-1] == 0)


@pytest.mark.parametrize(
    ("anchor", "test", "match"),
    [
        (SAMPLE_ANCHOR[:3], SAMPLE_TEST, "at least 4"),
        (SAMPLE_ANCHOR, [(r, p + 40) for r, p in SAMPLE_TEST], "overlap"),
        (SAMPLE_ANCHOR, [(r, 35.0) for r, _ in SAMPLE_TEST], "distinct"),
        (SAMPLE_ANCHOR, [(-1.0, 30.0)] + SAMPLE_TEST[1:], "rate <= 0"),
        (SAMPLE_ANCHOR, [(float("nan"), 30.0)] + SAMPLE_TEST[1:], "non-finite"),
    ],
)
def test_bad_input_raises_value_error(anchor: list, test: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        bd_rate(anchor, test)


def test_unknown_method_and_empty_range() -> None:
    with pytest.raises(ValueError, match="unknown BD interpolation"):
        bd_rate(SAMPLE_ANCHOR, SAMPLE_TEST, method="akima")
    with pytest.raises(ValueError, match="overlap"):
        bd_rate(SAMPLE_ANCHOR, SAMPLE_TEST, psnr_range=(45.0, 50.0))
