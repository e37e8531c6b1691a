"""Per-image measurements the encoder's decisions rest on.

:class:`SetImage` caches JPEG encodes of one image; :func:`min_quality` finds the lowest payload
quality whose reconstruction reaches a target PSNR; :func:`jpeg_slope` measures how many bytes a
dB costs with plain JPEG around a quality (the price an update must beat).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from .generator import Generator
from .imageio import downsample, jpeg_decode, jpeg_encode, pad_to_multiple
from .infer import restore
from .metrics import psnr


class SetImage:
    """One outgoing image with cached payload encodes ``(q, s) -> (jpeg bytes, decoded uint8)``.

    ``s`` is the downsampling factor of the payload (1: full size; 2, 4: super-resolution modes).
    """

    def __init__(self, name: str, rgb: np.ndarray) -> None:
        self.name = name
        self.rgb = rgb
        self._small: dict[int, np.ndarray] = {1: rgb}
        self._payload: dict[tuple[int, int], tuple[bytes, np.ndarray]] = {}
        self._scores: dict[tuple[int, int], float] = {}

    @property
    def pixels(self) -> int:
        return int(self.rgb.shape[0] * self.rgb.shape[1])

    def small(self, s: int) -> np.ndarray:
        """The antialiased downsample the sender encodes for scale ``s``."""
        if s not in self._small:
            self._small[s] = downsample(self.rgb, s)
        return self._small[s]

    def target(self, s: int) -> np.ndarray:
        """The original padded to a multiple of ``s``: what a scale-``s`` generator should output."""
        return pad_to_multiple(self.rgb, s)

    def payload(self, q: int, s: int = 1) -> tuple[bytes, np.ndarray]:
        if (q, s) not in self._payload:
            data = jpeg_encode(self.small(s), q)
            self._payload[(q, s)] = (data, jpeg_decode(data))
        return self._payload[(q, s)]

    def reference(self, q: int) -> tuple[int, float]:
        """Bytes and PSNR of Pillow's default JPEG at ``q`` (the thing users compare against)."""
        data = jpeg_encode(self.rgb, q, optimize=False, progressive=False)
        return len(data), psnr(jpeg_decode(data), self.rgb)

    def payload_psnr(self, q: int, s: int = 1) -> float:
        """PSNR of the payload as a plain viewer would show it (bicubic-enlarged when ``s`` > 1)."""
        if s == 1:
            return self.score(None, 0, q)
        h, w = self.rgb.shape[:2]
        small = Image.fromarray(self.payload(q, s)[1])
        big = np.asarray(small.resize((small.width * s, small.height * s), Image.Resampling.BICUBIC))
        return psnr(big[:h, :w], self.rgb)

    def score(self, model: Generator | None, tag: int, q: int) -> float:
        """PSNR at payload quality ``q`` of the full-size JPEG (model None) or of ``model``'s output
        from its payload (downsampled by the model's scale). ``tag`` names the model in the cache."""
        key = (tag, q)
        if key not in self._scores:
            s = 1 if model is None else model.scale
            dec = self.payload(q, s)[1]
            h, w = self.rgb.shape[:2]
            out = dec if model is None else restore(model, dec, q=q)[:h, :w]
            self._scores[key] = psnr(out, self.rgb)
        return self._scores[key]


def min_quality(
    ok: Callable[[int], bool], qmax: int, guess: int | None = None, qmin: int = 1
) -> int | None:
    """Smallest q in ``qmin..qmax`` with ``ok(q)``, assuming ``ok`` is monotone; None if not even qmax.

    Every returned q has been checked with ``ok``, so the guarantee holds even where the
    monotone assumption does not.
    """
    if not ok(qmax):
        return None
    hi = qmax
    lo = qmin - 1  # known failing (virtual)
    g = min(max(guess if guess is not None else qmax - 10, qmin), qmax)
    stride = 4
    while g < hi:
        if ok(g):
            hi = g
            g = max(qmin, g - stride)
            stride *= 2
            if hi == qmin:
                return qmin
        else:
            lo = g
            break
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def jpeg_slope(images: list[SetImage], qs: list[int]) -> float:
    """Bytes per dB of mean PSNR for the payload JPEG, measured between qualities ``q`` and ``q+6``.

    ``qs`` are the per-image qualities in use. The figure prices a dB: an update earns its bytes
    only when it gains more dB than the same bytes would buy as JPEG quality.
    """
    b0 = b1 = 0
    p0 = p1 = 0.0
    for im, q in zip(images, qs, strict=True):
        q1 = min(q + 6, 100)
        q0 = q1 - 6
        b0 += len(im.payload(q0)[0])
        b1 += len(im.payload(q1)[0])
        p0 += psnr(im.payload(q0)[1], im.rgb)
        p1 += psnr(im.payload(q1)[1], im.rgb)
    d_db = (p1 - p0) / len(images)
    return max(b1 - b0, 1) / max(d_db, 1e-3)
