"""Generator architectures behind one interface, each rebuilt from a config carried in the bundle.

Every generator maps a decoded payload JPEG to a reconstruction ``scale`` times larger, as a
residual over a fixed upsample of its input (identity for ``scale=1``, bicubic otherwise)::

    x (N,3,h,w) float32 in [0,1]     decoded payload (any size; padded to ``multiple`` internally)
      ├─ residual() ────────────────▶ r (N,3,s·h,s·w)   learned residual
      └─ up_s(x) ───────────────────▶ y = up_s(x) + r   (N,3,s·h,s·w), unclamped

Architectures register themselves by name (``common/archs/<name>.py``, one file each) with
:func:`register`. :class:`GeneratorConfig` is the only thing a receiver needs to rebuild one; a
name it does not know is refused with :class:`~common.errors.UnknownArchError` (HTTP 422).
Configs are validated per architecture (each declares its allowed widths, depths, scales).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .errors import BundleError, UnknownArchError

_REGISTRY: dict[str, type[Generator]] = {}
SCALES = (1, 2, 4)


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything needed to rebuild a generator; serialised into the bundle header.

    ``channels`` and ``blocks`` are the width and depth knobs; what they mean is the
    architecture's (its file's docstring says). ``unshuffle`` is srvgg's space-to-depth factor
    (1 elsewhere), ``scale`` the upsampling factor (1: restore, 2: sr2, 4: sr4), ``qcond`` srvgg's
    JPEG-quality conditioning.
    """

    arch: str = "srvgg"
    channels: int = 48
    blocks: int = 4
    unshuffle: int = 2
    scale: int = 1
    qcond: int = 0

    def __post_init__(self) -> None:
        cls = arch_class(self.arch)
        _check_range("channels", self.channels, *cls.channel_range)
        _check_range("blocks", self.blocks, *cls.block_range)
        if self.scale not in cls.scales:
            raise BundleError(f"generator {self.arch} supports scale {'/'.join(map(str, cls.scales))}, "
                              f"not {self.scale!r}")
        if self.unshuffle not in cls.unshuffles:
            raise BundleError(f"generator {self.arch} unshuffle {self.unshuffle!r} must be one of "
                              f"{', '.join(map(str, cls.unshuffles))}")
        if self.qcond not in ((0, 1) if cls.supports_qcond else (0,)):
            raise BundleError(f"generator {self.arch} qcond {self.qcond!r} is not supported")

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
        for k in sorted(known - {"arch"}):
            v = d.get(k, getattr(cls, k))
            if not isinstance(v, int) or isinstance(v, bool):
                raise BundleError(f"generator config {k} must be an integer, got {v!r}")
            ints[k] = v
        return cls(arch=arch, **ints)


def _check_range(name: str, v: int, lo: int, hi: int) -> None:
    if not lo <= v <= hi:
        raise BundleError(f"generator {name}={v} is outside {lo}..{hi}")


