"""Rate-distortion line charts and side-by-side crops, drawn with Pillow alone (no matplotlib).

The chart is rendered at ``SUPERSAMPLE`` times its size and downscaled, which anti-aliases lines,
markers and text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Point = tuple[float, float]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
SUPERSAMPLE = 2
COLOURS = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)
MARKERS = ("o", "s", "^", "D", "v", "x", "+", "*")


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k steps) covering ``[lo, hi]``."""
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / max(1, target)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    count = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [round(first + i * step, 10) for i in range(count)]


def _fmt(v: float, ticks: Sequence[float]) -> str:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    if step < 1 and round(step * 10**decimals, 6) % 1:
        decimals += 1
    return f"{v:.{decimals}f}"


class _Canvas:
    """Maps data coordinates to pixels inside the plot frame."""

    def __init__(self, size: tuple[int, int], xr: tuple[float, float], yr: tuple[float, float]) -> None:
        s = SUPERSAMPLE
        self.img = Image.new("RGB", (size[0] * s, size[1] * s), "white")
        self.draw = ImageDraw.Draw(self.img)
        self.left, self.right = 90 * s, (size[0] - 30) * s
        self.top, self.bottom = 60 * s, (size[1] - 70) * s
        self.xr, self.yr = xr, yr
        self.font = _font(13 * s)
        self.big = _font(17 * s)

    def px(self, x: float, y: float) -> tuple[float, float]:
        fx = (x - self.xr[0]) / (self.xr[1] - self.xr[0])
        fy = (y - self.yr[0]) / (self.yr[1] - self.yr[0])
        return self.left + fx * (self.right - self.left), self.bottom - fy * (self.bottom - self.top)


def _font(size: int) -> Font:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, ValueError, TypeError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def _range(values: Sequence[float], pad: float = 0.06) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    return lo - pad * span, hi + pad * span


