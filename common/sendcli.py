"""``gancodec send DIR --sender URL``: upload a folder to the sender and follow the transfer.

Progress goes to stderr (a bar on a terminal); the result goes to stdout, as a per-image table
or, with ``--json``, as the sender's final transfer JSON. Exit status: 0 delivered, 1 failed or
refused, 2 usage error (no images, sender unreachable).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from .imageio import list_images
from .progress import StageBars

TERMINAL = ("delivered", "failed")


def build_parser(prog: str = "gancodec send") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Send a folder of images through the sender service.")
    p.add_argument("folder", type=Path, help="folder of images (PNG, JPEG, BMP, WebP, TIFF)")
    p.add_argument("--sender", default=os.environ.get("GANCODEC_SENDER", "http://127.0.0.1:8000"),
                   help="sender base URL (default: $GANCODEC_SENDER or http://127.0.0.1:8000)")
    q = p.add_mutually_exclusive_group()
    q.add_argument("--match-jpeg", type=int, metavar="Q", help="match plain JPEG at quality Q (default 75)")
    q.add_argument("--quality", type=int, metavar="Q", help="fixed payload JPEG quality")
    p.add_argument("--mode", help="codec mode: restore | sr2 | sr4 | auto | jpeg (default auto)")
    p.add_argument("--arch", help="generator architecture (default srvgg)")
    p.add_argument("--channels", type=int, help="generator width (no shipped base: needs --update full)")
    p.add_argument("--blocks", type=int, help="generator depth (same rule)")
    p.add_argument("--objective", help="fidelity | perceptual (default fidelity)")
    p.add_argument("--alpha", type=float, help="perceptual: base (0) .. perceptual generator (1)")
    p.add_argument("--update", help="auto | none | delta | full (default auto)")
    p.add_argument("--budget-seconds", type=float, metavar="S", help="fine-tune time budget")
    p.add_argument("--receiver-url", help="deliver to this receiver instead of the sender's default")
    p.add_argument("--no-follow", action="store_true", help="print the transfer id and return at once")
    p.add_argument("--timeout", type=float, default=3600.0, help="give up following after S seconds")
    p.add_argument("--json", action="store_true", help="print the final transfer as JSON")
    return p


def send_main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    files = list_images(args.folder) if args.folder.is_dir() else []
    if not files:
        print(f"error: no images (png, jpg, bmp, webp, tif) in {args.folder}", file=sys.stderr)
        return 2
    fields = {"match_jpeg": args.match_jpeg, "quality": args.quality, "mode": args.mode, "update": args.update,
              "budget_seconds": args.budget_seconds, "receiver_url": args.receiver_url, "arch": args.arch,
              "channels": args.channels, "blocks": args.blocks, "objective": args.objective, "alpha": args.alpha}
    data = {k: str(v) for k, v in fields.items() if v is not None}
    base = args.sender.rstrip("/")
    with httpx.Client(base_url=base, timeout=httpx.Timeout(60.0, connect=10.0)) as client:
        try:
            handles = [f.open("rb") for f in files]
            try:
                r = client.post("/v1/transfers", data=data,
                                files=[("files", (f.name, h, "application/octet-stream")) for f, h in zip(files, handles, strict=True)])
            finally:
                for h in handles:
                    h.close()
        except httpx.TransportError as e:
            print(f"error: cannot reach the sender at {base}: {e}", file=sys.stderr)
            return 2
        if r.status_code != 202:
            print(f"error: sender refused the upload ({r.status_code}): {_detail(r)}", file=sys.stderr)
            return 1
        tid = r.json()["id"]
        print(f"transfer {tid}: {len(files)} images accepted", file=sys.stderr)
        if args.no_follow:
            print(json.dumps({"id": tid}) if args.json else tid)
            return 0
        final = follow(client, tid, args.timeout)
    if args.json:
        print(json.dumps(final, indent=2))
    else:
        print(format_report(final))
    return 0 if final.get("status") == "delivered" else 1


def follow(client: httpx.Client, tid: str, timeout: float) -> dict[str, Any]:
    """Follow the transfer's event stream (polling if the stream drops) until it ends."""
    end = time.monotonic() + timeout
    bar = _Bars()
    state: dict[str, Any] = {}
    try:
        for state in _events(client, tid):
            bar.show(state)
            if state["status"] in TERMINAL:
                return state
    except (httpx.TransportError, httpx.HTTPStatusError, ValueError):
        pass  # fall back to polling below
    while time.monotonic() < end:
        r = client.get(f"/v1/transfers/{tid}")
        r.raise_for_status()
        state = r.json()
        bar.show(state)
        if state["status"] in TERMINAL:
            break
        time.sleep(1.0)
    bar.close()
    return state


def _events(client: httpx.Client, tid: str) -> Iterator[dict[str, Any]]:
    timeout = httpx.Timeout(10.0, read=60.0)
    with client.stream("GET", f"/v1/transfers/{tid}/events", timeout=timeout) as r:
        r.raise_for_status()
        event = "message"
        data: list[str] = []
        for line in r.iter_lines():
            if line.startswith(":"):
                continue
            if line == "":
                if data and event in ("transfer", "done"):
                    yield json.loads("\n".join(data))
                event, data = "message", []
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())


class _Bars:
    """Status changes as lines, then one progress bar per stage (training steps, measuring, ...)."""

    def __init__(self) -> None:
        self.bars = StageBars(finish=False)
        self.status = ""

    def show(self, state: dict[str, Any]) -> None:
        if state.get("status") != self.status:
            self.status = state.get("status", "")
            if self.bars.bar is None:
                print(f"status: {self.status}", file=sys.stderr)
        p = state.get("progress")
        if not p or int(p.get("total") or 0) <= 1:
            return
        self.bars(p["stage"], int(p["step"]), int(p["total"]))

    def close(self) -> None:
        self.bars.close()


def format_report(t: dict[str, Any]) -> str:
    """A per-image table and the totals against plain JPEG."""
    lines = [f"transfer {t.get('id')}: {t.get('status')}"]
    if t.get("error"):
        lines.append(f"error: {t['error']}")
    res = t.get("result")
    if not res:
        return "\n".join(lines)
    total = res["bytes"]["total"]
    lines.append(f"{'image':<24} {'size':>9} {'JPEG ref B':>10} {'q':>3} {'payload B':>9} {'share':>6} "
                 f"{'PSNR ref':>8} {'payload':>8} {'recon':>8}")
    for im in res["images"]:
        lines.append(
            f"{im['name'][:24]:<24} {im['width']:>4}x{im['height']:<4} {im['ref_jpeg_bytes']:>10} {im['quality']:>3} "
            f"{im['jpeg_bytes']:>9} {im['jpeg_bytes'] / total:>6.1%} {im['psnr_ref']:>8.2f} "
            f"{im['psnr_payload']:>8.2f} {im['psnr']:>8.2f}")
    b = res["bytes"]
    lines.append(f"bundle {total} B (JPEG {b['jpeg']} + update {b['update']} + header {b['header']}), "
                 f"{res['bpp']:.3f} bpp; plain JPEG at equal PSNR: {res['ref_jpeg_bytes']} B; "
                 f"saving {res['saving']:+.1%}; plan: {res.get('decision', {}).get('chosen', '?')}")
    receiver = (t.get("delivery") or {}).get("receiver")
    if receiver:
        lines.append(f"receiver answered: {json.dumps(receiver)}")
    return "\n".join(lines)


def _detail(r: httpx.Response) -> str:
    try:
        return str(r.json().get("detail", r.text))
    except ValueError:
        return r.text[:300]


if __name__ == "__main__":
    sys.exit(send_main())
