"""``fsrcnn``: FSRCNN (Dong et al., 2016), an hourglass conv net at input resolution ending in a
learned transposed-convolution upsample; here it predicts the residual over the bicubic upsample.

    x (N,3,h,w)
      conv5x5 (3→d) → PReLU                   feature extraction
      conv1x1 (d→12) → PReLU                  shrinking
      [conv3x3 (12→12) → PReLU] × m           mapping
      conv1x1 (12→d) → PReLU                  expanding
      deconv9x9 stride s (d→3) (initialised ×0.1) ─▶ residual (N,3,sh,sw)

``channels`` is d (paper: 56), ``blocks`` is m (paper: 4); the shrunk width is the paper's fixed
12. The transposed convolution uses padding p = 4 − ⌊(s−1)/2⌋ and output padding 2p − 9 + s
(s=1: 4/0, s=2: 4/1, s=4: 3/1), so its output is exactly s·h × s·w and each input pixel's kernel
centre lands on (or half a pixel from) the centre of its s×s output cell. For ``scale=1`` it is a
plain stride-1 9x9 convolution.
MAC per output pixel = (75·d + 12·d + 1296·m + 12·d + 243·d) / s²  (= (342·d + 1296·m) / s²;
24,336 / 6,084 / 1,521 at d=56, m=4 for s = 1 / 2 / 4).
"""

from __future__ import annotations

import torch
from torch import nn

from ..generator import Generator, GeneratorConfig, register, small_init_

SHRINK = 12


def _deconv_padding(s: int) -> tuple[int, int]:
    """(padding, output_padding) making a 9x9 stride-``s`` transposed conv map h to exactly s·h."""
    p = 4 - (s - 1) // 2
    return p, 2 * p - 9 + s


@register("fsrcnn")
class FSRCNN(Generator):
    channel_range = (8, 128)
    block_range = (0, 8)
    defaults = {s: {"channels": 56, "blocks": 4} for s in (1, 2, 4)}

    def __init__(self, cfg: GeneratorConfig, *, train_form: bool = False) -> None:
        super().__init__(cfg, train_form=train_form)
        d = cfg.channels
        layers: list[nn.Module] = [nn.Conv2d(3, d, 5, padding=2), nn.PReLU(d),
                                   nn.Conv2d(d, SHRINK, 1), nn.PReLU(SHRINK)]
        for _ in range(cfg.blocks):
            layers += [nn.Conv2d(SHRINK, SHRINK, 3, padding=1), nn.PReLU(SHRINK)]
        layers += [nn.Conv2d(SHRINK, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        p, op = _deconv_padding(cfg.scale)
        self.tail = small_init_(nn.ConvTranspose2d(d, 3, 9, stride=cfg.scale, padding=p, output_padding=op))

    def residual(self, x: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor:
        return self.tail(self.body(x))

    @property
    def receptive_radius(self) -> int:
        s = self.cfg.scale
        p, _ = _deconv_padding(s)
        # Output pixel o of the transposed conv reads input i = (o + p − t)/s for taps t in 0..8;
        # over the s outputs of input cell j that spans j − ⌊(8−p)/s⌋ .. j + ⌊(s−1+p)/s⌋.
        deconv = max((8 - p) // s, (s - 1 + p) // s)
        # 5x5, the 3x3 mapping layers, the deconv. The bicubic upsample runs beside the net (not
        # before it), so it only needs its own 2 pixels, which this already covers.
        return 2 + self.cfg.blocks + deconv
