"""Durable received bundles: SQLite (WAL) metadata plus a folder per bundle.

    data_dir/
      receiver.db                       bundles (status, images, metrics) + deliveries (webhook-id → bundle)
      tmp/                              bundles being written (emptied at start)
      bundles/<bundle_id>/bundle.gcb    the raw bundle, renamed into place before the 202
      bundles/<bundle_id>/NNN.jpg       the received JPEG payloads (index NNN as in the bundle)
      bundles/<bundle_id>/NNN.png       the reconstructions
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

STATUSES = ("received", "reconstructing", "reconstructed", "failed")
_JSON_COLUMNS = ("images", "info")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bundles (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL,
    size INTEGER NOT NULL,
    mode TEXT NOT NULL,
    info TEXT NOT NULL,
    images TEXT NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS bundles_created ON bundles (created);
CREATE TABLE IF NOT EXISTS deliveries (
    msg_id TEXT PRIMARY KEY,
    bundle_id TEXT NOT NULL,
    created REAL NOT NULL
);
"""


class BundleStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir)
        self.tmp_dir = self.root / "tmp"
        self.bundles_dir = self.root / "bundles"
        for d in (self.root, self.tmp_dir, self.bundles_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._db = sqlite3.connect(self.root / "receiver.db", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self.lock:
            self._db.close()

    def bundle_dir(self, bundle_id: str) -> Path:
        return self.bundles_dir / bundle_id

    def bundle_path(self, bundle_id: str) -> Path:
        return self.bundle_dir(bundle_id) / "bundle.gcb"

    def known_message(self, msg_id: str) -> str | None:
        with self.lock:
            row = self._db.execute("SELECT bundle_id FROM deliveries WHERE msg_id = ?", (msg_id,)).fetchone()
        return None if row is None else str(row[0])

    def exists(self, bundle_id: str) -> bool:
        with self.lock:
            return self._db.execute("SELECT 1 FROM bundles WHERE id = ?", (bundle_id,)).fetchone() is not None

    def record_message(self, msg_id: str | None, bundle_id: str) -> None:
        if msg_id:
            with self.lock:
                self._db.execute("INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?)", (msg_id, bundle_id, time.time()))

    def insert(self, bundle_id: str, msg_id: str | None, size: int, mode: str, info: dict[str, Any],
               images: list[dict[str, Any]]) -> None:
        now = time.time()
        with self.lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO bundles (id, created, updated, status, size, mode, info, images)"
                    " VALUES (?, ?, ?, 'received', ?, ?, ?, ?)",
                    (bundle_id, now, now, size, mode, json.dumps(info), json.dumps(images)),
                )
                if msg_id:
                    self._db.execute("INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?)", (msg_id, bundle_id, now))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get(self, bundle_id: str) -> dict[str, Any] | None:
        with self.lock:
            row = self._db.execute("SELECT * FROM bundles WHERE id = ?", (bundle_id,)).fetchone()
        return None if row is None else _decode(row)

    def page(self, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
        with self.lock:
            total = self._db.execute("SELECT COUNT(*) FROM bundles").fetchone()[0]
            rows = self._db.execute(
                "SELECT * FROM bundles ORDER BY created DESC, id LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
        return int(total), [_decode(r) for r in rows]

    def update(self, bundle_id: str, **fields: Any) -> None:
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"unknown status {fields['status']!r}")
        cols = {k: (json.dumps(v) if k in _JSON_COLUMNS else v) for k, v in fields.items()}
        cols["updated"] = time.time()
        with self.lock:
            self._db.execute("UPDATE bundles SET " + ", ".join(f"{k} = ?" for k in cols) + " WHERE id = ?",
                             (*cols.values(), bundle_id))

    def pending(self) -> list[str]:
        with self.lock:
            rows = self._db.execute(
                "SELECT id FROM bundles WHERE status IN ('received', 'reconstructing') ORDER BY created"
            ).fetchall()
        return [r[0] for r in rows]

    def counts(self) -> dict[str, int]:
        with self.lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM bundles GROUP BY status").fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def clean_orphans(self) -> int:
        """Drop half-written bundles and folders whose database row was never committed."""
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        with self.lock:
            known = {r[0] for r in self._db.execute("SELECT id FROM bundles")}
        removed = 0
        for d in self.bundles_dir.iterdir():
            if d.name not in known:
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        return removed


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for k in _JSON_COLUMNS:
        out[k] = json.loads(out[k])
    return out


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (so a rename into it survives a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
