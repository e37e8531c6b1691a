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
import math
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
from .metrics import exact_match_rate, hist_correlation, ms_ssim, psnr
from .plot import crops_figure, rd_plot
from .progress import Progress

LABELS = {"jpeg": "JPEG (Pillow default)", "jpeg_opt": "JPEG optimized+progressive", "webp": "WebP (method 6)",
          "avif": "AVIF", "gancodec": "gancodec restore (fine-tuned update)",
          "gancodec_base": "gancodec restore (base generator)",
          "gancodec_sr2": "gancodec sr2", "gancodec_sr4": "gancodec sr4", "gancodec_auto": "gancodec auto",
          "gancodec_perceptual": "gancodec perceptual"}
DEFAULT_CURVES = ("jpeg", "jpeg_opt", "webp", "avif", "gancodec", "gancodec_base")
# Codec curves: the EncodeOptions each one sets on top of the sweep's (quality, budget, device, update).
CODEC_CURVES: dict[str, dict[str, Any]] = {
    "gancodec": {"mode": "restore"}, "gancodec_base": {"mode": "restore", "update": "none"},
    "gancodec_sr2": {"mode": "sr2"},
    "gancodec_sr4": {"mode": "sr4"}, "gancodec_auto": {"mode": "auto"},
    "gancodec_perceptual": {"objective": "perceptual"},
}
ARCH_PREFIX = "arch_"  # --archs NAME adds curve "arch_NAME": restore mode with that generator
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
    p.add_argument("--curves", nargs="+", choices=list(LABELS), default=list(DEFAULT_CURVES),
                   help="curves to measure (the JPEG anchor is always measured; default %(default)s)")
    p.add_argument("--archs", nargs="+", default=[], metavar="ARCH",
                   help="also one restore curve per generator architecture, and the architecture table")
    p.add_argument("--alpha", type=float, default=1.0, help="gancodec_perceptual: network interpolation")
    p.add_argument("--low-rate-bpp", type=float, default=0.15,
                   help="BD-rates of the sr/auto curves against restore below this rate (default %(default)s)")
    p.add_argument("--thesis", action="store_true",
                   help="also encode the source thesis's configuration (SRResNet-7 at 64 channels, full "
                        "float32 weights, trained from scratch on the set) at --thesis-quality")
    p.add_argument("--thesis-quality", type=_quality, default=5)
    p.add_argument("--thesis-steps", type=int, default=None,
                   help="fine-tune steps for the thesis configuration (default: --max-steps); its 585k "
                        "weights trained from scratch cost ~20x our default per step")
    p.add_argument("--no-ms-ssim", action="store_true", help="skip MS-SSIM (faster)")
    p.add_argument("--reuse", default=None, metavar="JSON",
                   help="take the curves from an earlier results file of the same images instead of "
                        "measuring them again (recomputes BD-rates, the architecture table and plots)")
    p.add_argument("--out", required=True, help="results JSON")
    p.add_argument("--plot", default=None, help="RD plot PNG")
    p.add_argument("--json", action="store_true", help="print the results JSON instead of the table")
    p.add_argument("--crops", default=None, metavar="PNG",
                   help="side-by-side crops of the first image from every curve at the middle quality")
    return p


def load_set(folder: Path, pattern: str, limit: int | None) -> ImageSet:
    paths = [p for p in list_images(folder) if fnmatch.fnmatch(p.name, pattern)][:limit]
    return ImageSet([p.name for p in paths], [load_image(p) for p in paths])


