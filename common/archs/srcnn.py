"""``srcnn``: SRCNN (Dong et al., 2014), the three-layer 9-1-5 network, here predicting a residual.

It works at output resolution, on the bicubic upsample of the payload (the payload itself for
``scale=1``); every convolution zero-pads "same", so the output is exactly s·h × s·w::

    x (N,3,h,w) ─ up_s ─▶ (N,3,sh,sw)
      conv9x9 (3→C) → ReLU                    patch extraction
      conv1x1 (C→C/2) → ReLU                  non-linear mapping
      [conv3x3 (C/2→C/2) → ReLU] × blocks     extra mapping layers (0: the classic 9-1-5)
      conv5x5 (C/2→3) (initialised ×0.1) ─▶ residual (N,3,sh,sw)

``channels`` is C (the paper's n1 = 64, n2 = C/2 = 32), ``blocks`` the number of extra 3x3
mapping layers. MAC per output pixel = 81·3·C + C·C/2 + blocks·9·(C/2)² + 25·(C/2)·3
(20,000 for the paper's 64/0), the same at every scale since it all runs at output resolution.
"""

from __future__ import annotations

import torch
from torch import nn

from ..generator import Generator, GeneratorConfig, register, small_init_


@register("srcnn")
class SRCNN(Generator):
    channel_range = (8, 128)
    block_range = (0, 8)
    defaults = {s: {"channels": 64, "blocks": 0} for s in (1, 2, 4)}

    def __init__(self, cfg: GeneratorConfig, *, train_form: bool = False) -> None:
        super().__init__(cfg, train_form=train_form)
        c, c2 = cfg.channels, cfg.channels // 2
        layers: list[nn.Module] = [nn.Conv2d(3, c, 9, padding=4), nn.ReLU(inplace=True),
                                   nn.Conv2d(c, c2, 1), nn.ReLU(inplace=True)]
        for _ in range(cfg.blocks):
            layers += [nn.Conv2d(c2, c2, 3, padding=1), nn.ReLU(inplace=True)]
        tail = small_init_(nn.Conv2d(c2, 3, 5, padding=2))
        layers.append(tail)
        self.body = nn.Sequential(*layers)

    def residual(self, x: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor:
        return self.body(self.upsample(x))

    @property
    def receptive_radius(self) -> int:
        # 4 (9x9) + blocks (3x3) + 2 (5x5) output pixels, seen through the bicubic's 2-pixel support.
        s, r = self.cfg.scale, 6 + self.cfg.blocks
        return r if s == 1 else -(-r // s) + 2
