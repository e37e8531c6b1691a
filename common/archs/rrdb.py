"""``rrdb``: ESRGAN's RRDB network (Wang et al., 2018), predicting a residual over the bicubic
upsample. No batch norm; it works at input resolution and upsamples by nearest neighbour + conv::

    x (N,3,h,w)
      conv3x3 (3→C) ───────────────────────────────┐ h0
      RRDB × B                                     │
      conv3x3 (C→C), + h0 ◀────────────────────────┘ long skip
      [nearest ×2 → conv3x3 (C→C) → LReLU] × log2(s)   (none for restore)
      conv3x3 (C→C) → LReLU                            HR conv
      conv3x3 (C→3) (initialised ×0.1) ─▶ residual (N,3,sh,sw)

    RRDB(x) = x + 0.2·RDB(RDB(RDB(x)))
    RDB(x)  = x + 0.2·x5, x_k = LReLU(conv3x3([x, x1, …, x_{k-1}]))  (k = 1..4, growth gc → gc),
              x5 = conv3x3([x, x1, …, x4]) (C + 4·gc → C)

``channels`` is C (paper: 64), ``blocks`` the number of RRDBs B (paper: 23); the growth is
gc = max(C/2, 8) (paper: 32). LReLU slope 0.2. As in ESRGAN the dense-block convs start scaled
×0.1. MAC per output pixel = (27·C + B·27·(C² + 8·C·gc + 6·gc²) + 9·C²
+ Σ_{k=1..log2 s} 4^k·9·C² + s²·(9·C² + 27·C)) / s². Defaults C=32, B=1 (gc=16): 200,259 / 209,507 /
218,755 parameters and 199,872 / 66,744 / 33,462 MAC per output pixel at s = 1 / 2 / 4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..generator import Generator, GeneratorConfig, register, small_init_


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


class _RDB(nn.Module):
    """Residual dense block: five 3x3 convs, each seeing the input and every earlier output."""

    def __init__(self, c: int, gc: int) -> None:
        super().__init__()
        convs = [nn.Conv2d(c + k * gc, gc if k < 4 else c, 3, padding=1) for k in range(5)]
        for conv in convs:
            small_init_(conv)
        self.convs = nn.ModuleList(convs)
        self.act = _lrelu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in self.convs[:4]:
            feats.append(self.act(conv(torch.cat(feats, 1))))
        return x + 0.2 * self.convs[4](torch.cat(feats, 1))


class _RRDB(nn.Module):
    def __init__(self, c: int, gc: int) -> None:
        super().__init__()
        self.rdbs = nn.Sequential(_RDB(c, gc), _RDB(c, gc), _RDB(c, gc))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.rdbs(x)


class _Upsample(nn.Module):
    """Nearest-neighbour ×2, conv3x3, LReLU."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.act = _lrelu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(F.interpolate(x, scale_factor=2, mode="nearest")))


@register("rrdb")
class RRDBNet(Generator):
    channel_range = (8, 128)
    block_range = (1, 8)
    defaults = {s: {"channels": 32, "blocks": 1} for s in (1, 2, 4)}

    def __init__(self, cfg: GeneratorConfig, *, train_form: bool = False) -> None:
        super().__init__(cfg, train_form=train_form)
        c = cfg.channels
        gc = max(c // 2, 8)
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.body = nn.Sequential(*(_RRDB(c, gc) for _ in range(cfg.blocks)))
        self.trunk = nn.Conv2d(c, c, 3, padding=1)
        self.up = nn.Sequential(*(_Upsample(c) for _ in range(self.upsample_stages)))
        self.hr = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), _lrelu())
        self.tail = small_init_(nn.Conv2d(c, 3, 3, padding=1))

    def residual(self, x: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor:
        h = self.head(x)
        h = h + self.trunk(self.body(h))
        return self.tail(self.hr(self.up(h)))

    @property
    def receptive_radius(self) -> int:
        # Walk back from the output: tail and HR conv (2 pixels at output resolution); each stage's
        # conv adds 1 and its nearest-neighbour ×2 halves the radius (rounding up); then, at input
        # resolution, the trunk (1), 15 convs per RRDB and the head (1). This is ≥ 2, so it also
        # covers the bicubic upsample beside the net.
        r = 2
        for _ in range(self.upsample_stages):
            r = -(-(r + 1) // 2)
        return r + 1 + 15 * self.cfg.blocks + 1
