"""Probe of how to make the weight update pay (not part of the package).

    .venv/bin/python docs/results/update_probe.py ../shared/datasets/dev 'cmanga109_*' 20 \
        '[{}, {"qat_step": 0.0625, "qat_frac": 0.3}, {"l1": 1e-7}]' [BUDGET_S]

Fine-tunes the restore base on one set at one payload quality with each variant (float; a
quantisation-aware last ``qat_frac`` of the budget at ``qat_step``; an L1 pull towards the base),
then for every step 2^-4 .. 2^-8 codes the delta, rebuilds it as the receiver does, and measures
bytes and full-image PSNR gain over the base. ``eq`` is the gain at equal total bytes (gain minus
bytes priced at the set's JPEG slope); ``best`` is the best ``eq`` within a 5 % update share.
Results of the run behind the QAT default: update_probe_manga_q20.jsonl.
"""
import fnmatch, json, math, random, sys, time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from common.finetune import _crop_batch
from common.generator import build_generator, load_state_strict
from common.imageio import list_images, load_image
from common.infer import restore
from common.metrics import psnr
from common.search import SetImage, jpeg_slope
from common.update import decode_update, encode_delta
from common.weights import load_base

folder, pattern, q = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
variants = json.loads(sys.argv[4])
budget = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
torch.set_num_threads(2)
imgs = [SetImage(p.stem, load_image(p)) for p in list_images(folder) if fnmatch.fnmatch(p.name, pattern)]
cfg, base, _ = load_base("restore-v1")
lam = jpeg_slope(imgs, [q] * len(imgs))
jpeg_bytes = sum(len(im.payload(q)[0]) for im in imgs)


def model_of(state):
    m = build_generator(cfg)
    load_state_strict(m, state)
    return m.eval()


def full_psnr(state):
    m = model_of(state)
    return float(np.mean([psnr(restore(m, im.payload(q)[1], q=q), im.rgb) for im in imgs]))


p_base = full_psnr(base)
print(json.dumps({"q": q, "lam": round(lam), "jpeg_bytes": jpeg_bytes, "base_psnr": round(p_base, 4)}), flush=True)


def qdelta(d, s):
    return torch.round(d / s) * s


def run(v):
    lr, batch, patch = v.get("lr", 1e-3), v.get("batch", 4), v.get("patch", 64)
    l1 = v.get("l1", 0.0)
    qat_step, qat_frac = v.get("qat_step"), v.get("qat_frac", 0.0)
    rng = random.Random(0)
    torch.manual_seed(0)
    tensors = [(torch.from_numpy(np.array(im.payload(q)[1])).permute(2, 0, 1).float().div(255),
                torch.from_numpy(np.array(im.rgb)).permute(2, 0, 1).float().div(255), q) for im in imgs]
    model = model_of(base).train()
    b0 = {k: t.clone() for k, t in base.items()}
    params = dict(model.named_parameters())
    opt = torch.optim.Adam(params.values(), lr=lr)
    t0, step = time.monotonic(), 0
    while True:
        el = time.monotonic() - t0
        if el >= budget:
            break
        frac = el / budget
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * frac))
        x, y, qq = _crop_batch(tensors, rng, batch, patch, 1, model.multiple)
        if qat_step and frac >= 1 - qat_frac:
            qp = {n: b0[n] + (p - b0[n]) + (qdelta(p - b0[n], qat_step) - (p - b0[n])).detach() for n, p in params.items()}
            out = functional_call(model, qp, (x, qq))
        else:
            out = model(x, qq)
        loss = F.mse_loss(out, y)
        if l1:
            loss = loss + l1 * sum((p - b0[n]).abs().sum() for n, p in params.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
    model.eval()
    tuned = {k: t.detach().clone() for k, t in model.state_dict().items()}
    p_tuned = full_psnr(tuned)
    template = build_generator(cfg).state_dict()
    rows = []
    steps = v.get("eval_steps") or [2.0 ** (-k / 2) for k in range(8, 17)]
    for s in steps:
        qd = {n: torch.round((tuned[n] - base[n]) / s).to(torch.int64).numpy() for n in tuned}
        header, data = encode_delta(qd, s)
        st = decode_update(header, data, template, base)
        g = full_psnr(st) - p_base
        rows.append({"step": round(s, 5), "bytes": len(data), "gain": round(g, 4),
                     "eq": round(g - len(data) / lam, 4), "share": round(len(data) / (len(data) + jpeg_bytes), 4)})
    capped = [r for r in rows if r["share"] <= 0.05]
    best = max(capped or rows, key=lambda r: r["eq"])
    return {"variant": v, "steps": step, "unquant_gain": round(p_tuned - p_base, 4), "best": best, "rows": rows}


for v in variants:
    t = time.time()
    r = run(v)
    r["secs"] = round(time.time() - t, 1)
    print(json.dumps(r), flush=True)
