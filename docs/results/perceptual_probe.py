"""Probe (not part of the package): a perceptual encode of 6 CBSD68 images at a fixed quality with
a pretrained discriminator (see disc_pretrain_probe.py) or one from scratch ("none"); prints bytes
and PSNR and saves the first reconstruction as .npy for a crops figure."""
import fnmatch, json, sys
from pathlib import Path
import numpy as np, torch
from safetensors.torch import load_file
import common.planner as planner
from common.codec import EncodeOptions, decode_bundle, encode_images
from common.imageio import list_images, load_image
from common.metrics import psnr
from common.perceptual import Discriminator, PerceptualObjective
from common.plot import crops_figure
from common.imageio import jpeg_decode, jpeg_encode

dpath, width, q, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
adv = float(sys.argv[5]) if len(sys.argv) > 5 else 5e-3
imgs = [(p.stem, load_image(p)) for p in list_images(Path("../shared/datasets/dev")) if fnmatch.fnmatch(p.name, "cbsd68_*")][:6]
def obj(opts, device):
    if opts.objective != "perceptual":
        return None
    d = None
    if dpath != "none":
        d = Discriminator(width); d.load_state_dict(load_file(dpath))
    return PerceptualObjective(device, discriminator=d, adv_weight=adv, seed=opts.seed)
planner._objective = obj
r = encode_images(imgs, EncodeOptions(quality=q, match_jpeg=None, objective="perceptual"))
dec = decode_bundle(r.bundle).images
ps = [psnr(o, rgb) for o, (_, rgb) in zip(dec, imgs)]
print(json.dumps({"bytes": len(r.bundle), "psnr": float(np.mean(ps)), "ft": r.summary["decision"]["finetune"]}))
np.save(out, dec[0])
