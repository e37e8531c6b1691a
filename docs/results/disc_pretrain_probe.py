"""Probe (not part of the package): pretrain the perceptual discriminator against the base
generator's outputs on the train set, so that a per-set GAN fine-tune starts from a critic that
already tells base output from real texture.

    .venv/bin/python docs/results/disc_pretrain_probe.py MINUTES WIDTH OUT.safetensors   # run: 6 16
    .venv/bin/python docs/results/perceptual_probe.py OUT.safetensors 16 20 pre.npy [ADV]  # or "none" 32

Results in the README's perceptual section; the shipped critic is made the same way by
``python -m common.train_disc``.
"""
import random, sys, time
import numpy as np, torch
from safetensors.torch import save_file
from common.imageio import list_images, load_image
from common.perceptual import Discriminator, ragan_d_loss
from common.train_base import sample_batch
from common.weights import load_base_model

minutes, width, out = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.manual_seed(0); rng = random.Random(0)
imgs = [im for im in (load_image(p) for p in list_images("../shared/datasets/train")) if min(im.shape[:2]) >= 96]
g, _ = load_base_model(); g.eval()
d = Discriminator(width).train()
opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.9, 0.99))
t0, step, acc = time.time(), 0, 0.0
while time.time() - t0 < minutes * 60:
    x, y, q = sample_batch(imgs, rng, 8, 96, 5, 60)
    with torch.no_grad():
        fake = g(x, q)
    logits = d(torch.cat([y, fake]))
    loss = ragan_d_loss(logits[:8], logits[8:])
    opt.zero_grad(); loss.backward(); opt.step(); step += 1
    acc = 0.98 * acc + 0.02 * float((logits[:8].mean() > logits[8:].mean()))
    if step % 200 == 0:
        print(step, round(float(loss), 4), round(acc, 3), flush=True)
save_file({k: v.contiguous() for k, v in d.state_dict().items()}, out)
print("saved", out, step, sum(p.numel() for p in d.parameters()))
