"""Perceptual fine-tuning objective: a relativistic GAN, discriminator feature matching, optional VGG.

Used on the sender only. :class:`PerceptualObjective` is a callable ``objective(pred, target)``
that replaces the MSE of :func:`common.finetune.finetune`; it owns a :class:`Discriminator` and
its optimiser, which never enter the generator's state dict and never travel in a bundle.

Shapes: ``pred`` and ``target`` are (N,3,H,W), nominally in [0,1] (``pred`` may overshoot: the
generator output is unclamped); the discriminator maps (N,3,H,W) → logits C(x) of shape (N,),
any H, W ≥ 1 (global average pooling before the last layer).

Losses (ESRGAN's relativistic average GAN, σ the logistic function, BCE with logits, means over
the batch; ``C_r = C(target)``, ``C_f = C(pred)``)::

    D_Ra(a, b) = σ(C(a) − mean C(b))
    L_D   = BCE(C_r − mean C_f, 1) + BCE(C_f − mean C_r, 0)         (pred detached)
    L_adv = BCE(C_r − mean C_f, 0) + BCE(C_f − mean C_r, 1)         (D frozen, C_r constant)
    L_fm  = mean over D layers l of  mean |D_l(pred) − D_l(target)|  (target features detached)
    L_vgg = mean (φ(pred) − φ(target))²                              (φ: VGG19 features, frozen)
    L_G   = w_fid·mean |pred − target| + w_adv·L_adv + w_fm·L_fm [+ w_vgg·L_vgg]

Each call makes one discriminator step on ``(target, pred.detach())`` with ``L_D`` and then
returns ``L_G`` (differentiable w.r.t. ``pred`` only). Feature matching is the default
perceptual term because pretrained VGG weights cannot be downloaded here; :func:`load_vgg19`
reads them from a local ``.safetensors`` file when a user has one (pickles are refused).
The codec starts every perceptual fine-tune from the shipped critic of
:data:`PRETRAINED_DISCRIMINATOR` (:func:`load_discriminator`; trained by ``common.train_disc``).

:func:`interpolate_states` blends a fidelity-tuned and a perceptually-tuned state dict
(ESRGAN's network interpolation) to pick a point on the distortion/perception curve.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .errors import CodecError


class VGGWeightsError(CodecError):
    """A VGG19 weights file is missing, is a pickle, or does not match the network."""

    http_status = 422


# -- discriminator -------------------------------------------------------------------------------


class Discriminator(nn.Module):
    """SRGAN-style patch critic: one logit per image, for any input size.

    ``conv3x3(3→w) → LReLU``, then for ``c`` in ``w, 2w, 4w, 8w``:
    ``conv3x3(→c, stride 1) → LReLU → conv3x3(c→c, stride 2) → LReLU``; global average pooling and
    ``linear(8w → 1)``. Inputs in [0,1] are mapped to [−1,1] first. Nine feature maps (one after
    each activation) are available for feature matching; the last has stride 16.

    Every layer is spectrally normalised, with no batch norm: batch norm would couple the images
    of a (small, per-set) batch, so a patch's score and the relativistic means would depend on the
    other patches and on train/eval mode, while spectral norm bounds the critic's Lipschitz constant
    (steady gradients for the generator, no batch statistics) for one power iteration per layer and
    step. Keep the module in ``train()`` mode while updating it (the power iteration runs there).
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"discriminator width must be positive, got {width}")
        convs = [spectral_norm(nn.Conv2d(3, width, 3, padding=1))]
        cin = width
        for c in (width, 2 * width, 4 * width, 8 * width):
            convs.append(spectral_norm(nn.Conv2d(cin, c, 3, padding=1)))
            convs.append(spectral_norm(nn.Conv2d(c, c, 3, stride=2, padding=1)))
            cin = c
        self.convs = nn.ModuleList(convs)
        self.act = nn.LeakyReLU(0.2)
        self.head = spectral_norm(nn.Linear(cin, 1))

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """``x`` (N,3,H,W) in [0,1] → logits (N,), plus the feature maps if ``return_features``."""
        h = x * 2 - 1
        feats = []
        for conv in self.convs:
            h = self.act(conv(h))
            feats.append(h)
        logits = self.head(h.mean(dim=(2, 3))).squeeze(1)
        return (logits, feats) if return_features else logits