def _scores(originals: Sequence[np.ndarray], decoded: Sequence[np.ndarray], msssim: bool) -> dict[str, Any]:
    per = [psnr(a, b) for a, b in zip(originals, decoded, strict=True)]  # raises on a shape mismatch
    ms = [ms_ssim(a, b) for a, b in zip(originals, decoded, strict=True)] if msssim else []
    hc = [hist_correlation(a, b) for a, b in zip(originals, decoded, strict=True)]
    em = [exact_match_rate(a, b) for a, b in zip(originals, decoded, strict=True)]
    return {"psnr": float(np.mean(per)), "ms_ssim": float(np.mean(ms)) if ms else None,
            "hist_corr": float(np.mean(hc)), "exact_match": float(np.mean(em)),
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
            **_scores(data.images, decoded, msssim), "encode_s": t1 - t0, "decode_s": t2 - t1,
            "_first": decoded[0]}


def _curve_spec(name: str) -> dict[str, Any]:
    if name.startswith(ARCH_PREFIX):  # restore explicitly: the default mode (auto) would let srvgg go sr2
        return {"mode": "restore", "arch": name[len(ARCH_PREFIX):]}
    return CODEC_CURVES[name]


def _label(name: str) -> str:
    return f"gancodec arch {name[len(ARCH_PREFIX):]}" if name.startswith(ARCH_PREFIX) else LABELS[name]


def codec_point(api: CodecApi, q: int, spec: dict[str, Any], args: argparse.Namespace, data: ImageSet,
                note: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    fields = {"update": args.update, **spec}
    if fields.get("objective") == "perceptual":
        fields["alpha"] = args.alpha
    fields.setdefault("max_steps", args.max_steps)
    opts = api.encode_options(quality=q, match_jpeg=None, budget_seconds=args.budget_seconds,
                              device=args.device, **fields)
    update = fields["update"]
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
            "decode_s": t2 - t1, "decode_mps": data.pixels / 1e6 / max(t2 - t1, 1e-9),
            "_first": decoded.images[0]}


def _plan(args: argparse.Namespace) -> list[tuple[str, list[int]]]:
    wanted = [ANCHOR] + [c for c in LABELS if c in args.curves and c != ANCHOR]
    wanted += [ARCH_PREFIX + a for a in args.archs]
    if args.update == "none":  # the "fine-tuned" curve would repeat the base-generator one
        wanted = [c for c in wanted if c != "gancodec_base"]
    return [(c, args.other_qualities if c in ("webp", "avif") else args.qualities) for c in wanted]