class Generator(nn.Module):
    """Base class: padding, the fixed upsample and the residual; subclasses supply :meth:`residual`.

    Class attributes each architecture sets: ``channel_range``/``block_range`` (inclusive),
    ``scales``, ``unshuffles``, ``supports_qcond`` and ``defaults`` (per scale: the config
    fields ``default_config`` uses, e.g. ``{1: {"channels": 48, "blocks": 4}}``).
    """

    channel_range: ClassVar[tuple[int, int]] = (4, 128)
    block_range: ClassVar[tuple[int, int]] = (0, 16)
    scales: ClassVar[tuple[int, ...]] = SCALES
    unshuffles: ClassVar[tuple[int, ...]] = (1,)
    supports_qcond: ClassVar[bool] = False
    defaults: ClassVar[dict[int, dict[str, int]]] = {}

    def __init__(self, cfg: GeneratorConfig, *, train_form: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.train_form = train_form

    # -- what an architecture implements -------------------------------------------------------
    def residual(self, x: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor:
        """``x`` (N,3,h,w) with h, w multiples of :attr:`multiple` → residual (N,3,s·h,s·w)."""
        raise NotImplementedError

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this (padding is added and cropped away)."""
        return 1

    @property
    def receptive_radius(self) -> int:
        """Input pixels of context each output pixel depends on, per side (for exact tiling)."""
        raise NotImplementedError

    def deploy_state(self) -> dict[str, torch.Tensor]:
        """The state dict that ships (e.g. batch norm folded into convolutions)."""
        return self.state_dict()

    # -- shared ------------------------------------------------------------------------------------
    @property
    def scale(self) -> int:
        return self.cfg.scale

    @property
    def upsample_stages(self) -> int:
        """Number of x2 upsampling stages: log2(scale), i.e. 0, 1 or 2."""
        return self.cfg.scale.bit_length() - 1

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        s = self.cfg.scale
        return x if s == 1 else F.interpolate(x, scale_factor=s, mode="bicubic", align_corners=False)

    def forward(self, x: torch.Tensor, q: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (N,3,h,w) in [0,1]; ``q`` (N,) payload JPEG qualities (used when ``qcond``)."""
        m, s = self.multiple, self.cfg.scale
        h, w = x.shape[-2:]
        ph, pw = (-h) % m, (-w) % m
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        y = self.upsample(xp) + self.residual(xp, q)
        return y[..., : s * h, : s * w]


def small_init_(conv: nn.Module, gain: float = 0.1) -> nn.Module:
    """Scale a layer's weights by ``gain`` and zero its bias, in place: an untrained generator's
    residual starts near zero, so it starts close to the plain upsample. Returns the layer."""
    with torch.no_grad():
        conv.weight.mul_(gain)  # type: ignore[operator]
        if getattr(conv, "bias", None) is not None:
            nn.init.zeros_(conv.bias)  # type: ignore[arg-type]
    return conv


def register(name: str) -> Callable[[type[Generator]], type[Generator]]:
    def deco(cls: type[Generator]) -> type[Generator]:
        _REGISTRY[name] = cls
        return cls
    return deco


def archs() -> tuple[str, ...]:
    """Names of every registered architecture, default first."""
    return tuple(sorted(_REGISTRY, key=lambda n: (n != "srvgg", n)))


def arch_class(name: str) -> type[Generator]:
    if name not in _REGISTRY:
        raise UnknownArchError(f"unknown generator arch {name!r}; this side knows: {', '.join(archs())}")
    return _REGISTRY[name]


def default_config(arch: str = "srvgg", scale: int = 1, **overrides: int | None) -> GeneratorConfig:
    """The architecture's default config at ``scale`` (width/depth its base weights use)."""
    cls = arch_class(arch)
    fields: dict[str, Any] = {"unshuffle": cls.unshuffles[0], "qcond": 0, "scale": scale}
    fields.update(cls.defaults.get(scale, cls.defaults.get(1, {})))
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return GeneratorConfig(arch=arch, **fields)


def build_generator(cfg: GeneratorConfig, *, train_form: bool = False) -> Generator:
    """The generator for ``cfg``; ``train_form`` builds the training variant (e.g. with batch norm)."""
    return arch_class(cfg.arch)(cfg, train_form=train_form)


def macs_per_pixel(model: Generator, h: int = 64, w: int = 64) -> float:
    """Multiply-accumulates per *output* pixel of one forward pass on an ``h x w`` input, counted
    over convolutions, transposed convolutions and linear layers (the upsample is not counted)."""
    total = 0

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.ConvTranspose2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total += inp[0][0].numel() * (mod.out_channels // mod.groups) * k
        elif isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total += out[0].numel() * (mod.in_channels // mod.groups) * k
        elif isinstance(mod, nn.Linear):
            total += out[0].numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, h, w), torch.tensor([50.0]))
    finally:
        for hd in handles:
            hd.remove()
    return total / (h * w * model.scale**2)


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


# Register the architectures (each module calls ``register``); kept last to avoid a cycle.
from . import archs as _archs  # noqa: E402,F401
