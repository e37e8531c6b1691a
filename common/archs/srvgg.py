"""``srvgg``: the default generator, a compact SRVGG-style conv stack (Real-ESRGAN's SRVGGNetCompact
idea) working at ``1/unshuffle`` resolution, with no normalisation layers.

    x (N,3,h,w) ─ pixel_unshuffle(u) ─▶ (N,3u²,h/u,w/u)
      conv3x3 → PReLU, then [conv3x3 → PReLU] × blocks     (channels wide)
      conv3x3 (initialised ×0.1) ─▶ (N,3(us)²,h/u,w/u) ─ pixel_shuffle(us) ─▶ residual (N,3,sh,sw)

``channels`` is the width C, ``blocks`` the number of hidden convs B. With ``qcond=1`` each hidden
layer is modulated per channel by the payload quality q before its PReLU:
h ← h·(1 + t·scale_l) + t·shift_l, t = (q − 50)/50 (pointwise, so tiling stays exact).
MAC per output pixel ≈ 9·(3u²·C + B·C² + C·3(us)²) / (us)².
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..generator import Generator, GeneratorConfig, register, small_init_


@register("srvgg")
class CompactGenerator(Generator):
    unshuffles = (2, 1, 4)
    supports_qcond = True
    defaults = {1: {"channels": 48, "blocks": 4, "unshuffle": 2},
                2: {"channels": 48, "blocks": 4, "unshuffle": 1},
                4: {"channels": 48, "blocks": 4, "unshuffle": 1}}

    def __init__(self, cfg: GeneratorConfig, *, train_form: bool = False) -> None:
        super().__init__(cfg, train_form=train_form)
        u, s = cfg.unshuffle, cfg.scale
        cin, cout = 3 * u * u, 3 * (u * s) ** 2
        layers: list[nn.Module] = [nn.Conv2d(cin, cfg.channels, 3, padding=1), nn.PReLU(cfg.channels)]
        for _ in range(cfg.blocks):
            layers += [nn.Conv2d(cfg.channels, cfg.channels, 3, padding=1), nn.PReLU(cfg.channels)]
        tail = small_init_(nn.Conv2d(cfg.channels, cout, 3, padding=1))
        layers.append(tail)
        self.body = nn.Sequential(*layers)
        if cfg.qcond:
            self.qscale = nn.Parameter(torch.zeros(cfg.blocks + 1, cfg.channels))
            self.qshift = nn.Parameter(torch.zeros(cfg.blocks + 1, cfg.channels))

    def _run(self, h: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor:
        if not self.cfg.qcond:
            return self.body(h)
        if q is None:
            raise ValueError("this generator is quality-conditioned: pass q, the payload JPEG quality")
        t = ((q.to(h.dtype, copy=False) - 50.0) / 50.0).view(-1, 1, 1, 1)
        layers = list(self.body)
        for i in range(self.cfg.blocks + 1):
            h = layers[2 * i](h)
            h = h * (1 + t * self.qscale[i].view(1, -1, 1, 1)) + t * self.qshift[i].view(1, -1, 1, 1)
            h = layers[2 * i + 1](h)
        return layers[-1](h)

    def residual(self, x: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor:
        u, s = self.cfg.unshuffle, self.cfg.scale
        h = F.pixel_unshuffle(x, u) if u > 1 else x
        r = self._run(h, q)
        return F.pixel_shuffle(r, u * s) if u * s > 1 else r

    @property
    def multiple(self) -> int:
        return self.cfg.unshuffle

    @property
    def receptive_radius(self) -> int:
        u = self.cfg.unshuffle
        # (blocks + 2) 3x3 convs at 1/u resolution, the unshuffle cell, and bicubic's 2-pixel support.
        return (self.cfg.blocks + 2) * u + u + (2 if self.cfg.scale > 1 else 0)
