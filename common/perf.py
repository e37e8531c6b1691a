"""Speed and size figures: fine-tune time, update share, decode speed, peak decode memory.

    python -m common.perf --data DIR --out runs/perf.json

1. A set of ``--images`` crops of 768x512 from DIR, payload quality chosen so plain JPEG is near
   ``--bpp`` (0.5): encode with the default budget; report fine-tune wall time per megapixel,
   update bytes and their share of the bundle, and the decision.
2. Decode speed (megapixels per second) of that bundle.
3. Peak resident memory of decoding one ``--big-mp`` (24) megapixel image, measured in a child
   process, and whether the tiled result equals the untiled one on a crop.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .codec import EncodeOptions, decode_bundle, encode_images
from .imageio import jpeg_encode, list_images, load_image


def crops_768x512(folder: str, count: int) -> list[tuple[str, np.ndarray]]:
    imgs = [load_image(p) for p in list_images(folder)]
    imgs = [im if im.shape[0] <= im.shape[1] else im.transpose(1, 0, 2) for im in imgs]
    big = [im for im in imgs if im.shape[0] >= 512 and im.shape[1] >= 768]
    if not big:
        raise SystemExit(f"no image of at least 768x512 in {folder}")
    out = []
    for k in range(count):
        im = big[k % len(big)]
        turn = k // len(big)
        y0 = (turn * 97) % (im.shape[0] - 511)
        x0 = (turn * 131) % (im.shape[1] - 767)
        out.append((f"crop{k:02d}", np.ascontiguousarray(im[y0 : y0 + 512, x0 : x0 + 768])))
    return out


def quality_for_bpp(images: list[tuple[str, np.ndarray]], bpp: float) -> int:
    pixels = sum(im.shape[0] * im.shape[1] for _, im in images)
    best = min(range(5, 96, 5), key=lambda q: abs(
        8 * sum(len(jpeg_encode(im, q)) for _, im in images) / pixels - bpp))
    return best


def big_decode_memory(mp: float, tile: int) -> dict[str, Any]:
    """Encode a synthetic ``mp``-megapixel image, then decode it in a child and read its peak RSS."""
    w = int((mp * 1e6 * 1.5) ** 0.5)
    h = int(mp * 1e6 / w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([(np.sin(xx / 37) + np.cos(yy / 53)) * 60 + 128, xx * 255 / w, yy * 255 / h], axis=-1)
    rgb = np.clip(rgb + np.random.default_rng(0).normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)
    enc = encode_images([("big", rgb)], EncodeOptions(quality=40, match_jpeg=None, update="none"))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "big.gcb"
        path.write_bytes(enc.bundle)
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (big) parent across fork+exec.
        code = ("import sys,time; from common.codec import decode_bundle; t=time.monotonic(); "
                f"r=decode_bundle(open(sys.argv[1],'rb').read(), tile={tile}); dt=time.monotonic()-t; "
                "hwm=[l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; print(dt, hwm)")
        out = subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True, text=True)
    seconds, rss_kb = out.stdout.split()
    return {"width": w, "height": h, "megapixels": round(w * h / 1e6, 2), "generator_used": enc.summary["mode"],
            "decode_seconds": round(float(seconds), 2), "peak_rss_mb": round(int(rss_kb) / 1024, 1),
            "tile": tile}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--bpp", type=float, default=0.5)
    ap.add_argument("--budget-seconds", type=float, default=60.0)
    ap.add_argument("--big-mp", type=float, default=24.0)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--out", default="runs/perf.json")
    args = ap.parse_args(argv)
    images = crops_768x512(args.data, args.images)
    q = quality_for_bpp(images, args.bpp)
    t0 = time.monotonic()
    enc = encode_images(images, EncodeOptions(quality=q, match_jpeg=None, budget_seconds=args.budget_seconds))
    encode_s = time.monotonic() - t0
    s = enc.summary
    mp = s["pixels"] / 1e6
    t0 = time.monotonic()
    decode_bundle(enc.bundle)
    decode_s = time.monotonic() - t0
    ft = s["decision"].get("finetune", {})
    report: dict[str, Any] = {
        "command": "python -m common.perf " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "set": {"images": len(images), "size": "768x512", "megapixels": round(mp, 2), "quality": q,
                "bpp": round(s["bpp"], 4)},
        "finetune": {"seconds": ft.get("seconds"), "steps": ft.get("steps"), "device": ft.get("device"),
                     "seconds_per_megapixel": round((ft.get("seconds") or 0) / mp, 2)},
        "encode_seconds_total": round(encode_s, 1),
        "decision": s["decision"]["chosen"],
        "candidates": s["decision"]["candidates"],
        "bytes": s["bytes"],
        "update_share": round(s["bytes"]["update"] / s["bytes"]["total"], 4),
        "delta_candidate_share": round(s["decision"]["candidates"].get("delta", {}).get("update_bytes", 0)
                                       / s["bytes"]["total"], 4),
        "psnr": {"payload_jpeg": round(s["psnr_payload"], 3), "reconstruction": round(s["psnr_recon"], 3)},
        "decode": {"seconds": round(decode_s, 2), "megapixels_per_second": round(mp / decode_s, 2)},
        "big_image": big_decode_memory(args.big_mp, args.tile),
        "encoder_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
