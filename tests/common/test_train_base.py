"""``common.train_base`` on tiny images: it trains, writes loadable weights, and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common import train_base
from common.weights import _load_file, state_sha256


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "train"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / f"t{i}.png")
    return folder


def _train(data: Path, out: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> dict:
    argv = ["--data", str(data), "--out", str(out), "--patch", "32", "--batch", "2", "--threads", "1",
            "--device", "cpu", *extra]
    assert train_base.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_trains_resumes_and_writes_loadable_weights(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sr2-test-v1.safetensors"
    first = _train(data, out, "--scale", "2", "--steps", "3", "--max-minutes", "0", capsys=capsys)
    # --max-minutes 0 stops after the first step (the wall-clock cap), with a checkpoint to resume from
    assert first["steps"] == 1 and torch.load(out.with_suffix(".ckpt"), weights_only=True)["step"] == 1
    report = _train(data, out, "--scale", "2", "--steps", "3", "--resume", capsys=capsys)
    assert report["steps"] == 3 and report["config"]["scale"] == 2
    cfg, state, sha = _load_file(out)
    assert sha == report["sha256"] == state_sha256(state) and cfg.scale == 2


def test_cpu_budget_is_kept_across_resume(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "restore-test-v1.safetensors"
    _train(data, out, "--steps", "2", capsys=capsys)
    ckpt = torch.load(out.with_suffix(".ckpt"), weights_only=True)
    assert ckpt["cpu_s"] > 0
    ckpt["cpu_s"] = 1e6  # pretend the CPU budget is spent: a resumed run must not train further
    torch.save(ckpt, out.with_suffix(".ckpt"))
    report = _train(data, out, "--steps", "50", "--budget", "cpu", "--max-minutes", "1", "--resume", capsys=capsys)
    assert report["steps"] == 2 and report["cpu_minutes"] > 1
