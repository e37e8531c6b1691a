"""A dependency-free progress bar on stderr (quiet when stderr is not a terminal)."""

from __future__ import annotations

import sys
import time


class Progress:
    """``Progress(total, label)``; call ``update(done, note)``; ``close()`` at the end."""

    def __init__(self, total: int, label: str, *, initial: int = 0, enabled: bool | None = None) -> None:
        self.total = max(1, total)
        self.label = label
        self.t0 = time.monotonic()
        self.start = initial
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = 0.0
        self._every = 0.2 if self.enabled else 30.0
        self._log = not self.enabled and enabled is None

    def update(self, done: int, note: str = "") -> None:
        now = time.monotonic()
        if now - self._last < self._every and done < self.total:
            return
        self._last = now
        rate = (done - self.start) / max(now - self.t0, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        frac = done / self.total
        bar = "#" * int(30 * frac)
        line = f"{self.label} [{bar:<30}] {done}/{self.total} eta {eta:5.0f}s {note}"
        if self.enabled:
            sys.stderr.write("\r" + line[:160])
            sys.stderr.flush()
        elif self._log:
            sys.stderr.write(line + "\n")

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()