def ragan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Relativistic average discriminator loss: real should out-score the average fake, and back."""
    return (F.binary_cross_entropy_with_logits(real_logits - fake_logits.mean(), torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits - real_logits.mean(), torch.zeros_like(fake_logits)))


def ragan_g_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Relativistic average generator loss: the discriminator loss with the targets swapped."""
    return (F.binary_cross_entropy_with_logits(real_logits - fake_logits.mean(), torch.zeros_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits - real_logits.mean(), torch.ones_like(fake_logits)))


def feature_matching_loss(fake: Sequence[torch.Tensor], real: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of the L1 distance between paired feature maps (real ones detached)."""
    if len(fake) != len(real) or not fake:
        raise ValueError(f"need the same, non-zero number of feature maps, got {len(fake)} and {len(real)}")
    return torch.stack([F.l1_loss(f, r.detach()) for f, r in zip(fake, real, strict=True)]).mean()


# The shipped sender-only critic, pretrained against the restore base's outputs
# (python -m common.train_disc); with it the adversarial term is weighted PRETRAINED_ADV_WEIGHT:
# at 6 CBSD68 images, q20, it gave more grain than a critic from scratch at 5e-3 and 0.15 dB more
# PSNR, where 5e-3 with it gave streaks and 0.54 dB less (README, perceptual section).
PRETRAINED_DISCRIMINATOR = Path(__file__).parent / "weights" / "discriminator" / "disc16-v1.safetensors"
PRETRAINED_ADV_WEIGHT = 1.5e-3


class DiscriminatorWeightsError(CodecError):
    """The shipped discriminator file is missing or does not match the network (a sender-side fault)."""

    http_status = 500


def load_discriminator(path: str | Path = PRETRAINED_DISCRIMINATOR) -> Discriminator:
    """A :class:`Discriminator` rebuilt from a ``.safetensors`` state dict alone: the width is read
    from the first convolution's shape, then every key and shape is loaded strictly."""
    path = Path(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise DiscriminatorWeightsError(f"cannot read discriminator weights {path.name}: {e}") from None
    first = state.get("convs.0.parametrizations.weight.original")
    if first is None or first.dim() != 4:
        raise DiscriminatorWeightsError(f"{path.name} is not a discriminator state dict (no first convolution)")
    disc = Discriminator(int(first.shape[0]))
    try:
        disc.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise DiscriminatorWeightsError(f"discriminator weights {path.name} do not match the network: "
                                        f"{str(e)[:300]}") from None
    return disc


# -- VGG19 features ------------------------------------------------------------------------------

# torchvision's vgg19 ``features`` layout ("E"): numbers are conv widths, "M" a 2x2 max-pool.
_VGG19_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                     512, 512, 512, 512, "M", 512, 512, 512, 512)
# Index in ``features`` of each supported layer's convolution (the stack is cut right after it).
VGG_LAYERS: dict[str, int] = {"conv2_2": 7, "conv3_4": 16, "conv4_4": 25, "conv5_4": 34}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGFeatures(nn.Module):
    """VGG19 ``features`` up to ``layer``'s convolution, before its ReLU (ESRGAN's choice).

    ``layer`` is one of :data:`VGG_LAYERS`; the default ``conv5_4`` is SRGAN's "VGG54". Input (N,3,H,W)
    in [0,1], normalised with the ImageNet mean/std inside; output (N,C,H/2^k,W/2^k) with C = 128,
    256, 512, 512 and k = 1, 2, 3, 4 for conv2_2, conv3_4, conv4_4, conv5_4. Parameter names match
    torchvision's (``features.0.weight``, …); parameters are frozen and the module is in eval mode.
    Random weights unless loaded (see :func:`load_vgg19`).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, layer: str = "conv5_4") -> None:
        super().__init__()
        if layer not in VGG_LAYERS:
            raise ValueError(f"unknown VGG layer {layer!r}; choose one of {', '.join(VGG_LAYERS)}")
        self.layer = layer
        last = VGG_LAYERS[layer]
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                assert isinstance(v, int)
                layers.append(nn.Conv2d(cin, v, 3, padding=1))
                if len(layers) > last:
                    break
                layers.append(nn.ReLU(inplace=True))
                cin = v
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)


def load_vgg19(path: str | Path, layer: str = "conv5_4") -> VGGFeatures:
    """:class:`VGGFeatures` with weights from a ``.safetensors`` file using torchvision's key names.

    Only ``features.<i>.weight``/``.bias`` up to ``layer`` are read (other keys, e.g.
    ``classifier.*`` or deeper layers, are ignored and may be absent). Pickled checkpoints
    (``torch.save`` zip archives, raw pickles, ``.pth``/``.pt``) are refused by content, without
    ever being unpickled; so are files safetensors cannot parse, missing keys, wrong shapes and
    non-finite values: all raise :class:`VGGWeightsError`. To convert torchvision's weights on a
    machine that has torchvision::

        import torchvision; from safetensors.torch import save_file
        sd = torchvision.models.vgg19(weights="IMAGENET1K_V1").state_dict()
        save_file({k: v.contiguous() for k, v in sd.items() if k.startswith("features.")}, "vgg19.safetensors")
    """
    path = Path(path)
    model = VGGFeatures(layer)
    if not path.is_file():
        raise VGGWeightsError(f"VGG19 weights file {str(path)!r} does not exist or is not a file")
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as e:
        raise VGGWeightsError(f"cannot read VGG19 weights file {path.name}: {e}") from None
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        kind = "a torch.save zip archive" if head.startswith(b"PK") else "a pickle"
        raise VGGWeightsError(
            f"VGG19 weights file {path.name} is {kind}; pickles (.pth/.pt) are refused because loading "
            "one can run arbitrary code: convert it to .safetensors (see load_vgg19's docstring)")
    expected = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
            for k, want in expected.items():
                if k not in keys:
                    raise VGGWeightsError(f"VGG19 weights file {path.name} lacks {k} (needed up to {layer})")
                found = tuple(f.get_slice(k).get_shape())
                if found != tuple(want.shape):
                    raise VGGWeightsError(f"VGG19 weight {k} has shape {found}, expected {tuple(want.shape)}")
                state[k] = f.get_tensor(k)
    except (SafetensorError, OSError) as e:
        raise VGGWeightsError(
            f"cannot parse VGG19 weights file {path.name} as safetensors ({e}); only .safetensors files "
            "are accepted, pickles (.pth/.pt) are refused") from None
    for k, v in state.items():
        if not v.is_floating_point():
            raise VGGWeightsError(f"VGG19 weight {k} has dtype {v.dtype}, expected a floating-point type")
        if not torch.isfinite(v).all():
            raise VGGWeightsError(f"VGG19 weight {k} holds NaN or infinite values")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model


# -- the objective -------------------------------------------------------------------------------


@contextlib.contextmanager
def _trainable(module: nn.Module) -> Iterator[None]:
    """Unfreeze ``module`` (train mode, gradients on) for the block; frozen and eval afterwards."""
    module.train().requires_grad_(True)
    try:
        yield
    finally:
        module.eval().requires_grad_(False)


class PerceptualObjective:
    """``objective(pred, target) -> loss``: one discriminator step, then the generator loss ``L_G``.

    Defaults follow ESRGAN's balance (adversarial weight 5e-3 against an L1 fidelity of weight 1,
    Adam with betas (0.9, 0.99) for the discriminator), with discriminator feature matching (weight 1)
    as the perceptual term unless a :class:`VGGFeatures` is given (``vgg_weight`` then scales its
    MSE). ``seed`` fixes the discriminator's initialisation without touching the global RNG; pass
    ``discriminator`` to reuse one (e.g. warmed up on an earlier set). The discriminator stays
    frozen between calls, so the caller's ``loss.backward()`` reaches only the generator.

    :attr:`last` holds the latest component values as floats, keys ``d``, ``adv``, ``fm``, ``l1``
    (and ``vgg`` when used); they are kept as tensors and converted on access, so an objective
    that is not logged adds no device synchronisation.
    """

    def __init__(
        self,
        device: torch.device | str,
        *,
        vgg: VGGFeatures | None = None,
        fidelity_weight: float = 1.0,
        fm_weight: float = 1.0,
        adv_weight: float = 5e-3,
        vgg_weight: float = 1.0,
        d_lr: float = 1e-4,
        seed: int = 0,
        discriminator: Discriminator | None = None,
    ) -> None:
        self.device = torch.device(device)
        if discriminator is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                discriminator = Discriminator()
        self.discriminator = discriminator.to(self.device).eval().requires_grad_(False)
        self.vgg = vgg.to(self.device).eval().requires_grad_(False) if vgg is not None else None
        self.fidelity_weight = fidelity_weight
        self.fm_weight = fm_weight
        self.adv_weight = adv_weight
        self.vgg_weight = vgg_weight
        self.d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=d_lr, betas=(0.9, 0.99))
        self._last: dict[str, torch.Tensor] = {}

    @property
    def last(self) -> dict[str, float]:
        return {k: float(v) for k, v in self._last.items()}

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] != 3:
            raise ValueError(f"pred and target must both be (N,3,H,W), got {tuple(pred.shape)} "
                             f"and {tuple(target.shape)}")
        n = pred.shape[0]
        d = self.discriminator
        target = target.detach()
        with _trainable(d):
            logits = d(torch.cat([target, pred.detach()]))
            d_loss = ragan_d_loss(logits[:n], logits[n:])
            self.d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            self.d_opt.step()
            self.d_opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            real_logits, real_feats = d(target, return_features=True)
        fake_logits, fake_feats = d(pred, return_features=True)
        adv = ragan_g_loss(real_logits, fake_logits)
        fm = feature_matching_loss(fake_feats, real_feats)
        l1 = F.l1_loss(pred, target)
        loss = self.fidelity_weight * l1 + self.adv_weight * adv + self.fm_weight * fm
        last = {"d": d_loss, "adv": adv, "fm": fm, "l1": l1}
        if self.vgg is not None:
            with torch.no_grad():
                phi_target = self.vgg(target)
            vgg = F.mse_loss(self.vgg(pred), phi_target)
            loss = loss + self.vgg_weight * vgg
            last["vgg"] = vgg
        self._last = {k: v.detach() for k, v in last.items()}
        return loss


# -- network interpolation -----------------------------------------------------------------------


def interpolate_states(
    fidelity: Mapping[str, torch.Tensor], perceptual: Mapping[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """ESRGAN network interpolation θ = (1−α)·θ_fid + α·θ_perc, per tensor.

    Both dicts need the same keys and shapes; α in [0,1] (0 gives ``fidelity``, 1 ``perceptual``,
    exactly). The result has ``fidelity``'s dtypes and devices. Non-floating tensors (counters such
    as batch norm's ``num_batches_tracked``) cannot be blended and come from the nearer end.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"interpolation alpha must be in [0,1], got {alpha!r}")
    if set(fidelity) != set(perceptual):
        only_f = sorted(set(fidelity) - set(perceptual))
        only_p = sorted(set(perceptual) - set(fidelity))
        raise ValueError(f"state dicts differ in keys: only in fidelity {only_f}, only in perceptual {only_p}")
    out = {}
    for k, a in fidelity.items():
        b = perceptual[k]
        if a.shape != b.shape:
            raise ValueError(f"tensor {k} has shape {tuple(a.shape)} in fidelity, {tuple(b.shape)} in perceptual")
        b = b.to(device=a.device, dtype=a.dtype)
        if a.is_floating_point():
            out[k] = (1.0 - alpha) * a + alpha * b
        else:
            out[k] = (a if alpha < 0.5 else b).clone()
    return out
