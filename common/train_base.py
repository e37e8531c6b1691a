"""Train a shared base generator on a folder of images over a range of JPEG qualities.

    python -m common.train_base --data ../shared/datasets/train --out common/weights/restore-v1.safetensors
    python -m common.train_base --data ../shared/datasets/train --scale 4 --patch 192 \
        --out common/weights/sr4-v1.safetensors

``--arch`` picks any registered generator (``--channels``/``--blocks`` default to its defaults at
``--scale``). For ``--scale 2|4`` the input is the antialiased downsample of the crop (as the sender
makes it), JPEG-compressed; a ``--clean`` fraction of samples skips the JPEG (quality 100 is passed),
so the base also works as a plain super-resolution network.

Seeded and resumable (``--resume`` continues from the checkpoint next to ``--out``). Uses CUDA
when available. Training pairs are random crops, JPEG-compressed with the payload settings at a
random quality in ``--qmin..--qmax``, so the generator sees the same artefacts the sender makes.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .finetune import pick_device
from .generator import Generator, build_generator, default_config
from .imageio import downsample, jpeg_decode, jpeg_encode, list_images, load_image
from .metrics import psnr
from .progress import Progress
from .weights import save_weights

log = logging.getLogger(__name__)


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    return jpeg_decode(jpeg_encode(rgb, quality))


def sample_batch(
    images: list[np.ndarray], rng: random.Random, batch: int, patch: int, qmin: int, qmax: int,
    qpower: float = 1.0, scale: int = 1, clean: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random crops: degraded (N,3,patch/scale,patch/scale), clean (N,3,patch,patch), float32 in
    [0,1], and qualities (N,).

    Qualities are drawn as qmin + (qmax - qmin)·u^qpower (qpower 1: uniform, as restore-v1 was
    trained; > 1 favours low qualities); with probability ``clean`` a sample is not compressed
    (quality 100 is reported for it).
    """
    xs, ys, qs = [], [], []
    for _ in range(batch):
        img = images[rng.randrange(len(images))]
        h, w = img.shape[:2]
        y0, x0 = rng.randrange(h - patch + 1), rng.randrange(w - patch + 1)
        crop = img[y0 : y0 + patch, x0 : x0 + patch]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = crop[::-1]
        crop = np.ascontiguousarray(crop)
        q = round(qmin + (qmax - qmin) * rng.random() ** qpower)
        small = downsample(crop, scale)
        if clean and rng.random() < clean:
            q = 100
            xs.append(small)
        else:
            xs.append(jpeg_roundtrip(small, q))
        qs.append(float(q))
        ys.append(crop)
    def to_t(a: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float().div_(255.0)
    return to_t(xs), to_t(ys), torch.tensor(qs)


def _u8(t: torch.Tensor) -> np.ndarray:
    return t.clamp(0, 1).mul(255).round().byte()[0].permute(1, 2, 0).cpu().numpy()


def evaluate(model: Generator, images: list[np.ndarray], quality: int, device: torch.device) -> dict:
    """Mean PSNR at one payload quality of the payload as received (bicubic-upsampled for SR) and
    of the generator output."""
    pj, pg = [], []
    s = model.cfg.scale
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for img in images:
            h, w = img.shape[:2]
            small = downsample(img, s)
            dec = small if quality >= 100 else jpeg_roundtrip(small, quality)
            x = torch.from_numpy(np.array(dec)).permute(2, 0, 1)[None].float().div(255).to(device)
            qt = torch.tensor([float(quality)], device=device)
            pj.append(psnr(_u8(model.upsample(x))[:h, :w], img))
            pg.append(psnr(_u8(model(x, qt))[:h, :w], img))
    model.train(was_training)
    return {"quality": quality, "psnr_payload": float(np.mean(pj)), "psnr_gen": float(np.mean(pg)),
            "gain_db": float(np.mean(pg) - np.mean(pj))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder of training images")
    ap.add_argument("--val", help="folder of validation images (figures printed at the end)")
    ap.add_argument("--out", default="common/weights/restore-v1.safetensors")
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--max-minutes", type=float, default=55.0, help="stop (and checkpoint) after this")
    ap.add_argument("--budget", choices=("steps", "cpu"), default="steps",
                    help="steps: the schedule runs over --steps (stop early at --max-minutes wall time); "
                         "cpu: it runs over --max-minutes of this process's CPU time, so runs sharing a "
                         "machine get equal compute (used for the architecture comparison)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=96)
    ap.add_argument("--qmin", type=int, default=5)
    ap.add_argument("--qmax", type=int, default=90)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--arch", default="srvgg", help="generator architecture (common/archs/)")
    ap.add_argument("--scale", type=int, default=1, choices=(1, 2, 4), help="1: restore, 2: sr2, 4: sr4")
    ap.add_argument("--channels", type=int, help="width (default: the arch's default at --scale)")
    ap.add_argument("--blocks", type=int, help="depth (default: the arch's default at --scale)")
    ap.add_argument("--clean", type=float, default=0.0, help="fraction of samples without JPEG (SR bases)")
    ap.add_argument("--qcond", type=int, default=0, choices=(0, 1), help="condition on the JPEG quality")
    ap.add_argument("--qpower", type=float, default=1.0, help="quality sampling exponent (1 = uniform)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--resume", action="store_true", help="continue from OUT.ckpt if present")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    cfg = default_config(args.arch, args.scale, channels=args.channels, blocks=args.blocks,
                         **({"qcond": 1} if args.qcond else {}))
    if args.patch % (args.scale * build_generator(cfg).multiple):
        ap.error(f"--patch {args.patch} must be a multiple of scale x the arch's input multiple")
    model = build_generator(cfg, train_form=True).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    out = Path(args.out)
    ckpt = out.with_suffix(".ckpt")
    step, cpu_before = 0, 0.0  # CPU seconds spent by earlier runs (so --budget cpu resumes its schedule)
    if args.resume and ckpt.exists():
        # Our own checkpoint file; weights_only refuses arbitrary pickled objects.
        st = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = int(st["step"])
        cpu_before = float(st.get("cpu_s", 0.0))
        rng.seed(args.seed + step)
        torch.manual_seed(args.seed + step)
        log.info("resumed from %s at step %d", ckpt, step)

    paths = list_images(args.data)
    if not paths:
        ap.error(f"no images in {args.data}")
    images = [im for im in (load_image(p) for p in paths) if min(im.shape[:2]) >= args.patch]
    log.info("training %s on %d images, device %s, %d params", cfg, len(images), device,
             sum(p.numel() for p in model.parameters()))

    t0, c0 = time.monotonic(), time.process_time()

    def cpu_s() -> float:
        return cpu_before + time.process_time() - c0

    def progress_frac() -> float:
        if args.budget == "cpu":
            return min(1.0, cpu_s() / 60 / args.max_minutes)
        return step / args.steps
    bar = Progress(args.steps, "train", initial=step)
    loss_avg = 0.0
    while step < args.steps:
        frac = progress_frac()
        if args.budget == "cpu" and frac >= 1.0:
            break
        lr = 1e-5 + 0.5 * (args.lr - 1e-5) * (1 + math.cos(math.pi * frac))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y, q = sample_batch(images, rng, args.batch, args.patch, args.qmin, args.qmax, args.qpower,
                               args.scale, args.clean)
        x, y, q = x.to(device), y.to(device), q.to(device)
        pred = model(x, q)
        # L1 first for robust early progress, MSE (= PSNR) for the last third.
        loss = F.l1_loss(pred, y) if frac < 2 / 3 else F.mse_loss(pred, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        loss_avg = 0.98 * loss_avg + 0.02 * float(loss.detach())
        bar.update(step, f"loss {loss_avg:.4f} lr {lr:.1e}")
        if step % 250 == 0 or step == args.steps:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "cpu_s": cpu_s()}, ckpt)
            save_weights(model.cpu().deploy_state(), cfg, out, extra={"train_step": step})
            model.to(device)
        if args.budget == "steps" and (time.monotonic() - t0) / 60 > args.max_minutes:
            log.info("time budget reached at step %d; rerun with --resume to continue", step)
            break
    bar.close()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "cpu_s": cpu_s()}, ckpt)
    sha = save_weights(model.cpu().deploy_state(), cfg, out, extra={"train_step": step})
    report: dict = {"weights": str(out), "sha256": sha, "steps": step,
                    "minutes": round((time.monotonic() - t0) / 60, 1), "cpu_minutes": round(cpu_s() / 60, 1),
                    "config": cfg.to_dict()}
    if args.val:
        val = [load_image(p) for p in list_images(args.val)]
        ship = build_generator(cfg)
        ship.load_state_dict(model.deploy_state())
        report["val"] = [evaluate(ship, val, q, torch.device("cpu")) for q in (10, 20, 40, 75, 100)]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
