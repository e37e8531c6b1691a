"""Super-resolution figures of the shipped SR bases alone: no JPEG, no fine-tuning.

    python -m common.srbench --data ../shared/datasets/dev --out docs/results/sr_ypsnr.json

For each set (Set5, Set14 by file-name pattern) and scale (2, 4): the image is cropped to a
multiple of the scale (the literature's "modcrop"), downsampled with the sender's antialiased
bicubic (:func:`common.imageio.downsample`), then upsampled by plain bicubic and by the base
generator. Luma PSNR (BT.601 Y, ``shave`` = scale border pixels), as in the SR literature's tables.
Our downsampler is Pillow's, not MATLAB's ``imresize``, so the bicubic row is the anchor to compare
against, not the published bicubic figures.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .imageio import downsample, list_images, load_image
from .infer import restore, to_tensor, to_uint8
from .metrics import y_psnr
from .planner import base_name
from .weights import load_base_model

SETS = {"Set5": "cset5_*", "Set14": "cset14_*"}
PUBLISHED_X4 = {"bicubic": {"Set5": 28.42, "Set14": 26.00}, "SRCNN": {"Set5": 30.48, "Set14": 27.49},
                "SRResNet": {"Set5": 32.05, "Set14": 28.49}}


def evaluate(folder: Path, pattern: str, scale: int, arch: str = "srvgg") -> dict[str, Any]:
    model, sha = load_base_model(base_name(f"sr{scale}", arch))
    rows = []
    for p in (p for p in list_images(folder) if fnmatch.fnmatch(p.name, pattern)):
        hr = load_image(p)
        h, w = hr.shape[:2]
        hr = hr[: h - h % scale, : w - w % scale]
        lr = downsample(hr, scale)
        with torch.inference_mode():
            bic = to_uint8(model.upsample(to_tensor(lr)))
        gen = restore(model, lr, q=100)
        rows.append({"image": p.name, "bicubic": y_psnr(bic, hr, scale), "generator": y_psnr(gen, hr, scale)})
    if not rows:
        raise SystemExit(f"srbench: no images matching {pattern!r} in {folder}")
    b, g = float(np.mean([r["bicubic"] for r in rows])), float(np.mean([r["generator"] for r in rows]))
    return {"scale": scale, "images": len(rows), "base_sha256": sha, "bicubic_y_psnr": b, "generator_y_psnr": g,
            "gain_db": g - b, "per_image": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m common.srbench", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="folder holding cset5_* and cset14_* images")
    ap.add_argument("--arch", default="srvgg")
    ap.add_argument("--out", required=True, help="results JSON")
    args = ap.parse_args(argv)
    res: dict[str, Any] = {"command": ["python", "-m", "common.srbench", *(argv or sys.argv[1:])],
                           "published_x4": PUBLISHED_X4, "results": {}}
    print(f"{'set':<6} {'scale':>5} {'bicubic':>8} {'generator':>9} {'gain':>6}   (Y-PSNR dB, no JPEG)")
    for name, pattern in SETS.items():
        for scale in (2, 4):
            r = evaluate(Path(args.data), pattern, scale, args.arch)
            res["results"][f"{name}_x{scale}"] = r
            print(f"{name:<6} {'x' + str(scale):>5} {r['bicubic_y_psnr']:8.2f} {r['generator_y_psnr']:9.2f} "
                  f"{r['gain_db']:+6.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
