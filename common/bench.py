"""``gancodec bench``: one rate-distortion sweep of this codec against Pillow's JPEG, WebP and AVIF.

Rate is always whole files over the whole set: ``sum(bytes) * 8 / sum(pixels)`` in bits per pixel
(for this codec: the one bundle's bytes, JPEGs + update + header). Distortion is the mean over images
of RGB PSNR (and of MS-SSIM). BD-rates are taken against Pillow's default JPEG over the PSNR interval
its quality sweep spans (JPEG 5..50 by default), clipped to each curve's overlap.
"""

from __future__ import annotations

import argparse
import fnmatch
import io
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, features

from . import __version__
from .bdrate import bd_psnr, bd_rate, psnr_overlap
from .errors import ImageError
from .imageio import jpeg_decode, jpeg_encode, list_images, load_image
from .metrics import ms_ssim, psnr
from .plot import rd_plot
from .progress import Progress

LABELS = {"jpeg": "JPEG (Pillow default)", "jpeg_opt": "JPEG optimized+progressive", "webp": "WebP (method 6)",
          "avif": "AVIF", "gancodec": "gancodec (fine-tuned update)", "gancodec_base": "gancodec (base generator)"}
ANCHOR = "jpeg"
QUALITIES = (5, 10, 20, 30, 40, 50)
WIDE_QUALITIES = (1, 5, 10, 20, 30, 40, 50, 60, 70)  # WebP/AVIF quality scales differ from JPEG's
BD_QUALITIES = (5, 50)  # BD-rates are taken over the PSNR range the anchor spans at these JPEG qualities
Encoder = Callable[[np.ndarray, int], bytes]


@dataclass
class ImageSet:
    names: list[str]
    images: list[np.ndarray]

    @property
    def pixels(self) -> int:
        return sum(int(a.shape[0] * a.shape[1]) for a in self.images)


@dataclass
class CodecApi:
    """The three entry points of :mod:`common.codec` the bench calls (tests inject fakes)."""

    encode_options: Callable[..., Any]
    encode_images: Callable[..., Any]
    decode_bundle: Callable[..., Any]


def load_codec() -> CodecApi:
    from . import codec

    return CodecApi(codec.EncodeOptions, codec.encode_images, codec.decode_bundle)


def _pil_encode(rgb: np.ndarray, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format=fmt, **params)
    return buf.getvalue()


def _pil_decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint8)


BASELINES: dict[str, tuple[Encoder, Callable[[bytes], np.ndarray]]] = {
    "jpeg": (lambda a, q: jpeg_encode(a, q, optimize=False, progressive=False), jpeg_decode),
    "jpeg_opt": (lambda a, q: jpeg_encode(a, q), jpeg_decode),
    "webp": (lambda a, q: _pil_encode(a, "WEBP", quality=q, method=6), _pil_decode),
    "avif": (lambda a, q: _pil_encode(a, "AVIF", quality=q), _pil_decode),
}


def _quality(text: str) -> int:
    q = int(text)
    if not 1 <= q <= 100:
        raise argparse.ArgumentTypeError(f"quality {q} is outside 1..100")
    return q


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gancodec bench", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="folder of images")
    p.add_argument("--qualities", type=_quality, nargs="+", default=list(QUALITIES),
                   help="JPEG qualities: both JPEG curves and the codec's payload (default %(default)s)")
    p.add_argument("--other-qualities", type=_quality, nargs="+", default=list(WIDE_QUALITIES),
                   help="WebP/AVIF qualities, wider to span the same PSNR range (default %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="use the first N images (by name)")
    p.add_argument("--glob", default="*", help="file-name pattern, e.g. 'cbsd68_*'")
    p.add_argument("--budget-seconds", type=float, default=60.0, help="fine-tune budget per sweep point")
    p.add_argument("--max-steps", type=int, default=None, help="fine-tune step budget per sweep point")
    p.add_argument("--update", choices=("auto", "none", "delta", "full"), default="auto")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--curves", nargs="+", choices=list(LABELS), default=list(LABELS),
                   help="curves to measure (the JPEG anchor is always measured)")
    p.add_argument("--no-ms-ssim", action="store_true", help="skip MS-SSIM (faster)")
    p.add_argument("--out", required=True, help="results JSON")
    p.add_argument("--plot", default=None, help="RD plot PNG")
    p.add_argument("--json", action="store_true", help="print the results JSON instead of the table")
    return p


def load_set(folder: Path, pattern: str, limit: int | None) -> ImageSet:
    paths = [p for p in list_images(folder) if fnmatch.fnmatch(p.name, pattern)][:limit]
    return ImageSet([p.name for p in paths], [load_image(p) for p in paths])


def _scores(originals: Sequence[np.ndarray], decoded: Sequence[np.ndarray], msssim: bool) -> dict[str, Any]:
    per = [psnr(a, b) for a, b in zip(originals, decoded, strict=True)]  # raises on a shape mismatch
    ms = [ms_ssim(a, b) for a, b in zip(originals, decoded, strict=True)] if msssim else []
    return {"psnr": float(np.mean(per)), "ms_ssim": float(np.mean(ms)) if ms else None,
            "psnr_per_image": [round(v, 4) for v in per]}


