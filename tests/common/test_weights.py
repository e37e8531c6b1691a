from __future__ import annotations

import numpy as np
import pytest

from common.bundle import parse_bundle, write_bundle
from common.codec import EncodeOptions, decode_bundle, encode_images, inspect_bundle
from common.errors import BundleError, UnknownArchError, UnknownBaseError
from common.generator import GeneratorConfig
from common.weights import WEIGHTS_DIR, known_bases, load_base, state_sha256


def test_every_shipped_base_is_loadable_and_hash_matches() -> None:
    bases = known_bases()
    assert bases, "no base weights shipped"
    for sha, path in bases.items():
        cfg, state, got = load_base(sha)
        assert got == sha == state_sha256(state)
        assert path.parent == WEIGHTS_DIR and path.stat().st_size < 5 * 2**20
        assert load_base(path.stem)[2] == sha


def _bundle(small_images, base: str = "restore-v1"):  # type: ignore[no-untyped-def]
    r = encode_images(small_images[:1], EncodeOptions(quality=10, match_jpeg=None, update="none", base=base))
    b = parse_bundle(r.bundle)
    assert b.generator is not None, "the base generator should help at quality 10"
    return b


@pytest.mark.parametrize("name", ["restore-v1"])
def test_old_and_new_bases_decode(small_images, name) -> None:  # type: ignore[no-untyped-def]
    if not (WEIGHTS_DIR / f"{name}.safetensors").exists():
        pytest.skip(f"{name} not shipped")
    b = _bundle(small_images, name)
    assert b.base_sha256 == load_base(name)[2]
    out = decode_bundle(write_bundle(b)).images[0]
    assert out.shape == small_images[0][1].shape


def test_unknown_base_hash_is_refused(small_images) -> None:  # type: ignore[no-untyped-def]
    b = _bundle(small_images)
    b.base_sha256 = "0" * 64
    with pytest.raises(UnknownBaseError, match="unknown base weights sha256 0000000000000000"):
        inspect_bundle(write_bundle(b))


def test_unknown_arch_and_mismatched_config_are_refused(small_images) -> None:  # type: ignore[no-untyped-def]
    b = _bundle(small_images)
    assert b.generator is not None
    b.generator = {**b.generator, "arch": "esrgan-xl"}
    with pytest.raises(UnknownArchError, match="unknown generator arch 'esrgan-xl'"):
        inspect_bundle(write_bundle(b))
    b.generator = {**b.generator, "arch": "srvgg", "channels": 32}
    with pytest.raises(BundleError, match="does not match its base"):
        inspect_bundle(write_bundle(b))
    b.generator = {**b.generator, "channels": 100000}
    with pytest.raises(BundleError, match="channels=100000 is outside"):
        inspect_bundle(write_bundle(b))


def test_generator_config_validation() -> None:
    assert GeneratorConfig.from_dict(GeneratorConfig().to_dict()) == GeneratorConfig()
    with pytest.raises(BundleError, match="unknown keys"):
        GeneratorConfig.from_dict({"arch": "srvgg", "depth": 3})
    with pytest.raises(BundleError, match="must be an integer"):
        GeneratorConfig.from_dict({"arch": "srvgg", "channels": True})
    with pytest.raises(BundleError, match="must be a JSON object"):
        GeneratorConfig.from_dict([1, 2])


def test_wrong_image_quality_field_is_refused(small_images) -> None:  # type: ignore[no-untyped-def]
    b = _bundle(small_images)
    b.images[0].info["q"] = 1000
    with pytest.raises(BundleError, match="'q' must be an integer in 1..100"):
        inspect_bundle(write_bundle(b))
    b.images[0].info["q"] = 10
    b.images[0].info["g"] = 2
    with pytest.raises(BundleError, match="'g' must be 0 or 1"):
        inspect_bundle(write_bundle(b))
    assert np.isfinite(b.images[0].info["pr"])


def test_latest_base_picks_the_newest_version(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import common.weights as w

    monkeypatch.setattr(w, "WEIGHTS_DIR", tmp_path)
    assert w.latest_base("sr4") == "sr4-v1"  # nothing shipped: the name errors will mention
    for name in ("sr4-v1", "sr4-v2", "sr4-v10", "sr4-srcnn-v7", "sr4-vx", "restore-v3"):
        (tmp_path / f"{name}.safetensors").touch()
    assert w.latest_base("sr4") == "sr4-v10"
    assert w.latest_base("sr4-srcnn") == "sr4-srcnn-v7"
    assert w.latest_base("restore") == "restore-v3"


def test_every_released_version_of_a_family_stays_shipped() -> None:
    """A newer base never replaces an older one: ``<family>-v1 .. -vN`` are all present."""
    import re

    families: dict[str, set[int]] = {}
    for p in WEIGHTS_DIR.glob("*.safetensors"):
        m = re.fullmatch(r"(.+)-v(\d+)", p.stem)
        assert m, f"{p.name} does not follow <family>-v<N>"
        families.setdefault(m.group(1), set()).add(int(m.group(2)))
    for fam, vs in families.items():
        assert vs == set(range(1, max(vs) + 1)), f"{fam}: versions {sorted(vs)} have a gap"