def run_sweep(args: argparse.Namespace, data: ImageSet, firsts: dict[str, np.ndarray] | None = None,
              checkpoint: Callable[[dict[str, dict[str, Any]]], None] | None = None) -> dict[str, dict[str, Any]]:
    """Every curve's points. ``firsts`` collects the first image's reconstruction per curve at the
    middle quality of its sweep (for ``--crops``); ``checkpoint`` gets the curves after each point
    (so a long sweep that is stopped keeps what it measured)."""
    plan, api = _plan(args), None
    bar = Progress(sum(len(qs) for _, qs in plan), "bench")
    curves: dict[str, dict[str, Any]] = {}
    done = 0
    for name, qs in plan:
        curve: dict[str, Any] = {"label": _label(name), "available": True, "qualities": qs, "points": []}
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

                point = codec_point(api, q, _curve_spec(name), args, data, note)
            first = point.pop("_first")
            if firsts is not None and q == qs[len(qs) // 2]:
                firsts[f"{curve['label']} q{q}, {8 * point['bytes'] / data.pixels:.3f} bpp"] = first
            curve["points"].append(point)
            done += 1
            if checkpoint is not None:
                checkpoint(curves)
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


def low_rate_summary(curves: dict[str, dict[str, Any]], max_bpp: float) -> dict[str, Any] | None:
    """BD-rate of each sr/auto curve against the restore curve (``gancodec``) over the PSNR range
    restore covers at or below ``max_bpp`` (its PSNR at ``max_bpp`` interpolated in log-rate)."""
    if "gancodec" not in curves:
        return None
    pts = sorted(_rd(curves["gancodec"]))
    lows = [p for p in pts if p[0] <= max_bpp]
    highs = [p for p in pts if p[0] > max_bpp]
    out: dict[str, Any] = {"anchor": "gancodec", "max_bpp": max_bpp, "vs_restore": {}}
    if not lows:
        out["error"] = f"the restore curve has no point at or below {max_bpp} bpp (add lower --qualities)"
        return out
    top = lows[-1][1]
    if highs:  # the PSNR restore reaches at exactly max_bpp
        (r0, p0), (r1, p1) = lows[-1], highs[0]
        top = p0 + (p1 - p0) * (math.log(max_bpp) - math.log(r0)) / (math.log(r1) - math.log(r0))
    span = (min(p for _, p in pts), top)
    out["psnr_range"] = list(span)
    for name in ("gancodec_sr2", "gancodec_sr4", "gancodec_auto"):
        if name in curves:
            out["vs_restore"][name] = _bd_entry(_rd(curves["gancodec"]), _rd(curves[name]), span)
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
    if "gancodec" in curves and "gancodec_perceptual" in curves:
        out["perceptual_vs_fidelity"] = _bd_entry(_rd(curves["gancodec"]), _rd(curves["gancodec_perceptual"]), span)
    return out


def generator_mps(model: Any, images: Sequence[np.ndarray], repeats: int = 2) -> float:
    """Megapixels per second of ``model`` run over ``images`` as payloads (tiled, as the receiver
    runs it), best of ``repeats`` after a warm-up on the first image. This is the generator's decode
    speed; a bundle's decode speed also depends on how many of its images the decision left on."""
    from .infer import restore

    restore(model, images[0])
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for im in images:
            restore(model, im)
        best = min(best, time.perf_counter() - t0)
    return sum(im.shape[0] * im.shape[1] for im in images) / 1e6 / max(best, 1e-9)


def arch_table(res: dict[str, Any], archs: Sequence[str], data: ImageSet | None = None) -> list[dict[str, Any]]:
    """One row per ``--archs`` entry: size, cost and rate-distortion figures of its restore curve.

    With ``data``, each base generator's own decode speed is measured on its images
    (``generator_mps``); the RD/speed frontier uses it (else the bundles' median decode speed).
    The two similarity figures of the source thesis (histogram correlation, exact-pixel match)
    are given at the sweep's lowest quality, next to PSNR there.
    """
    from .generator import build_generator, load_state_strict, macs_per_pixel

    def model_with(model: Any, state: dict[str, Any]) -> Any:
        load_state_strict(model, state)
        return model
    from .planner import base_name
    from .weights import base_path, load_base

    rows = []
    for a in archs:
        name = ARCH_PREFIX + a
        curve = res["curves"][name]
        cfg, state, _ = load_base(base_name("restore", a))
        model = build_generator(cfg).eval()
        pts = curve["points"]
        low = min(pts, key=lambda p: p["quality"])
        ft = [p["finetune_s"] for p in pts if p.get("finetune_s") is not None]
        rows.append({
            "arch": a, "config": cfg.to_dict(), "params": sum(v.numel() for v in state.values()),
            "mac_per_pixel": round(macs_per_pixel(model)), "base_bytes": base_path(base_name("restore", a)).stat().st_size,
            "update_bytes_median": int(np.median([p["parts"].get("update", 0) for p in pts])),
            "bd_rate_pct": res["bd"]["vs_anchor"].get(name, {}).get("bd_rate_pct"),
            "finetune_s_mean": float(np.mean(ft)) if ft else None,
            "decode_mps_median": float(np.median([p["decode_mps"] for p in pts])),
            "generator_mps": None if data is None else generator_mps(model_with(model, state), data.images),
            "at_quality": low["quality"], "psnr": low["psnr"], "hist_corr": low["hist_corr"],
            "exact_match": low["exact_match"],
        })
    mark_frontier(rows)
    return rows


def mark_frontier(rows: list[dict[str, Any]]) -> None:
    """Set each row's ``dominated_by``: the archs that are both better in BD-rate (lower) and
    faster to decode (``generator_mps`` where measured, else ``decode_mps_median``). A row with an
    empty list is on the RD/speed frontier; one without a BD-rate cannot be placed (None)."""
    def speed(r: dict[str, Any]) -> float:
        return float(r["generator_mps"] if r.get("generator_mps") is not None else r["decode_mps_median"])

    for r in rows:
        if r["bd_rate_pct"] is None:
            r["dominated_by"] = None
            continue
        r["dominated_by"] = [o["arch"] for o in rows if o is not r and o["bd_rate_pct"] is not None
                             and o["bd_rate_pct"] < r["bd_rate_pct"] and speed(o) > speed(r)]


def thesis_point(api: CodecApi, args: argparse.Namespace, data: ImageSet) -> dict[str, Any]:
    """The source thesis's configuration next to this codec's restore mode with its default
    generator and payoff decision: same images, same payload quality, same mode."""
    q = args.thesis_quality
    bar = Progress(2, "thesis")
    out: dict[str, Any] = {"quality": q}
    steps = args.max_steps if args.thesis_steps is None else args.thesis_steps
    specs = {"ours": {"mode": "restore"}, "thesis": {"mode": "restore", "arch": "srresnet", "channels": 64, "blocks": 7,
                                    "update": "full", "max_steps": steps}}
    for i, (key, spec) in enumerate(specs.items()):
        bar.update(i, key)
        out[key] = codec_point(api, q, spec, args, data)
        out[key].pop("_first")
        out[key]["options"] = spec
    bar.update(2, "done")
    bar.close()
    out["bundle_ratio"] = out["thesis"]["bytes"] / out["ours"]["bytes"]
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


def _frontier_label(dominated_by: list[str] | None) -> str:
    if dominated_by is None:
        return "n/a"
    return "yes" if not dominated_by else "no (" + ", ".join(dominated_by) + ")"


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
    rows = [(_label(k), v) for k, v in bd["vs_anchor"].items()]
    rows += [("fine-tuned vs base generator", bd["finetune_vs_base"])] if "finetune_vs_base" in bd else []
    for label, e in rows:
        rate = "n/a" if e["bd_rate_pct"] is None else f"{e['bd_rate_pct']:+7.2f} %"
        dpsnr = "n/a" if e["bd_psnr_db"] is None else f"{e['bd_psnr_db']:+6.3f} dB"
        why = f"({100 * e['coverage']:.0f}% of the range)" if "coverage" in e else f"({e['error']})"
        print(f"  {label:<30} BD-rate {rate:>9}  BD-PSNR {dpsnr:>9}  {why}")
    low = res.get("low_rate")
    if low:
        if "error" in low:
            print(f"\nlow rate (<= {low['max_bpp']} bpp): {low['error']}")
        else:
            lo, hi = low["psnr_range"]
            print(f"\nBD vs gancodec restore at <= {low['max_bpp']} bpp (PSNR [{lo:.2f}, {hi:.2f}] dB):")
            for k, e in low["vs_restore"].items():
                rate = "n/a" if e["bd_rate_pct"] is None else f"{e['bd_rate_pct']:+7.2f} %"
                why = f"({100 * e['coverage']:.0f}% of the range)" if "coverage" in e else f"({e['error']})"
                print(f"  {_label(k):<30} BD-rate {rate:>9}  {why}")
    if res.get("archs"):
        print(f"\n{'arch':<9} {'params':>8} {'MAC/px':>8} {'base B':>9} {'update B':>8} {'BD-rate':>8} "
              f"{'tune s':>6} {'gen MP/s':>8} {'q':>3} {'PSNR':>6} {'hist':>6} {'exact':>6}  frontier")
        for r in res["archs"]:
            bd = "n/a" if r["bd_rate_pct"] is None else f"{r['bd_rate_pct']:+.1f}%"
            print(f"{r['arch']:<9} {r['params']:>8} {r['mac_per_pixel']:>8} {r['base_bytes']:>9} "
                  f"{r['update_bytes_median']:>8} {bd:>8} {r['finetune_s_mean'] or 0:>6.1f} "
                  f"{r['generator_mps'] or r['decode_mps_median']:>8.2f} {r['at_quality']:>3} {r['psnr']:>6.2f} {r['hist_corr']:>6.4f} "
                  f"{r['exact_match']:>6.4f}  {_frontier_label(r.get('dominated_by'))}")
    th = res.get("thesis")
    if th:
        print(f"\nthesis config at q{th['quality']} (SRResNet-7, full f32 weights): {th['thesis']['bytes']} B, "
              f"PSNR {th['thesis']['psnr']:.2f} dB; ours {th['ours']['bytes']} B, PSNR {th['ours']['psnr']:.2f} dB; "
              f"bundle ratio {th['bundle_ratio']:.1f}x")
    for name, s in res.get("codec", {}).items():
        tune = "n/a" if s["finetune_s_per_mp"] is None else f"{s['finetune_s_per_mp']:.1f}"
        print(f"{_label(name)}: encode {s['encode_s_total']:.1f} s total, fine-tune {tune} s/MP per point, "
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
                                                   "max_steps", "update", "device", "curves", "archs", "alpha",
                                                   "low_rate_bpp", "thesis", "thesis_quality",
                                                   "thesis_steps")},
    }
    firsts: dict[str, np.ndarray] = {}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.stem + ".partial.json")

    def checkpoint(curves: dict[str, dict[str, Any]]) -> None:
        partial.write_text(json.dumps({**res, "curves": curves, "partial": True}, indent=1) + "\n")
    if args.reuse:
        try:
            old = json.loads(Path(args.reuse).read_text())
        except (OSError, ValueError) as e:
            print(f"gancodec bench: error: cannot read --reuse {args.reuse}: {e}", file=sys.stderr)
            return 2
        if old.get("image_names") != data.names or not isinstance(old.get("curves"), dict):
            print(f"gancodec bench: error: {args.reuse} was measured on other images", file=sys.stderr)
            return 2
        res["curves"], res["reused"] = old["curves"], str(args.reuse)
        missing = [c for c, _ in _plan(args) if c not in res["curves"]]
        if missing:
            print(f"gancodec bench: error: {args.reuse} lacks curves {', '.join(missing)}", file=sys.stderr)
            return 2
    else:
        res["curves"] = run_sweep(args, data, firsts, checkpoint)
    res["bd"] = bd_summary(res["curves"])
    if any(k in res["curves"] for k in ("gancodec_sr2", "gancodec_sr4", "gancodec_auto")):
        res["low_rate"] = low_rate_summary(res["curves"], args.low_rate_bpp)
    if args.archs:
        res["archs"] = arch_table(res, args.archs, data)
    if args.thesis:
        reused = json.loads(Path(args.reuse).read_text()).get("thesis") if args.reuse else None
        res["thesis"] = reused or thesis_point(load_codec(), args, data)
    res["codec"] = {k: codec_summary(c, data.pixels) for k, c in res["curves"].items()
                    if k in CODEC_CURVES or k.startswith(ARCH_PREFIX)}
    out.write_text(json.dumps(res, indent=1) + "\n")
    partial.unlink(missing_ok=True)
    if args.plot:
        curves = {c["label"]: _rd(c) for c in res["curves"].values() if c["available"]}
        lo, hi = res["bd"]["psnr_range"]
        where = folder.name if args.glob == "*" else f"{folder.name}/{args.glob}"
        rd_plot(curves, args.plot, f"Rate-distortion: {where}, {len(data.images)} images", yband=(lo, hi))
    if args.crops and firsts:  # (none with --reuse: the images were not kept)
        crops_figure([("original", data.images[0]), *firsts.items()], args.crops,
                     title=f"{data.names[0]}: centre crop, 3x nearest-neighbour zoom")
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
