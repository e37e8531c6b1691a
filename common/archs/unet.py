"""``unet``: a U-Net ("SR-NET") working at output resolution on the bicubic upsample of the payload
(the payload itself for ``scale=1``), predicting the residual over it. With L = ``blocks`` levels
and widths c_i = min(C·2^i, 128), C = ``channels``::

    x (N,3,h,w) ─ up_s ─▶ u (N,3,H,W),  H = s·h, W = s·w  (H, W multiples of 2^L after padding)
      level i = 0..L-1 (resolution H/2^i):
        e_i = ReLU(conv3x3(·))  (→ c_i)                              kept as skip i
        ReLU(conv3x3 stride 2 (c_i → c_{i+1}))  ─▶ level i+1
      bottleneck (H/2^L): ReLU(conv3x3 (c_L → c_L))
      level i = L-1..0:
        deconv2x2 stride 2 (c_{i+1} → c_i), concat e_i, ReLU(conv3x3 (2c_i → c_i))
      conv3x3 (c_0 → 3) (initialised ×0.1) ─▶ residual (N,3,H,W)

MAC per output pixel = Σ_{i<L} 4^-i·(9·a_i·c_i + 9·c_i·c_{i+1}/4 + 18·c_i² + c_{i+1}·c_i)
+ 4^-L·9·c_L² + 27·c_0, with a_0 = 3, a_i = c_i (independent of the scale). Defaults C=16, L=2
(widths 16/32/64): 103,571 parameters and 18,016 MAC per output pixel, sized like the other bases
(C=24, L=3 would be 705,691 parameters, most of them in the two coarsest levels).

Tiling: the strided convs tie the net to a grid of 2^L output pixels, i.e. 2^L/s input pixels, so
:attr:`multiple` is max(1, 2^L/s): the padded input maps to multiples of 2^L, and a tile cut at a
multiple of it sees the same grid as the whole image. Each layer at resolution 2^-i (3x3 conv,
stride-2 conv, 2x2 deconv) widens the reach of an output pixel by 2^i output pixels, so the
receptive radius is 5·2^L − 3 output pixels (2·(2^L−1) down, 2^L bottleneck, 2·(2^L−1) up, 1 for
the last conv), ⌈(5·2^L − 3)/s⌉ + 2 input pixels with the bicubic upsample in front.
"""

from __future__ import annotations

import torch
from torch import nn

from ..generator import Generator, GeneratorConfig, register, small_init_

MAX_WIDTH = 128


def _conv_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.ReLU(inplace=True))


@register("unet")
class UNet(Generator):
    channel_range = (4, 64)
    block_range = (1, 5)
    defaults = {s: {"channels": 16, "blocks": 2} for s in (1, 2, 4)}

    def __init__(self, cfg: GeneratorConfig, *, train_form: bool = False) -> None:
        super().__init__(cfg, train_form=train_form)
        levels = cfg.blocks
        w = [min(cfg.channels << i, MAX_WIDTH) for i in range(levels + 1)]
        self.enc = nn.ModuleList(_conv_relu(3 if i == 0 else w[i], w[i]) for i in range(levels))
        self.down = nn.ModuleList(_conv_relu(w[i], w[i + 1], stride=2) for i in range(levels))
        self.mid = _conv_relu(w[levels], w[levels])
        self.up = nn.ModuleList(nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) for i in range(levels))
        self.dec = nn.ModuleList(_conv_relu(2 * w[i], w[i]) for i in range(levels))
        self.tail = small_init_(nn.Conv2d(w[0], 3, 3, padding=1))

    def residual(self, x: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor:
        h = self.upsample(x)
        skips = []
        for enc, down in zip(self.enc, self.down, strict=True):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.mid(h)
        for i in reversed(range(self.cfg.blocks)):
            h = self.dec[i](torch.cat([self.up[i](h), skips[i]], 1))
        return self.tail(h)

    @property
    def multiple(self) -> int:
        return max(1, (1 << self.cfg.blocks) // self.cfg.scale)

    @property
    def receptive_radius(self) -> int:
        s, r = self.cfg.scale, 5 * (1 << self.cfg.blocks) - 3
        return r if s == 1 else -(-r // s) + 2