def baseline_point(name: str, q: int, data: ImageSet, msssim: bool) -> dict[str, Any]:
    encode, decode = BASELINES[name]
    t0 = time.perf_counter()
    files = [encode(a, q) for a in data.images]
    t1 = time.perf_counter()
    decoded = [decode(f) for f in files]
    t2 = time.perf_counter()
    nbytes = sum(len(f) for f in files)
    return {"quality": q, "bytes": nbytes, "bpp": nbytes * 8 / data.pixels,
            **_scores(data.images, decoded, msssim), "encode_s": t1 - t0, "decode_s": t2 - t1}


def codec_point(api: CodecApi, q: int, update: str, args: argparse.Namespace, data: ImageSet,
                note: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    opts = api.encode_options(quality=q, match_jpeg=None, update=update, budget_seconds=args.budget_seconds,
                              max_steps=args.max_steps, device=args.device)
    t0 = time.perf_counter()
    result = api.encode_images(list(zip(data.names, data.images, strict=True)), opts, note)
    t1 = time.perf_counter()
    decoded = api.decode_bundle(result.bundle)
    t2 = time.perf_counter()
    summary, total = result.summary, len(result.bundle)
    parts = dict(summary.get("bytes", {}))
    return {"quality": q, "update": update, "bytes": total, "bpp": total * 8 / data.pixels,
            **_scores(data.images, decoded.images, not args.no_ms_ssim), "parts": parts,
            "update_share": parts.get("update", 0) / total, "decision": summary.get("decision"),
            "finetune_s": summary.get("seconds", {}).get("finetune"), "encode_s": t1 - t0,
            "decode_s": t2 - t1, "decode_mps": data.pixels / 1e6 / max(t2 - t1, 1e-9)}


def _plan(args: argparse.Namespace) -> list[tuple[str, list[int]]]:
    wanted = [ANCHOR] + [c for c in LABELS if c in args.curves and c != ANCHOR]
    if args.update == "none":  # the "fine-tuned" curve would repeat the base-generator one
        wanted = [c for c in wanted if c != "gancodec_base"]
    return [(c, args.other_qualities if c in ("webp", "avif") else args.qualities) for c in wanted]


def run_sweep(args: argparse.Namespace, data: ImageSet) -> dict[str, dict[str, Any]]:
    plan, api = _plan(args), None
    bar = Progress(sum(len(qs) for _, qs in plan), "bench")
    curves: dict[str, dict[str, Any]] = {}
    done = 0
    for name, qs in plan:
        curve: dict[str, Any] = {"label": LABELS[name], "available": True, "qualities": qs, "points": []}
        curves[name] = curve
        if name == "avif" and not features.check("avif"):
            curve.update(available=False, reason="this Pillow build has no AVIF support")
            done += len(qs)
            continue
        for q in qs:
            bar.update(done, f"{name} q={q}")
            if name in BASELINES:
                point = baseline_point(name, q, data, not args.no_ms_ssim)
            else:
                api = api or load_codec()

                def note(stage: str, i: int, n: int, at: str = f"{name} q={q}", d: int = done) -> None:
                    bar.update(d, f"{at} {stage} {i}/{n}")

                point = codec_point(api, q, "none" if name == "gancodec_base" else args.update, args, data, note)
            curve["points"].append(point)
            done += 1
    bar.update(done, "done")
    bar.close()
    return curves


def _rd(curve: dict[str, Any]) -> list[tuple[float, float]]:
    return [(p["bpp"], p["psnr"]) for p in curve["points"]]


def _bd_entry(anchor: list[tuple[float, float]], test: list[tuple[float, float]],
              span: tuple[float, float]) -> dict[str, Any]:
    """BD-rate over ``span`` (clipped to the overlap) and BD-PSNR; a failed metric is None plus why."""
    out: dict[str, Any] = {"bd_rate_pct": None, "bd_psnr_db": None}
    try:
        lo, hi = psnr_overlap(anchor, test, span)
        out.update(bd_rate_pct=bd_rate(anchor, test, psnr_range=span), psnr_interval=[lo, hi],
                   coverage=(hi - lo) / (span[1] - span[0]))
    except ValueError as e:
        out["error"] = str(e)
    try:
        out["bd_psnr_db"] = bd_psnr(anchor, test)
    except ValueError as e:
        out["bd_psnr_error"] = str(e)
    return out


def bd_summary(curves: dict[str, dict[str, Any]]) -> dict[str, Any]:
    anchor = _rd(curves[ANCHOR])
    ys = [p["psnr"] for p in curves[ANCHOR]["points"] if BD_QUALITIES[0] <= p["quality"] <= BD_QUALITIES[1]]
    ys = ys if len(ys) >= 2 else [y for _, y in anchor]  # a sweep outside 5..50: use all of it
    span = (min(ys), max(ys))
    out: dict[str, Any] = {"anchor": ANCHOR, "method": "pchip", "psnr_range": list(span), "vs_anchor": {}}
    for name, curve in curves.items():
        if name != ANCHOR and curve["available"]:
            out["vs_anchor"][name] = _bd_entry(anchor, _rd(curve), span)
    if "gancodec" in curves and "gancodec_base" in curves:
        out["finetune_vs_base"] = _bd_entry(_rd(curves["gancodec_base"]), _rd(curves["gancodec"]), span)
    return out


def codec_summary(curve: dict[str, Any], pixels: int) -> dict[str, Any]:
    pts = curve["points"]
    ft = [p["finetune_s"] for p in pts if p.get("finetune_s") is not None]
    return {"encode_s_total": sum(p["encode_s"] for p in pts), "finetune_s_total": sum(ft),
            "finetune_s_per_mp": (sum(ft) / len(ft)) / (pixels / 1e6) if ft else None,
            "decode_mps_median": float(np.median([p["decode_mps"] for p in pts])),
            "update_share_max": max(p["update_share"] for p in pts)}


def environment() -> dict[str, Any]:
    import PIL
    import torch

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    names = [ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")]
    cpu = names[0] if names else platform.processor() or platform.machine()
    cuda = torch.cuda.is_available()
    return {"gancodec": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "pillow": PIL.__version__, "platform": platform.platform(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "cuda": cuda,
            "gpu": torch.cuda.get_device_name(0) if cuda else None}


def print_table(res: dict[str, Any]) -> None:
    print(f"{res['images']} images, {res['pixels'] / 1e6:.2f} MP from {res['data']}")
    print(f"{'curve':<30} {'q':>3} {'bpp':>7} {'PSNR':>6} {'MS-SSIM':>7}  update%  tune s  dec MP/s  chosen")
    for curve in res["curves"].values():
        if not curve["available"]:
            print(f"{curve['label']:<30} unavailable: {curve['reason']}")
        for p in curve["points"]:
            ms = "" if p["ms_ssim"] is None else f"{p['ms_ssim']:.4f}"
            extra = (f"{100 * p['update_share']:7.2f} {p['finetune_s'] or 0:7.1f} {p['decode_mps']:9.2f}  "
                     f"{(p['decision'] or {}).get('chosen', '')}" if "parts" in p else "")
            print(f"{curve['label']:<30} {p['quality']:>3} {p['bpp']:7.4f} {p['psnr']:6.2f} {ms:>7}  {extra}")
    bd = res["bd"]
    lo, hi = bd["psnr_range"]
    print(f"\nBD vs {LABELS[ANCHOR]} over PSNR [{lo:.2f}, {hi:.2f}] dB ({bd['method']}):")
    rows = [(LABELS[k], v) for k, v in bd["vs_anchor"].items()]
    rows += [("fine-tuned vs base generator", bd["finetune_vs_base"])] if "finetune_vs_base" in bd else []
    for label, e in rows:
        rate = "n/a" if e["bd_rate_pct"] is None else f"{e['bd_rate_pct']:+7.2f} %"
        dpsnr = "n/a" if e["bd_psnr_db"] is None else f"{e['bd_psnr_db']:+6.3f} dB"
        why = f"({100 * e['coverage']:.0f}% of the range)" if "coverage" in e else f"({e['error']})"
        print(f"  {label:<30} BD-rate {rate:>9}  BD-PSNR {dpsnr:>9}  {why}")
    for name, s in res.get("codec", {}).items():
        tune = "n/a" if s["finetune_s_per_mp"] is None else f"{s['finetune_s_per_mp']:.1f}"
        print(f"{LABELS[name]}: encode {s['encode_s_total']:.1f} s total, fine-tune {tune} s/MP per point, "
              f"decode {s['decode_mps_median']:.2f} MP/s, update <= {100 * s['update_share_max']:.2f}% of bundle")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    folder = Path(args.data)
    try:
        data = load_set(folder, args.glob, args.limit) if folder.is_dir() else None
    except ImageError as e:
        print(f"gancodec bench: error: {e}", file=sys.stderr)
        return 2
    if not data or not data.images:
        print(f"gancodec bench: error: no images matching {args.glob!r} in {folder}", file=sys.stderr)
        return 2
    res: dict[str, Any] = {
        "command": ["gancodec", "bench", *argv], "data": str(folder.resolve()), "glob": args.glob,
        "images": len(data.images), "pixels": data.pixels, "image_names": data.names,
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "environment": environment(),
        "settings": {k: getattr(args, k) for k in ("qualities", "other_qualities", "limit", "budget_seconds",
                                                   "max_steps", "update", "device", "curves")},
    }
    res["curves"] = run_sweep(args, data)
    res["bd"] = bd_summary(res["curves"])
    res["codec"] = {k: codec_summary(c, data.pixels) for k, c in res["curves"].items() if k.startswith("gancodec")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    if args.plot:
        curves = {c["label"]: _rd(c) for c in res["curves"].values() if c["available"]}
        lo, hi = res["bd"]["psnr_range"]
        where = folder.name if args.glob == "*" else f"{folder.name}/{args.glob}"
        rd_plot(curves, args.plot, f"Rate-distortion: {where}, {len(data.images)} images", yband=(lo, hi))
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
