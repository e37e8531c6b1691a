"""``gancodec``: encode, decode, bench and send from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .codec import ENCODE_MODES, OBJECTIVES, UPDATES, EncodeOptions, decode_bundle, encode_images
from .errors import CodecError
from .generator import archs
from .imageio import load_image, save_png
from .progress import StageBars


def unique_names(paths: Sequence[Path]) -> list[str]:
    """Image names from file stems, made unique with a ``-2``, ``-3`` … suffix."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        stem = p.stem or "image"
        n = seen.get(stem, 0) + 1
        seen[stem] = n
        out.append(stem if n == 1 else f"{stem}-{n}")
    return out


def _encode(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.images]
    images = [(n, load_image(p)) for n, p in zip(unique_names(paths), paths, strict=True)]
    opts = EncodeOptions(quality=args.quality, match_jpeg=None if args.quality else args.match_jpeg,
                         mode=args.mode, update=args.update, budget_seconds=args.budget_seconds,
                         max_steps=args.max_steps, seed=args.seed, device=args.device, subset=args.subset,
                         base=args.base, arch=args.arch, channels=args.channels, blocks=args.blocks,
                         objective=args.objective, alpha=args.alpha, vgg_weights=args.vgg_weights,
                         full_dtype=args.full_dtype, max_update_share=args.max_update_share)
    bars = StageBars()
    result = encode_images(images, opts, bars)
    bars.close()
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(result.bundle)
    tmp.replace(out)
    s = result.summary
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"{'image':<24} {'size':>9} {'q':>3} {'gen':>3} {'ref JPEG B':>10} {'payload B':>9} "
          f"{'PSNR ref':>8} {'PSNR jpeg':>9} {'PSNR out':>8}")
    for r in s["images"]:
        print(f"{r['name'][:24]:<24} {r['width']:>4}x{r['height']:<4} {r['quality']:>3} "
              f"{'yes' if r['generator'] else 'no':>3} {r['ref_jpeg_bytes']:>10} {r['jpeg_bytes']:>9} "
              f"{r['psnr_ref']:>8.2f} {r['psnr_payload']:>9.2f} {r['psnr']:>8.2f}")
    b = s["bytes"]
    print(f"\nbundle {out}: {b['total']} bytes = JPEG {b['jpeg']} + update {b['update']} + header {b['header']}"
          f" ({s['bpp']:.3f} bpp)")
    print(f"decision: {s['mode']} / {s['decision']['chosen']}  (candidates: "
          + ", ".join(f"{k} {v['total_bytes']} B" for k, v in s["decision"]["candidates"].items()) + ")")
    label = f"Pillow JPEG q{s['ref_quality']}"
    print(f"vs {label}: {s['ref_jpeg_bytes']} bytes, mean PSNR {s['psnr_jpeg_ref']:.2f} dB -> "
          f"bundle mean PSNR {s['psnr_recon']:.2f} dB, saving {100 * s['saving']:.1f}%")
    return 0


def _decode(args: argparse.Namespace) -> int:
    data = Path(args.bundle).read_bytes()
    t0 = time.monotonic()
    bars = StageBars()
    dec = decode_bundle(data, bars)
    bars.close()
    seconds = time.monotonic() - t0
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for im, rgb in zip(dec.bundle.images, dec.images, strict=True):
        path = outdir / f"{im.name}.png"
        save_png(rgb, path)
        if args.jpeg:
            (outdir / f"{im.name}.jpg").write_bytes(im.jpeg)
        rows.append({"name": im.name, "path": str(path), "width": im.width, "height": im.height,
                     "generator": bool(im.info.get("g")), "psnr_sender": im.info.get("pr")})
    mp = sum(r["width"] * r["height"] for r in rows) / 1e6
    report = {"bundle_id": dec.bundle.bundle_id, "mode": dec.bundle.mode, "images": rows,
              "seconds": round(seconds, 3), "megapixels_per_second": round(mp / max(seconds, 1e-9), 3)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for r in rows:
            print(f"{r['path']}  {r['width']}x{r['height']}  generator={'yes' if r['generator'] else 'no'}")
        print(f"{len(rows)} images, {mp:.2f} MP in {seconds:.2f} s ({report['megapixels_per_second']} MP/s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="gancodec", description="JPEG payload + learned generator update codec")
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("encode", help="encode images into a bundle")
    e.add_argument("images", nargs="+", help="PNG/JPEG/BMP/WebP/TIFF files")
    e.add_argument("--out", required=True, help="bundle file to write")
    g = e.add_mutually_exclusive_group()
    g.add_argument("--quality", type=int, help="fixed payload JPEG quality 1..100")
    g.add_argument("--match-jpeg", type=int, default=75, metavar="Q",
                   help="reach plain JPEG quality Q's PSNR per image in fewest bytes (default 75)")
    e.add_argument("--mode", choices=ENCODE_MODES, default="auto",
                   help="restore: full-size payload; sr2/sr4: payload downsampled 2x/4x and upsampled by the "
                        "generator; auto: the cheapest of the three for this set; jpeg: no generator")
    e.add_argument("--arch", choices=archs(), default="srvgg", help="generator architecture")
    e.add_argument("--channels", type=int, help="generator width (a config with no shipped base needs --update full)")
    e.add_argument("--blocks", type=int, help="generator depth (same rule as --channels)")
    e.add_argument("--base", help="base weights name in common/weights (default: the newest <mode>[-<arch>]-vN)")
    e.add_argument("--update", choices=UPDATES, default="auto")
    e.add_argument("--full-dtype", choices=("f32", "f16"), default="f32", help="weights dtype for --update full")
    e.add_argument("--objective", choices=OBJECTIVES, default="fidelity",
                   help="fidelity: MSE (PSNR); perceptual: adversarial + discriminator feature matching")
    e.add_argument("--alpha", type=float, default=1.0,
                   help="perceptual only: interpolate base (0) .. perceptual generator (1) weights")
    e.add_argument("--vgg-weights", metavar="PATH",
                   help="perceptual only: VGG19 features as .safetensors (torchvision key names) for the "
                        "SRGAN content loss; pickles are refused")
    e.add_argument("--budget-seconds", type=float, default=60.0, help="fine-tune wall-time budget")
    e.add_argument("--max-steps", type=int, default=None)
    e.add_argument("--subset", choices=("all", "bias", "tail"), default="all", help="parameters to fine-tune")
    e.add_argument("--max-update-share", type=float, default=0.05, metavar="F",
                   help="a coded delta may take at most this share of the bundle (1 = no cap)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    e.add_argument("--json", action="store_true", help="print the summary as JSON")
    d = sub.add_parser("decode", help="reconstruct the images of a bundle")
    d.add_argument("bundle")
    d.add_argument("--out", required=True, help="folder for <name>.png")
    d.add_argument("--jpeg", action="store_true", help="also write the received JPEGs")
    d.add_argument("--json", action="store_true")
    sub.add_parser("bench", help="rate-distortion benchmark (see gancodec bench -h)", add_help=False)
    sub.add_parser("send", help="post a folder to a sender service (see gancodec send -h)", add_help=False)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from .bench import main as bench_main

        return bench_main(argv[1:])
    if argv and argv[0] == "send":
        from .sendcli import send_main

        return send_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return _encode(args) if args.cmd == "encode" else _decode(args)
    except (CodecError, OSError) as e:
        print(f"gancodec {args.cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
