"""Weight updates: which parameters travel, quantised and entropy-coded, and back.

    delta  (kind "delta"): q = round((tuned - base) / step), range-coded (common.rangecoder);
           the receiver rebuilds base + q * step. Header: {"kind": "delta", "coding": "rc1",
           "params": [[name, step], ...]} in the coding order.
    full   (kind "full"): every tensor as raw little-endian float32 / float16 in state-dict order
           (what the thesis shipped); no base needed. Header: {"kind": "full", "dtype": "f32"|"f16",
           "params": [name, ...]}.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .errors import BundleError
from .rangecoder import decode_ints, encode_ints

State = dict[str, torch.Tensor]
SUBSETS = ("all", "bias", "tail")


def select_params(state: State, subset: str = "all") -> list[str]:
    """Names of the parameters a delta update carries, in coding order.

    ``all``: every tensor; ``bias``: biases and PReLU slopes only (a few hundred numbers);
    ``tail``: ``bias`` plus the last convolution.
    """
    names = list(state)
    if subset == "all":
        return names
    small = [n for n in names if state[n].dim() <= 1]
    if subset == "bias":
        return small
    if subset == "tail":
        last = [n for n in names if state[n].dim() == 4][-1]
        return [n for n in names if n in small or n == last]
    raise ValueError(f"unknown parameter subset {subset!r}; choose one of {SUBSETS}")


def quantize_delta(tuned: State, base: State, names: list[str], step: float) -> dict[str, np.ndarray]:
    """Integer deltas per parameter, ``round((tuned - base) / step)`` as int64."""
    return {
        n: torch.round((tuned[n].detach().cpu().float() - base[n].float()) / step).to(torch.int64).numpy()
        for n in names
    }


def apply_delta(base: State, q: dict[str, np.ndarray], step: float) -> State:
    out = {k: v.clone() for k, v in base.items()}
    for n, arr in q.items():
        out[n] = base[n] + torch.from_numpy(arr.astype(np.float32)).view_as(base[n]) * step
    return out


def encode_delta(q: dict[str, np.ndarray], step: float) -> tuple[dict[str, Any], bytes]:
    # Tensors whose delta quantises to all zeros are left out: the receiver keeps the base there.
    kept = {n: arr for n, arr in q.items() if arr.any()}
    if not kept:
        return {"kind": "none"}, b""
    header = {"kind": "delta", "coding": "rc1", "params": [[n, step] for n in kept]}
    data = encode_ints(arr.ravel().tolist() for arr in kept.values())
    return header, data


def encode_full(state: State, dtype: str = "f32") -> tuple[dict[str, Any], bytes]:
    np_dtype = {"f32": "<f4", "f16": "<f2"}[dtype]
    data = b"".join(state[n].detach().cpu().float().numpy().astype(np_dtype).tobytes() for n in state)
    return {"kind": "full", "dtype": dtype, "params": list(state)}, data


def decode_update(header: dict[str, Any], data: bytes, template: State, base: State | None) -> State:
    """Rebuild the generator state from an update; every name, count and value is checked.

    ``template`` is the state dict of a freshly built generator (names and shapes expected).
    """
    kind = header.get("kind")
    if kind == "none":
        if base is None:
            raise BundleError("update kind 'none' needs base weights")
        return base
    if kind == "full":
        return _decode_full(header, data, template)
    if kind == "delta":
        if base is None:
            raise BundleError("a delta update needs base weights; the bundle names none")
        return _decode_delta(header, data, template, base)
    raise BundleError(f"unknown update kind {kind!r}; expected none, delta or full")


def _decode_full(header: dict[str, Any], data: bytes, template: State) -> State:
    dtype = header.get("dtype")
    if dtype not in ("f32", "f16"):
        raise BundleError(f"full update dtype {dtype!r} must be 'f32' or 'f16'")
    names = header.get("params")
    if names != list(template):
        raise BundleError("full update must list every generator parameter in state-dict order")
    size = 4 if dtype == "f32" else 2
    need = sum(t.numel() for t in template.values()) * size
    if len(data) != need:
        raise BundleError(f"full update is {len(data)} bytes; the generator config needs {need}")
    flat = np.frombuffer(data, dtype="<f4" if dtype == "f32" else "<f2").astype(np.float32)
    out, pos = {}, 0
    for n, t in template.items():
        out[n] = torch.from_numpy(flat[pos : pos + t.numel()].copy()).view_as(t)
        pos += t.numel()
    return out


def _decode_delta(header: dict[str, Any], data: bytes, template: State, base: State) -> State:
    if header.get("coding") != "rc1":
        raise BundleError(f"delta coding {header.get('coding')!r} is not supported (expected 'rc1')")
    params = header.get("params")
    if not isinstance(params, list) or not params:
        raise BundleError("delta update 'params' must be a non-empty list of [name, step]")
    names, steps = [], []
    for item in params:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], float) and math.isfinite(item[1]) and 0 < item[1] <= 1):
            raise BundleError(f"delta update entry {str(item)[:80]!r} must be [name, step] with 0 < step <= 1")
        if item[0] not in template or item[0] in names:
            raise BundleError(f"delta update names parameter {item[0][:80]!r}, unknown or repeated")
        names.append(item[0])
        steps.append(item[1])
    for n in names:
        if tuple(base[n].shape) != tuple(template[n].shape):
            raise BundleError(f"base weight {n} has shape {tuple(base[n].shape)}, the config needs "
                              f"{tuple(template[n].shape)}")
    seqs = decode_ints(data, [template[n].numel() for n in names])
    out = {k: v.clone() for k, v in base.items()}
    for n, step, seq in zip(names, steps, seqs, strict=True):
        out[n] = base[n] + torch.tensor(seq, dtype=torch.float64).view_as(base[n]).float() * step
        if not torch.isfinite(out[n]).all():
            raise BundleError(f"delta for {n} gives non-finite weights")
    return out
