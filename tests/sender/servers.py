"""Test helpers shared by the service tests: uvicorn in a thread, tiny images, settings, polling."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from PIL import Image

SECRET = "whsec_" + "dGVzdC1zZWNyZXQtZm9yLWdhbmNvZGVjLXRlc3Rz"  # base64 of 30 test bytes
OTHER_SECRET = "a-different-secret-of-enough-length"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """Run an ASGI app under a real uvicorn server on a loopback port, in a background thread."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        end = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > end:
                raise RuntimeError(f"uvicorn on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(60)
        if self.thread.is_alive():
            raise RuntimeError(f"uvicorn on port {self.port} did not stop")

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tiny_image(seed: int, w: int = 64, h: int = 48) -> np.ndarray:
    """A small textured RGB test image (gradients plus fixed-seed noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 4 + seed * 10) % 256, (y * 5) % 256, ((x + y) * 3) % 256], -1).astype(np.float64)
    base += rng.normal(0, 12, base.shape)
    return np.clip(base, 0, 255).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def wait_for(fetch: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool],
             timeout: float = 120.0, interval: float = 0.1) -> dict[str, Any]:
    end = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < end:
        last = fetch()
        if done(last):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s; last state: {last}")


def get_json(url: str) -> dict[str, Any]:
    r = httpx.get(url, timeout=10)
    r.raise_for_status()
    out: dict[str, Any] = r.json()
    return out


def tree_files(root: Path) -> dict[str, int]:
    """Every file under ``root`` (relative path → size), to show that a request changed nothing."""
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith((".db", "-wal", "-shm"))}


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the codec on one intra-op thread: on a shared 2-core machine oversubscription is slow."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
