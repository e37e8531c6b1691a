"""``make demo``: both services on loopback, the sample images sent end to end, results printed.

Starts ``python -m receiver`` and ``python -m sender`` as child processes (fresh secret, data in
``demo-out/``), posts ``common/samples`` through the sender, follows the transfer, downloads the
reconstructions from the receiver into ``demo-out/reconstructed/``, checks their PSNR against the
originals, and stops both services. Uses only HTTP: it is a client of the two services.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from .imageio import list_images, load_image
from .metrics import psnr
from .sendcli import follow, format_report

SAMPLES = Path(__file__).parent / "samples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(module: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], seconds: float = 90.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited with code {proc.returncode}; see its log in demo-out/")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not become healthy in {seconds:.0f} s")


def fetch_reconstructions(receiver: str, bundle_id: str, out: Path, timeout: float = 300) -> list[Path]:
    end = time.monotonic() + timeout
    with httpx.Client(base_url=receiver, timeout=30) as c:
        while True:
            info = c.get(f"/v1/bundles/{bundle_id}").json()
            if info["status"] in ("reconstructed", "failed") or time.monotonic() > end:
                break
            time.sleep(0.5)
        if info["status"] != "reconstructed":
            raise SystemExit(f"receiver: bundle {bundle_id} is {info['status']}: {info.get('error')}")
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for im in info["images"]:
            for variant, suffix in (("png", ".png"), ("jpeg", ".jpg")):
                r = c.get(f"/v1/bundles/{bundle_id}/images/{im['name']}", params={"variant": variant})
                r.raise_for_status()
                p = out / f"{im['name']}{suffix}"
                p.write_bytes(r.content)
                if variant == "png":
                    paths.append(p)
        return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(SAMPLES), help="folder of images to send")
    ap.add_argument("--out", default="demo-out")
    ap.add_argument("--budget-seconds", type=float, default=20.0, help="fine-tune budget (demo default 20 s)")
    ap.add_argument("--match-jpeg", type=int, default=75)
    args = ap.parse_args(argv)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    secret = secrets.token_urlsafe(32)
    sp, rp = free_port(), free_port()
    sender, receiver = f"http://127.0.0.1:{sp}", f"http://127.0.0.1:{rp}"
    env = dict(os.environ, SENDER_SECRET=secret, RECEIVER_SECRET=secret, SENDER_RECEIVER_URL=receiver,
               SENDER_DATA_DIR=str(out / "sender-data"), RECEIVER_DATA_DIR=str(out / "receiver-data"))
    print(f"starting receiver on {receiver} and sender on {sender} (logs in {out}/)")
    procs = [start("receiver", rp, env, out / "receiver.log"), start("sender", sp, env, out / "sender.log")]
    try:
        wait_healthy(receiver, procs[0])
        wait_healthy(sender, procs[1])
        files = list_images(args.images)
        print(f"sending {len(files)} images from {args.images} (match JPEG q{args.match_jpeg}, "
              f"fine-tune budget {args.budget_seconds:g} s)")
        with httpx.Client(base_url=sender, timeout=httpx.Timeout(60.0, connect=10.0)) as c:
            r = c.post("/v1/transfers",
                       data={"match_jpeg": str(args.match_jpeg), "budget_seconds": str(args.budget_seconds)},
                       files=[("files", (f.name, f.read_bytes(), "application/octet-stream")) for f in files])
            if r.status_code != 202:
                raise SystemExit(f"sender refused the upload ({r.status_code}): {r.text[:300]}")
            final = follow(c, r.json()["id"], 1800)
        print(format_report(final))
        if final.get("status") != "delivered":
            return 1
        recs = fetch_reconstructions(receiver, final["bundle_id"], out / "reconstructed")
        print(f"\nreconstructions from the receiver, checked against the originals ({out}/reconstructed/):")
        originals = {p.stem: load_image(p) for p in files}
        scores = []
        for path in recs:
            ref = originals.get(path.stem)
            if ref is None:
                continue
            rec, jpg = load_image(path), load_image(path.with_suffix(".jpg"))
            scores.append(psnr(rec, ref))
            print(f"  {path.name:<24} JPEG payload {psnr(jpg, ref):6.2f} dB -> reconstruction "
                  f"{scores[-1]:6.2f} dB")
        mean = np.mean(scores)
        print(f"mean reconstruction PSNR {mean:.2f} dB; "
              f"bundle {final['result']['bytes']['total']} B vs plain JPEG q{args.match_jpeg} "
              f"{final['result']['ref_jpeg_bytes']} B (saving {final['result']['saving']:+.1%})")
        return 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        print("services stopped")


if __name__ == "__main__":
    raise SystemExit(main())
