"""Pretrain the perceptual objective's discriminator against the base generator's outputs.

    python -m common.train_disc --data ../shared/datasets/train --minutes 6 \
        --out common/weights/discriminator/disc16-v1.safetensors

The critic learns, on random crops of the train set JPEG-compressed at qualities ``--qmin..--qmax``,
to tell the restore base's output from the original (relativistic average loss, as in the per-set
GAN fine-tune). A per-set perceptual fine-tune then starts from a critic that already knows what
the base smooths away, instead of one that spends the 60 s budget learning it. Sender-only: it
never enters a bundle. Seeded; CUDA when available; stops after ``--minutes`` of wall time.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from .finetune import pick_device
from .imageio import list_images, load_image
from .perceptual import Discriminator, ragan_d_loss
from .progress import Progress
from .train_base import sample_batch
from .weights import load_base_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder of training images")
    ap.add_argument("--out", default="common/weights/discriminator/disc16-v1.safetensors")
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=96)
    ap.add_argument("--qmin", type=int, default=5)
    ap.add_argument("--qmax", type=int, default=60)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--base", default="restore-v1", help="the generator whose outputs are the fakes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    if args.minutes <= 0 or args.width < 1:
        ap.error("--minutes and --width must be positive")
    device = pick_device(args.device)
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    images = [im for im in (load_image(p) for p in list_images(args.data)) if min(im.shape[:2]) >= args.patch]
    if not images:
        ap.error(f"no images of at least {args.patch}x{args.patch} in {args.data}")
    gen, _ = load_base_model(args.base)
    gen = gen.to(device).eval()
    disc = Discriminator(args.width).to(device).train()
    opt = torch.optim.Adam(disc.parameters(), lr=args.lr, betas=(0.9, 0.99))
    t0, step, acc = time.monotonic(), 0, 0.0
    budget = 60 * args.minutes
    bar = Progress(1000, "train")
    while time.monotonic() - t0 < budget:
        x, y, q = sample_batch(images, rng, args.batch, args.patch, args.qmin, args.qmax)
        x, y, q = x.to(device), y.to(device), q.to(device)
        with torch.no_grad():
            fake = gen(x, q)
        logits = disc(torch.cat([y, fake]))
        loss = ragan_d_loss(logits[: args.batch], logits[args.batch :])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        acc = 0.98 * acc + 0.02 * float(logits[: args.batch].mean() > logits[args.batch :].mean())
        bar.update(min(999, int(1000 * (time.monotonic() - t0) / budget)), f"loss {float(loss.detach()):.4f} acc {acc:.2f}")
    bar.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    meta = {"width": str(args.width), "steps": str(step), "base": args.base, "seed": str(args.seed)}
    save_file({k: v.detach().cpu().contiguous() for k, v in disc.state_dict().items()}, str(tmp), metadata=meta)
    tmp.chmod(0o644)
    tmp.replace(out)
    print(json.dumps({"weights": str(out), "steps": step, "minutes": round((time.monotonic() - t0) / 60, 1),
                      "width": args.width, "params": sum(p.numel() for p in disc.parameters()),
                      "real_beats_fake_rate": round(acc, 3)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