def _axes(c: _Canvas, title: str, xlabel: str, ylabel: str) -> None:
    s, d = SUPERSAMPLE, c.draw
    xt = [v for v in nice_ticks(*c.xr) if c.xr[0] <= v <= c.xr[1]]
    yt = [v for v in nice_ticks(*c.yr) if c.yr[0] <= v <= c.yr[1]]
    for v in xt:
        x, _ = c.px(v, c.yr[0])
        d.line([(x, c.top), (x, c.bottom)], fill=(230, 230, 230), width=s)
        d.line([(x, c.bottom), (x, c.bottom + 5 * s)], fill="black", width=s)
        d.text((x, c.bottom + 8 * s), _fmt(v, xt), fill="black", font=c.font, anchor="mt")
    for v in yt:
        _, y = c.px(c.xr[0], v)
        d.line([(c.left, y), (c.right, y)], fill=(230, 230, 230), width=s)
        d.line([(c.left - 5 * s, y), (c.left, y)], fill="black", width=s)
        d.text((c.left - 8 * s, y), _fmt(v, yt), fill="black", font=c.font, anchor="rm")
    d.rectangle([c.left, c.top, c.right, c.bottom], outline="black", width=s)
    mid = (c.left + c.right) / 2
    d.text((mid, c.top / 2), title, fill="black", font=c.big, anchor="mm")
    d.text((mid, c.img.height - 22 * s), xlabel, fill="black", font=c.font, anchor="mm")
    _vertical_text(c, ylabel, (22 * s, (c.top + c.bottom) // 2))


def _vertical_text(c: _Canvas, text: str, centre: tuple[int, int]) -> None:
    box = c.draw.textbbox((0, 0), text, font=c.font)
    label = Image.new("L", (int(box[2]) + 4, int(box[3]) + 4), 0)
    ImageDraw.Draw(label).text((2, 2), text, fill=255, font=c.font)
    label = label.rotate(90, expand=True)
    pos = (centre[0] - label.width // 2, centre[1] - label.height // 2)
    c.img.paste(Image.new("RGB", label.size, "black"), pos, label)


def _marker(d: ImageDraw.ImageDraw, kind: str, x: float, y: float, r: float, colour: tuple[int, ...]) -> None:
    w = max(1, int(r / 2.5))
    if kind == "o":
        d.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    elif kind == "s":
        d.rectangle([x - r, y - r, x + r, y + r], fill=colour)
    elif kind in ("^", "v"):
        sign = -1 if kind == "^" else 1
        d.polygon([(x, y + sign * r * 1.2), (x - r * 1.1, y - sign * r), (x + r * 1.1, y - sign * r)], fill=colour)
    elif kind == "D":
        d.polygon([(x, y - r * 1.3), (x + r, y), (x, y + r * 1.3), (x - r, y)], fill=colour)
    elif kind == "x":
        d.line([(x - r, y - r), (x + r, y + r)], fill=colour, width=w)
        d.line([(x - r, y + r), (x + r, y - r)], fill=colour, width=w)
    else:  # "+" and "*"
        d.line([(x - r, y), (x + r, y)], fill=colour, width=w)
        d.line([(x, y - r), (x, y + r)], fill=colour, width=w)
        if kind == "*":
            _marker(d, "x", x, y, r * 0.75, colour)


def _series(c: _Canvas, points: Sequence[Point], colour: tuple[int, ...], marker: str) -> None:
    s = SUPERSAMPLE
    xy = [c.px(x, y) for x, y in sorted(points)]
    if len(xy) > 1:
        c.draw.line(xy, fill=colour, width=2 * s, joint="curve")
    for x, y in xy:
        _marker(c.draw, marker, x, y, 4 * s, colour)


def _legend(c: _Canvas, labels: Sequence[str]) -> None:
    s, d = SUPERSAMPLE, c.draw
    row = 20 * s
    width = max(d.textlength(t, font=c.font) for t in labels) + 50 * s
    x1, y1 = c.right - 10 * s, c.bottom - 10 * s
    x0, y0 = x1 - width, y1 - row * len(labels) - 8 * s
    d.rectangle([x0, y0, x1, y1], fill="white", outline=(120, 120, 120), width=s)
    for i, text in enumerate(labels):
        colour, y = COLOURS[i % len(COLOURS)], y0 + 4 * s + row * i + row / 2
        d.line([(x0 + 8 * s, y), (x0 + 36 * s, y)], fill=colour, width=2 * s)
        _marker(d, MARKERS[i % len(MARKERS)], x0 + 22 * s, y, 4 * s, colour)
        d.text((x0 + 44 * s, y), text, fill="black", font=c.font, anchor="lm")


def rd_plot(
    curves: dict[str, list[tuple[float, float]]],
    path: str | Path,
    title: str,
    xlabel: str = "bits per pixel",
    ylabel: str = "RGB PSNR (dB)",
    *,
    size: tuple[int, int] = (960, 640),
    yband: tuple[float, float] | None = None,
) -> Path:
    """Draw ``{label: [(x, y), ...]}`` as a PNG line chart with markers and a legend.

    Curves with no points are left out. ``yband=(lo, hi)`` shades a horizontal band (e.g. the PSNR
    interval a BD-rate was computed over). Returns the path written.
    """
    drawn = {k: v for k, v in curves.items() if v}
    if not drawn:
        raise ValueError("rd_plot needs at least one curve with points")
    xs = [x for pts in drawn.values() for x, _ in pts]
    ys = [y for pts in drawn.values() for _, y in pts]
    if not all(math.isfinite(v) for v in xs + ys):
        raise ValueError("rd_plot got a non-finite coordinate")
    c = _Canvas(size, _range(xs), _range(ys))
    if yband is not None:
        (_, ya), (_, yb) = c.px(c.xr[0], yband[0]), c.px(c.xr[0], yband[1])
        c.draw.rectangle([c.left, max(c.top, yb), c.right, min(c.bottom, ya)], fill=(242, 246, 252))
    _axes(c, title, xlabel, ylabel)
    for i, pts in enumerate(drawn.values()):
        _series(c, pts, COLOURS[i % len(COLOURS)], MARKERS[i % len(MARKERS)])
    _legend(c, list(drawn))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    c.img.resize(size, Image.Resampling.LANCZOS).save(out, format="PNG")
    return out


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int) -> str:
    """``text`` broken at spaces into lines no wider than ``width`` pixels (a long word stays whole)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return "\n".join(lines)


def crops_figure(
    panels: Sequence[tuple[str, np.ndarray]], path: str | Path, *, box: tuple[int, int, int, int] | None = None,
    zoom: int = 3, title: str = "",
) -> Path:
    """Side-by-side crops ``[(label, (H,W,3) uint8), ...]`` of the same image, each cut to ``box``
    ``(x, y, w, h)`` (default: the centre 96x96) and enlarged ``zoom`` times with nearest neighbour
    (so artefacts and texture stay visible), with a label under each."""
    import numpy as np

    if not panels:
        raise ValueError("crops_figure needs at least one panel")
    h0, w0 = panels[0][1].shape[:2]
    if box is None:
        side = min(96, h0, w0)
        box = ((w0 - side) // 2, (h0 - side) // 2, side, side)
    x, y, w, h = box
    pad, label_h = 8, 44  # two lines: long curve labels wrap to the panel's width
    top = 30 if title else 0
    fig = Image.new("RGB", (len(panels) * (w * zoom + pad) + pad, h * zoom + label_h + 2 * pad + top), "white")
    draw = ImageDraw.Draw(fig)
    font = _font(14)
    if title:
        draw.text((pad, 8), title, fill="black", font=font)
    for i, (label, rgb) in enumerate(panels):
        if rgb.shape[:2] != (h0, w0):
            raise ValueError(f"panel {label!r} is {rgb.shape[1]}x{rgb.shape[0]}, the first is {w0}x{h0}")
        crop = Image.fromarray(np.ascontiguousarray(rgb[y : y + h, x : x + w])).resize(
            (w * zoom, h * zoom), Image.Resampling.NEAREST)
        left = pad + i * (w * zoom + pad)
        fig.paste(crop, (left, top + pad))
        draw.multiline_text((left, top + pad + h * zoom + 6), _wrap(draw, label, font, w * zoom),
                            fill="black", font=font, spacing=2)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.save(out, format="PNG")
    return out
