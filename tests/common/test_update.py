from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import BundleError
from common.generator import GeneratorConfig, build_generator
from common.rangecoder import decode_ints, encode_ints
from common.update import (
    apply_delta,
    decode_update,
    encode_delta,
    encode_full,
    quantize_delta,
    select_params,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(-(2**40), 2**40), max_size=60), min_size=1, max_size=4))
def test_rangecoder_roundtrip_any_ints(seqs: list[list[int]]) -> None:
    assert decode_ints(encode_ints(seqs), [len(s) for s in seqs]) == seqs


def test_rangecoder_compresses_sparse_deltas() -> None:
    rng = np.random.default_rng(0)
    seq = (rng.laplace(0, 0.4, 20000)).round().astype(int).tolist()
    data = encode_ints([seq])
    _, counts = np.unique(seq, return_counts=True)
    p = counts / counts.sum()
    entropy_bits = float(-(p * np.log2(p)).sum()) * len(seq)
    # An adaptive coder gets within a few percent of the empirical entropy.
    assert len(data) * 8 < 1.05 * entropy_bits + 64
    assert decode_ints(data, [len(seq)]) == [seq]


def test_truncated_stream_raises_codec_error() -> None:
    seq = list(range(-50, 50)) * 20
    data = encode_ints([seq])
    with pytest.raises(BundleError):
        decode_ints(data[: len(data) // 2], [len(seq)])


def _tiny() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = build_generator(GeneratorConfig(channels=8, blocks=1))
    base = {k: v.clone() for k, v in model.state_dict().items()}
    tuned = {k: v + 0.003 * torch.randn_like(v) for k, v in base.items()}
    return model.state_dict(), base, tuned


def test_delta_roundtrip_is_exact() -> None:
    template, base, tuned = _tiny()
    names = select_params(base, "all")
    q = quantize_delta(tuned, base, names, 2**-9)
    header, data = encode_delta(q, 2**-9)
    rebuilt = decode_update(header, data, template, base)
    expect = apply_delta(base, q, 2**-9)
    for k in base:
        assert torch.equal(rebuilt[k], expect[k]), k
        assert (rebuilt[k] - tuned[k]).abs().max() <= 2**-10 + 1e-7


def test_subsets() -> None:
    _, base, _ = _tiny()
    bias = select_params(base, "bias")
    assert bias and all(base[n].dim() <= 1 for n in bias)
    tail = select_params(base, "tail")
    assert set(bias) < set(tail)
    with pytest.raises(ValueError, match="unknown parameter subset"):
        select_params(base, "head")


def test_full_roundtrip_and_size() -> None:
    template, _, tuned = _tiny()
    header, data = encode_full(tuned, "f32")
    assert len(data) == 4 * sum(v.numel() for v in tuned.values())
    rebuilt = decode_update(header, data, template, None)
    assert all(torch.equal(rebuilt[k], tuned[k]) for k in tuned)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: h.update(coding="zip"), "not supported"),
        (lambda h: h.update(params=[["nope.weight", 0.01]]), "unknown or repeated"),
        (lambda h: h.update(params=[["body.0.weight", -1.0]]), "0 < step <= 1"),
        (lambda h: h.update(params=[["body.0.weight", float("nan")]]), "0 < step <= 1"),
        (lambda h: h.update(params="x"), "non-empty list"),
        (lambda h: h.update(kind="weird"), "unknown update kind"),
    ],
)
def test_bad_delta_headers(mutate, message) -> None:  # type: ignore[no-untyped-def]
    template, base, tuned = _tiny()
    q = quantize_delta(tuned, base, select_params(base), 2**-9)
    header, data = encode_delta(q, 2**-9)
    mutate(header)
    with pytest.raises(BundleError, match=message):
        decode_update(header, data, template, base)


def test_full_update_wrong_length_and_nan() -> None:
    template, _, tuned = _tiny()
    header, data = encode_full(tuned, "f32")
    with pytest.raises(BundleError, match="needs"):
        decode_update(header, data[:-4], template, None)
    bad = {k: v.clone() for k, v in tuned.items()}
    next(iter(bad.values())).view(-1)[0] = float("nan")
    header, data = encode_full(bad, "f32")
    model = build_generator(GeneratorConfig(channels=8, blocks=1))
    from common.generator import load_state_strict

    with pytest.raises(BundleError, match="NaN"):
        load_state_strict(model, decode_update(header, data, template, None))
