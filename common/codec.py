"""The codec API: ``encode_images`` (sender) and ``decode_bundle`` / ``inspect_bundle`` (receiver).

    images ──▶ payload JPEGs (progressive, optimised) ──▶ plans: jpeg | base | delta | full
                                                            │ (fine-tune, the last 30 % through the
                                                            │  quantiser; quantise, code, re-measure)
                                                            ▼
                         cheapest plan that keeps its promise ──▶ Bundle ──▶ bytes

A plan fixes, per image, the payload quality ``q`` and whether the generator runs on it (``g``).
With ``match_jpeg=Q`` every image's reconstruction must reach the PSNR of Pillow's default JPEG at
``Q`` and the plan with the fewest total bytes wins. With a fixed ``quality`` the payload is the
same for every plan and an update wins only if its dB gain is worth more than its bytes spent on
JPEG quality instead (priced by :func:`common.search.jpeg_slope`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from .bundle import Bundle, BundleImage, BundleLimits, new_bundle_id, parse_bundle, write_bundle
from .errors import BundleError, CodecError, ImageError
from .generator import Generator, GeneratorConfig, arch_class, build_generator, load_state_strict
from .imageio import jpeg_decode, jpeg_size
from .infer import restore
from .planner import MODE_SCALE, Plan, make_plans
from .update import decode_update
from .weights import load_base

ProgressFn = Callable[[str, int, int], None]
UPDATES = ("auto", "none", "delta", "full")
ENCODE_MODES = ("jpeg", "restore", "sr2", "sr4", "auto")
OBJECTIVES = ("fidelity", "perceptual")


class OptionsError(CodecError):
    """Encode options out of range."""

    http_status = 422


@dataclass
class EncodeOptions:
    quality: int | None = None
    match_jpeg: int | None = 75
    mode: str = "auto"  # restore, sr2 or sr4, whichever pays for this set (see the planner)
    update: str = "auto"
    budget_seconds: float = 60.0
    max_steps: int | None = None
    seed: int = 0
    device: str = "auto"
    base: str | None = None  # default: the shipped base for the mode and arch (restore-v1, sr2-v1, ...)
    subset: str = "all"
    max_update_share: float = 0.05  # a delta may take at most this share of the bundle (1 = no cap)
    full_dtype: str = "f32"
    arch: str = "srvgg"
    channels: int | None = None  # width/depth overrides: a config with no base needs update="full"
    blocks: int | None = None
    objective: str = "fidelity"
    alpha: float = 1.0  # perceptual only: 0 = base generator, 1 = fully perceptual (ESRGAN interpolation)
    vgg_weights: str | None = None  # perceptual only: VGG19 safetensors for the SRGAN content loss

    def check(self) -> None:
        for name in ("quality", "match_jpeg"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and 1 <= v <= 100):
                raise OptionsError(f"{name}={v!r} must be an integer in 1..100")
        if self.quality is None and self.match_jpeg is None:
            self.match_jpeg = 75
        if self.mode not in ENCODE_MODES:
            raise OptionsError(f"mode={self.mode!r} must be one of {', '.join(ENCODE_MODES)}")
        if self.update not in UPDATES:
            raise OptionsError(f"update={self.update!r} must be one of {', '.join(UPDATES)}")
        if not 0 <= self.budget_seconds <= 3600:
            raise OptionsError(f"budget_seconds={self.budget_seconds!r} must be in 0..3600")
        if self.max_steps is not None and not 0 <= self.max_steps <= 1_000_000:
            raise OptionsError(f"max_steps={self.max_steps!r} must be in 0..1000000")
        if not 0.0 < self.max_update_share <= 1.0:
            raise OptionsError(f"max_update_share={self.max_update_share!r} must be in (0, 1]")
        if self.full_dtype not in ("f32", "f16"):
            raise OptionsError(f"full_dtype={self.full_dtype!r} must be 'f32' or 'f16'")
        arch_class(self.arch)  # UnknownArchError (422) names the known ones
        if self.objective not in OBJECTIVES:
            raise OptionsError(f"objective={self.objective!r} must be one of {', '.join(OBJECTIVES)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise OptionsError(f"alpha={self.alpha!r} must be in 0..1")
        if self.vgg_weights is not None and self.objective != "perceptual":
            raise OptionsError("vgg_weights only applies to objective='perceptual'")


@dataclass
class EncodeResult:
    bundle: bytes
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class DecodedBundle:
    bundle: Bundle
    images: list[np.ndarray]


def _check_inputs(images: Sequence[tuple[str, np.ndarray]]) -> None:
    if not images:
        raise OptionsError("no images to encode")
    names = [n for n, _ in images]
    if len(set(names)) != len(names):
        raise OptionsError("image names must be unique")
    for n, rgb in images:
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise OptionsError(f"image {n!r} must be (H,W,3) uint8, got {rgb.dtype} {rgb.shape}")


def encode_images(
    images: Sequence[tuple[str, np.ndarray]], opts: EncodeOptions, progress: ProgressFn | None = None
) -> EncodeResult:
    """Encode one image set into a bundle; see the module docstring for the decision."""
    t0 = time.monotonic()
    opts.check()
    _check_inputs(images)
    result = make_plans(images, opts, progress)
    plan = result.chosen
    bundle = _bundle_from(plan, result.config, result.base_sha)
    data = write_bundle(bundle)
    summary = _summary(bundle, plan, result, len(data), time.monotonic() - t0)
    return EncodeResult(bundle=data, summary=summary)


def _bundle_from(plan: Plan, cfg: GeneratorConfig | None, base_sha: str | None) -> Bundle:
    uses_gen = any(plan.gs) and cfg is not None
    imgs = []
    for i, im in enumerate(plan.images):
        # Kept short: every header byte counts in the rate. The rest is in the sender's summary.
        info: dict[str, Any] = {"q": plan.qs[i], "g": int(plan.gs[i]), "pr": round(plan.psnrs[i], 3)}
        h, w = im.rgb.shape[:2]
        imgs.append(BundleImage(name=im.name, width=w, height=h, jpeg=plan.payload(i), info=info))
    kind = plan.update_header.get("kind", "none") if uses_gen else "none"
    return Bundle(
        bundle_id=new_bundle_id(),
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        mode=plan.mode if uses_gen else "jpeg",
        generator=cfg.to_dict() if uses_gen and cfg is not None else None,
        base_sha256=base_sha if uses_gen and kind != "full" else None,
        update=plan.update_header if uses_gen else {"kind": "none"},
        update_bytes=plan.update_bytes if uses_gen else b"",
        images=imgs,
        metrics={"psnr": round(float(np.mean(plan.psnrs)), 4)},
        decision={"plan": plan.kind},
    )


def _summary(b: Bundle, plan: Plan, result: Any, total: int, seconds: float) -> dict[str, Any]:
    jpeg_bytes = sum(len(i.jpeg) for i in b.images)
    pixels = sum(i.width * i.height for i in b.images)
    rows = []
    for i, im in enumerate(b.images):
        rows.append({"name": im.name, "width": im.width, "height": im.height, "quality": plan.qs[i],
                     "generator": bool(plan.gs[i]), "jpeg_bytes": len(im.jpeg),
                     "ref_jpeg_bytes": plan.ref_bytes[i], "psnr_ref": plan.targets[i],
                     "psnr_payload": plan.psnr_payload[i], "psnr": plan.psnrs[i]})
    ref_total = sum(plan.ref_bytes)
    return {
        "bundle_id": b.bundle_id,
        "mode": b.mode,
        "decision": result.decision,
        "bytes": {"jpeg": jpeg_bytes, "update": len(b.update_bytes), "header": b.header_bytes,
                  "total": total},
        "bpp": 8 * total / pixels,
        "pixels": pixels,
        "psnr_jpeg_ref": float(np.mean(plan.targets)),
        "psnr_payload": float(np.mean(plan.psnr_payload)),
        "psnr_recon": float(np.mean(plan.psnrs)),
        "ref_jpeg_bytes": ref_total,
        "ref_quality": result.ref_quality,
        "saving": 1 - total / ref_total if ref_total else 0.0,
        "seconds": {"finetune": result.finetune_seconds, "total": seconds},
        "images": rows,
    }


def _model_for(b: Bundle) -> Generator | None:
    """Build the generator a bundle asks for (base + update), validating everything."""
    uses_gen = any(int(i.info.get("g", 0)) for i in b.images)
    if b.generator is None:
        if uses_gen or b.update.get("kind") != "none":
            raise BundleError("bundle asks for the generator but carries no generator config")
        return None
    cfg = GeneratorConfig.from_dict(b.generator)
    want = MODE_SCALE.get(b.mode)
    if want is None or cfg.scale != want:
        raise BundleError(f"bundle mode {b.mode!r} does not match a generator of scale {cfg.scale}")
    model = build_generator(cfg)
    template = model.state_dict()
    base = None
    if b.base_sha256 is not None:
        base_cfg, base, _ = load_base(b.base_sha256)
        if base_cfg != cfg:
            raise BundleError(f"generator config {cfg.to_dict()} does not match its base {base_cfg.to_dict()}")
    state = decode_update(b.update, b.update_bytes, template, base)
    load_state_strict(model, state)
    return model.eval()


def _check_image_info(b: Bundle) -> None:
    for im in b.images:
        g = im.info.get("g", 0)
        if g not in (0, 1) or isinstance(g, bool):
            raise BundleError(f"image {im.name!r}: 'g' must be 0 or 1, got {g!r}")
        q = im.info.get("q")
        if q is not None and (not isinstance(q, int) or isinstance(q, bool) or not 1 <= q <= 100):
            raise BundleError(f"image {im.name!r}: payload quality 'q' must be an integer in 1..100, got {q!r}")
        if g and q is None:
            raise BundleError(f"image {im.name!r}: the generator runs on it but 'q' is missing")


def payload_scale(b: Bundle, im: BundleImage) -> int:
    """How much smaller than ``im`` its JPEG is: the generator's scale where it runs, else 1."""
    return int(b.generator.get("scale", 1)) if b.generator is not None and im.info.get("g") else 1


