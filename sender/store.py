"""Durable transfer jobs: one SQLite table (WAL) plus a folder per transfer.

    data_dir/
      sender.db                      transfers table (status, options, images, summary, delivery)
      tmp/                           uploads being written (emptied at start)
      transfers/<id>/uploads/NNN.ext the stored uploads, renamed into place before the 202
      transfers/<id>/bundle.gcb      the bundle, written atomically before status 'delivering'
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

STATUSES = ("queued", "encoding", "training", "delivering", "delivered", "failed")
TERMINAL = frozenset({"delivered", "failed"})
_JSON_COLUMNS = ("options", "images", "summary", "delivery")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transfers (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL,
    options TEXT NOT NULL,
    receiver_url TEXT NOT NULL,
    images TEXT NOT NULL,
    summary TEXT,
    bundle_id TEXT,
    webhook_id TEXT,
    delivery TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS transfers_created ON transfers (created);
"""


class TransferStore:
    """Thread-safe access to the transfers table; JSON columns come back decoded."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir)
        self.tmp_dir = self.root / "tmp"
        self.jobs_dir = self.root / "transfers"
        for d in (self.root, self.tmp_dir, self.jobs_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.root / "sender.db", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def job_dir(self, transfer_id: str) -> Path:
        return self.jobs_dir / transfer_id

    def bundle_path(self, transfer_id: str) -> Path:
        return self.job_dir(transfer_id) / "bundle.gcb"

    def insert(self, transfer_id: str, options: dict[str, Any], receiver_url: str, images: list[dict[str, Any]]) -> None:
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO transfers (id, created, updated, status, options, receiver_url, images, delivery)"
                " VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)",
                (transfer_id, now, now, json.dumps(options), receiver_url, json.dumps(images), json.dumps({})),
            )

    def get(self, transfer_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM transfers WHERE id = ?", (transfer_id,)).fetchone()
        return None if row is None else _decode(row)

    def page(self, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            total = self._db.execute("SELECT COUNT(*) FROM transfers").fetchone()[0]
            rows = self._db.execute(
                "SELECT * FROM transfers ORDER BY created DESC, id LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
        return int(total), [_decode(r) for r in rows]

    def update(self, transfer_id: str, **fields: Any) -> None:
        """Set columns (JSON columns take Python objects) and bump ``updated``, in one transaction."""
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"unknown status {fields['status']!r}")
        cols = {k: (json.dumps(v) if k in _JSON_COLUMNS and v is not None else v) for k, v in fields.items()}
        cols["updated"] = time.time()
        sql = "UPDATE transfers SET " + ", ".join(f"{k} = ?" for k in cols) + " WHERE id = ?"
        with self._lock:
            self._db.execute(sql, (*cols.values(), transfer_id))

    def unfinished(self) -> list[tuple[str, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, status FROM transfers WHERE status NOT IN ('delivered', 'failed') ORDER BY created"
            ).fetchall()
        return [(r["id"], r["status"]) for r in rows]

    def clean_orphans(self) -> int:
        """Remove half-written uploads and folders of transfers that never reached the database."""
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            known = {r[0] for r in self._db.execute("SELECT id FROM transfers")}
        removed = 0
        for d in self.jobs_dir.iterdir():
            if d.name not in known:
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        return removed


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for k in _JSON_COLUMNS:
        if out.get(k) is not None:
            out[k] = json.loads(out[k])
    return out


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a synced temp file and a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
