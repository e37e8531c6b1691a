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


class StageBars:
    """A progress callback ``(stage, done, total)`` showing one bar per ``(stage, total)`` on stderr.

    ``finish``: fill a stage's bar to its total when the stage ends (local work always ends its
    stages; a followed remote job may stop reporting mid-stage, so the sender client passes False).
    """

    def __init__(self, *, finish: bool = True, enabled: bool | None = None) -> None:
        self.finish = finish
        self.enabled = enabled
        self.key: tuple[str, int] | None = None
        self.bar: Progress | None = None
        self.step = -1

    def __call__(self, stage: str, done: int, total: int) -> None:
        key = (stage, max(1, total))
        if key != self.key or self.bar is None:
            self.close()
            self.key, self.step = key, -1
            self.bar = Progress(key[1], f"{stage:>10}", enabled=self.enabled)
        if done != self.step:
            self.step = done
            self.bar.update(done)

    def close(self) -> None:
        if self.bar is not None:
            if self.finish:
                self.bar.update(self.bar.total)
            self.bar.close()
        self.bar = None
