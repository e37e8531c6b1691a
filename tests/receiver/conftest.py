"""Receiver test fixtures: real bundles from the real codec (tiny images, made once per session)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from common.bundle import new_bundle_id, parse_bundle, write_bundle
from common.codec import EncodeOptions, encode_images
from receiver.app import create_app
from receiver.settings import ReceiverSettings
from tests.sender.servers import SECRET, one_torch_thread, tiny_image


@pytest.fixture(scope="session")
def jpeg_bundle() -> bytes:
    """A jpeg-mode bundle (no generator) of two tiny images."""
    with one_torch_thread():
        return encode_images([("one", tiny_image(1)), ("two", tiny_image(2))], EncodeOptions(mode="jpeg")).bundle


@pytest.fixture(scope="session")
def restore_bundle() -> bytes:
    """A restore bundle against the shipped base weights: the generator runs on the receiver.

    (``update="none"`` skips the fine-tune; the update path itself runs in the e2e test.)
    """
    with one_torch_thread():
        opts = EncodeOptions(quality=50, mode="restore", update="none")
        return encode_images([("a", tiny_image(3)), ("b", tiny_image(4))], opts).bundle


@pytest.fixture(scope="session")
def unknown_base_bundle(restore_bundle: bytes) -> bytes:
    b = parse_bundle(restore_bundle)
    return write_bundle(replace(b, bundle_id=new_bundle_id(), base_sha256="0" * 64))


@pytest.fixture
def settings(tmp_path: Path) -> ReceiverSettings:
    return ReceiverSettings(secret=SECRET, data_dir=tmp_path / "receiver")


@pytest.fixture
def client(settings: ReceiverSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c
