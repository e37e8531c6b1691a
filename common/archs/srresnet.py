"""``srresnet``: SRResNet, the SRGAN generator (Ledig et al., 2017), predicting a residual over the
bicubic upsample. It works at input resolution and upsamples with sub-pixel convolutions::

    x (N,3,h,w)
      conv9x9 (3→C) → PReLU ─────────────────────────────┐ h0
      [conv3x3 → BN → PReLU → conv3x3 → BN, + skip] × B  │
      conv3x3 → BN, + h0 ◀───────────────────────────────┘ long skip
      [conv3x3 (C→4C) → pixel_shuffle(2) → PReLU] × log2(s)   (none for restore)
      conv9x9 (C→3) (initialised ×0.1) ─▶ residual (N,3,sh,sw)

``channels`` is the width C (paper: 64), ``blocks`` the number of residual blocks B (paper: 16).
Batch norm exists only in the training form (``train_form=True``, for base training), where the
convolutions before a BN have no bias. The deploy form — what bundles ship and receivers build —
has no BN modules: each of those convolutions carries a bias instead, and :meth:`deploy_state`
folds every BN (running statistics) into the convolution before it, so
``load_state_strict(build_generator(cfg), train_model.deploy_state())`` gives the same function
as the training model in ``eval()``.

MAC per output pixel = (243·C + B·18·C² + 9·C² + Σ_{k<log2 s} 4^k·36·C² + 243·C·s²) / s².
Shipped defaults are small enough to train on two CPU cores: C=32, B=4 at every scale (98,979 /
136,003 / 173,027 parameters and 98,496 / 39,672 / 24,966 MAC per output pixel at s = 1 / 2 / 4).
The thesis configuration (C=64, B=7, s=1) has 585,603 deploy-form parameters, i.e. 2,342,412 bytes
in float32, and 584,064 MAC per pixel (the thesis quotes 2,881,136 bytes for its SRResNet-7).
"""

from __future__ import annotations

import torch
from torch import nn

from ..generator import Generator, GeneratorConfig, register, small_init_


class _ConvBN(nn.Module):
    """conv3x3 followed by BN (training form) or a conv3x3 with bias (deploy form)."""

    def __init__(self, c: int, bn: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=not bn)
        self.bn = nn.BatchNorm2d(c) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.bn(x) if self.bn is not None else x

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the deploy-form conv equal to this conv (no bias) → BN in eval mode:
        w' = w·γ/√(var+ε), b' = β − mean·γ/√(var+ε) (computed in float64)."""
        bn = self.bn
        assert bn is not None and bn.running_mean is not None and bn.running_var is not None
        g = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        w = self.conv.weight.detach().double() * g.view(-1, 1, 1, 1)
        b = bn.bias.detach().double() - bn.running_mean.double() * g
        dtype = self.conv.weight.dtype
        return w.to(dtype), b.to(dtype)


class _ResBlock(nn.Module):
    def __init__(self, c: int, bn: bool) -> None:
        super().__init__()
        self.c1 = _ConvBN(c, bn)
        self.act = nn.PReLU(c)
        self.c2 = _ConvBN(c, bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c2(self.act(self.c1(x)))


@register("srresnet")
class SRResNet(Generator):
    channel_range = (8, 128)
    block_range = (1, 16)
    defaults = {s: {"channels": 32, "blocks": 4} for s in (1, 2, 4)}

    def __init__(self, cfg: GeneratorConfig, *, train_form: bool = False) -> None:
        super().__init__(cfg, train_form=train_form)
        c = cfg.channels
        self.head = nn.Sequential(nn.Conv2d(3, c, 9, padding=4), nn.PReLU(c))
        self.body = nn.Sequential(*(_ResBlock(c, train_form) for _ in range(cfg.blocks)))
        self.trunk = _ConvBN(c, train_form)
        up: list[nn.Module] = []
        for _ in range(self.upsample_stages):
            up += [nn.Conv2d(c, 4 * c, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(c)]
        self.up = nn.Sequential(*up)
        self.tail = small_init_(nn.Conv2d(c, 3, 9, padding=4))

    def residual(self, x: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor:
        h = self.head(x)
        h = h + self.trunk(self.body(h))
        return self.tail(self.up(h))

    def deploy_state(self) -> dict[str, torch.Tensor]:
        """The deploy-form state dict: in the training form each BN is folded into its conv."""
        state = dict(self.state_dict())
        if not self.train_form:
            return state
        for name, m in self.named_modules():
            if isinstance(m, _ConvBN):
                for k in [k for k in state if k.startswith(f"{name}.bn.")]:
                    del state[k]
                state[f"{name}.conv.weight"], state[f"{name}.conv.bias"] = m.folded()
        return state

    @property
    def receptive_radius(self) -> int:
        # Walk back from the output: the 9x9 tail (4 pixels at output resolution); each stage's
        # pixel shuffle halves a radius (rounding up) and its 3x3 conv adds 1; then, at input
        # resolution, the trunk conv (1), 2 convs per block and the 9x9 head (4). This is ≥ 2, so
        # it also covers the bicubic upsample beside the net.
        r = 4
        for _ in range(self.upsample_stages):
            r = -(-r // 2) + 1
        return r + 1 + 2 * self.cfg.blocks + 4
