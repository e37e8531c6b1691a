"""Generator architectures, described by an explicit config that travels in the bundle header.

The default ``srvgg`` generator is a compact SRVGG-style conv stack working at half resolution
(space-to-depth), predicting a residual over the decoded JPEG:

    x (N,3,H,W) float32 in [0,1]   (decoded JPEG; H, W any size, padded to a multiple of s)
      │ pixel_unshuffle(s)                       ─▶ (N, 3s², H/s, W/s)
      │ conv3x3 → PReLU                          ─▶ (N, C, H/s, W/s)
      │ [conv3x3 → PReLU] × B                    ─▶ (N, C, H/s, W/s)
      │ conv3x3 (initialised near zero)          ─▶ (N, 3s², H/s, W/s)
      │ pixel_shuffle(s)                         ─▶ (N, 3, H, W)  residual r
      └──────────────────────────────────────────▶ y = x + r   (N,3,H,W) float32, unclamped

With ``qcond=1`` the generator also takes the payload JPEG quality q (N,) in 1..100 and modulates
every hidden layer per channel, before its PReLU: h ← h·(1 + t·scale_l) + t·shift_l with
t = (q − 50)/50 (pointwise, so tiling stays exact). No batch norm, so fine-tuning on a handful of
images is well behaved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import BundleError, UnknownArchError

ARCHS = ("srvgg",)


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything needed to rebuild a generator; serialised into the bundle header."""

    arch: str = "srvgg"
    channels: int = 48
    blocks: int = 4
    unshuffle: int = 2
    scale: int = 1
    qcond: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise UnknownArchError(f"unknown generator arch {self.arch!r}; known: {', '.join(ARCHS)}")
        _check_range("channels", self.channels, 4, 128)
        _check_range("blocks", self.blocks, 0, 16)
        if self.unshuffle not in (1, 2, 4):
            raise BundleError(f"generator unshuffle {self.unshuffle!r} must be 1, 2 or 4")
        if self.qcond not in (0, 1):
            raise BundleError(f"generator qcond {self.qcond!r} must be 0 or 1")
        if self.scale != 1:
            raise BundleError(f"generator scale {self.scale!r} is not supported (only 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> GeneratorConfig:
        if not isinstance(d, dict):
            raise BundleError("generator config must be a JSON object")
        known = set(cls.__dataclass_fields__)
        extra = set(d) - known
        if extra:
            raise BundleError(f"generator config has unknown keys: {sorted(extra)}")
        arch = d.get("arch", "srvgg")
        if not isinstance(arch, str):
            raise BundleError("generator arch must be a string")
        ints = {}
        for k in known - {"arch"}:
            v = d.get(k, getattr(cls, k))
            if not isinstance(v, int) or isinstance(v, bool):
                raise BundleError(f"generator config {k} must be an integer, got {v!r}")
            ints[k] = v
        return cls(arch=arch, **ints)


def _check_range(name: str, v: int, lo: int, hi: int) -> None:
    if not lo <= v <= hi:
        raise BundleError(f"generator {name}={v} is outside {lo}..{hi}")


class CompactGenerator(nn.Module):
    """SRVGG-like restoration generator; see the module docstring for shapes."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        s2 = 3 * cfg.unshuffle**2
        layers: list[nn.Module] = [nn.Conv2d(s2, cfg.channels, 3, padding=1), nn.PReLU(cfg.channels)]
        for _ in range(cfg.blocks):
            layers += [nn.Conv2d(cfg.channels, cfg.channels, 3, padding=1), nn.PReLU(cfg.channels)]
        tail = nn.Conv2d(cfg.channels, s2, 3, padding=1)
        with torch.no_grad():
            tail.weight.mul_(0.1)
            if tail.bias is not None:
                nn.init.zeros_(tail.bias)
        layers.append(tail)
        self.body = nn.Sequential(*layers)
        if cfg.qcond:
            self.qscale = nn.Parameter(torch.zeros(cfg.blocks + 1, cfg.channels))
            self.qshift = nn.Parameter(torch.zeros(cfg.blocks + 1, cfg.channels))

    def _run_body(self, h: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor:
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

    def forward(self, x: torch.Tensor, q: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (N,3,H,W) in [0,1]; ``q`` (N,) payload JPEG qualities (needed when ``qcond``)."""
        s = self.cfg.unshuffle
        h, w = x.shape[-2:]
        ph, pw = (-h) % s, (-w) % s
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        r = self._run_body(F.pixel_unshuffle(xp, s) if s > 1 else xp, q)
        r = F.pixel_shuffle(r, s) if s > 1 else r
        return x + r[..., :h, :w]

    @property
    def receptive_radius(self) -> int:
        """Pixels of context each output pixel sees on each side (for tiling)."""
        return (self.cfg.blocks + 2) * self.cfg.unshuffle + self.cfg.unshuffle


def build_generator(cfg: GeneratorConfig) -> CompactGenerator:
    return CompactGenerator(cfg)


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load weights strictly: missing/unexpected keys, wrong shapes or non-finite values raise."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise BundleError(f"weights do not match the generator: missing {missing}, unexpected {unexpected}")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise BundleError(f"weight {k} has shape {tuple(v.shape)}, the config needs {tuple(own[k].shape)}")
        if not torch.isfinite(v).all():
            raise BundleError(f"weight {k} holds NaN or infinite values")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
