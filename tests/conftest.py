from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from common.imageio import load_image

SAMPLES = Path(__file__).resolve().parents[1] / "common" / "samples"

torch.set_num_threads(2)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def sample_paths() -> list[Path]:
    return sorted(SAMPLES.glob("*.png"))


@pytest.fixture(scope="session")
def small_images(sample_paths: list[Path]) -> list[tuple[str, np.ndarray]]:
    """Three 96x80 crops of the sample photos (odd-ish sizes on purpose: not multiples of 16)."""
    out = []
    for p in sample_paths:
        rgb = load_image(p)
        out.append((p.stem, np.ascontiguousarray(rgb[60:140, 100:196])))
    return out