def payload_size(b: Bundle, im: BundleImage) -> tuple[int, int]:
    """The ``(width, height)`` ``im``'s JPEG must have: ``ceil(w/s) x ceil(h/s)`` at scale s."""
    s = payload_scale(b, im)
    return -(-im.width // s), -(-im.height // s)


def _check_payload_size(b: Bundle, im: BundleImage, got: tuple[int, int]) -> None:
    want = payload_size(b, im)
    if got != want:
        raise BundleError(f"image {im.name!r}: JPEG is {got[0]}x{got[1]}, expected {want[0]}x{want[1]} for "
                          f"{im.width}x{im.height} at scale {payload_scale(b, im)}")


def inspect_bundle(data: bytes, limits: BundleLimits = BundleLimits()) -> Bundle:
    """Parse and fully validate a bundle (structure, base hash, update, shapes, each JPEG's size
    read from its header) without decoding images."""
    b = parse_bundle(data, limits)
    _check_image_info(b)
    _model_for(b)
    for im in b.images:
        try:
            size = jpeg_size(im.jpeg)
        except ImageError as e:
            raise BundleError(f"image {im.name!r}: {e}") from None
        _check_payload_size(b, im, size)
    return b


def decode_bundle(data: bytes, progress: ProgressFn | None = None, *, tile: int = 512) -> DecodedBundle:
    """Reconstruct every image of a bundle: ``(H,W,3) uint8`` each, in bundle order."""
    b = parse_bundle(data)
    _check_image_info(b)
    model = _model_for(b)
    out = []
    for k, im in enumerate(b.images):
        dec = jpeg_decode(im.jpeg)
        _check_payload_size(b, im, (dec.shape[1], dec.shape[0]))
        out.append(restore(model, dec, q=im.info.get("q"), tile=tile)[: im.height, : im.width]
                   if model is not None and im.info.get("g") else dec)
        if progress is not None:
            progress("decoding", k + 1, len(b.images))
    return DecodedBundle(bundle=b, images=out)
