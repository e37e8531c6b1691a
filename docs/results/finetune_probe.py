"""Probe of fine-tuning settings on one image set at one fixed payload quality (not part of the package).

    .venv/bin/python docs/results/finetune_probe.py ../shared/datasets/dev 'cmanga109_*' 20 \\
        '[{"lr": 1e-3, "batch": 4, "patch": 64}, {"lr": 3e-4, "subset": "tail"}]' [BUDGET_S]

For each setting: encode with --update delta, and print the fine-tuned plan's PSNR gain over the
base plan minus its extra bytes priced at the set's JPEG slope (bytes per dB), i.e. the gain at
equal total bytes. Results of the run behind the fine-tune defaults: finetune_probe_manga_q20.jsonl.
"""
import fnmatch, functools, json, sys, time
from pathlib import Path
import common.planner as planner
from common.finetune import FinetuneConfig
from common.codec import EncodeOptions, encode_images
from common.imageio import list_images, load_image

folder, pattern, q = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
configs = json.loads(sys.argv[4])  # [{"lr":..,"subset":..,"batch":..,"patch":..}]
budget = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
imgs = [(p.stem, load_image(p)) for p in list_images(folder) if fnmatch.fnmatch(p.name, pattern)]
for c in configs:
    sub = c.pop("subset", "all")
    planner.FinetuneConfig = functools.partial(FinetuneConfig, **c)
    t = time.time()
    res = encode_images(imgs, EncodeOptions(quality=q, match_jpeg=None, update="delta", subset=sub, budget_seconds=budget))
    d = res.summary["decision"]; cand = d["candidates"]; lam = d["lambda_bytes_per_db"]
    b, t_ = cand["base"], cand["delta"]
    eq = (t_["psnr"] - b["psnr"]) - (t_["total_bytes"] - b["total_bytes"]) / lam
    row = dict(subset=sub, **c, steps=d["finetune"]["steps"], base_psnr=b["psnr"], delta_psnr=t_["psnr"],
               update_bytes=t_["update_bytes"], total_base=b["total_bytes"], total_delta=t_["total_bytes"],
               lam=lam, equal_bytes_gain_db=round(eq, 3), secs=round(time.time() - t, 1))
    print(json.dumps(row), flush=True)
