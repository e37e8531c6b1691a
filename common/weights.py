"""Base generator weights: safetensors files in ``common/weights/``, identified by SHA-256.

The hash is taken over a canonical serialisation of the tensors (sorted names, shapes,
little-endian float32 bytes), so it does not depend on file metadata. Every released base
stays in the folder so that bundles made against it remain decodable.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import BundleError, UnknownBaseError
from .generator import Generator, GeneratorConfig, build_generator, load_state_strict

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_BASE = "restore-v1"


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().to("cpu", torch.float32).contiguous()
        h.update(k.encode() + b"\0" + json.dumps(list(t.shape)).encode() + b"\0")
        h.update(t.numpy().astype("<f4").tobytes())
    return h.hexdigest()


def save_weights(
    state: dict[str, torch.Tensor], cfg: GeneratorConfig, path: str | Path, extra: dict[str, Any] | None = None
) -> str:
    """Write float32 weights + config as safetensors (atomically); returns the weights SHA-256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    st = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    sha = state_sha256(st)
    meta = {"config": json.dumps(cfg.to_dict()), "sha256": sha, **{k: str(v) for k, v in (extra or {}).items()}}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(st, str(tmp), metadata=meta)
    tmp.chmod(0o644)  # shipped files are world-readable, like the rest of the tree
    tmp.replace(path)
    return sha


@functools.lru_cache(maxsize=16)
def _load_file(path: Path) -> tuple[GeneratorConfig, dict[str, torch.Tensor], str]:
    try:
        state = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise BundleError(f"cannot read weights file {path.name}: {e}") from None
    cfg = GeneratorConfig.from_dict(json.loads(meta.get("config", "{}")))
    return cfg, state, state_sha256(state)


def known_bases() -> dict[str, Path]:
    """Map SHA-256 → weights file, for every base shipped in ``common/weights``."""
    return {_load_file(p)[2]: p for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))}


def latest_base(family: str) -> str:
    """The newest shipped version of a base family: ``latest_base("sr4")`` → ``"sr4-v2"`` when
    ``sr4-v1`` and ``sr4-v2`` are shipped; ``<family>-v1`` when none is (so errors name it)."""
    versions = [int(m.group(1)) for p in WEIGHTS_DIR.glob(f"{family}-v*.safetensors")
                if (m := re.fullmatch(re.escape(family) + r"-v(\d+)", p.stem))]
    return f"{family}-v{max(versions, default=1)}"


def base_path(name: str = DEFAULT_BASE) -> Path:
    p = WEIGHTS_DIR / f"{name}.safetensors"
    if not p.exists():
        raise UnknownBaseError(f"no base weights named {name!r} in {WEIGHTS_DIR}")
    return p


def load_base(sha_or_name: str = DEFAULT_BASE) -> tuple[GeneratorConfig, dict[str, torch.Tensor], str]:
    """Config, state dict (float32, do not modify) and SHA-256 of a base, by hash or by name."""
    if len(sha_or_name) == 64:
        bases = known_bases()
        if sha_or_name not in bases:
            raise UnknownBaseError(
                f"unknown base weights sha256 {sha_or_name[:16]}…; this side holds "
                f"{', '.join(s[:16] + '…' for s in bases) or 'none'}"
            )
        return _load_file(bases[sha_or_name])
    return _load_file(base_path(sha_or_name))


def load_base_model(sha_or_name: str = DEFAULT_BASE) -> tuple[Generator, str]:
    cfg, state, sha = load_base(sha_or_name)
    model = build_generator(cfg)
    load_state_strict(model, state)
    return model.eval(), sha
