from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from common.errors import CodecError
from common.generator import GeneratorConfig, build_generator
from common.perceptual import (
    Discriminator,
    DiscriminatorWeightsError,
    PerceptualObjective,
    VGGFeatures,
    VGGWeightsError,
    interpolate_states,
    load_discriminator,
    load_vgg19,
)


class _Touch:
    """Unpickling this creates ``marker``: proof of whether a loader ran pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def _pairs(n: int = 2, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    target = torch.rand(n, 3, size, size, generator=g)
    degraded = (target + 0.1 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
    return degraded, target


def _train(objective: PerceptualObjective, steps: int = 3) -> tuple[torch.nn.Module, list[float]]:
    torch.manual_seed(0)
    model = build_generator(GeneratorConfig(channels=8, blocks=1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = _pairs()
    losses = []
    for _ in range(steps):
        loss = objective(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return model, losses


def test_objective_trains_generator_and_discriminator_separately() -> None:
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in build_generator(GeneratorConfig(channels=8, blocks=1)).state_dict().items()}
    objective = PerceptualObjective("cpu", seed=3)
    d_before = {k: v.clone() for k, v in objective.discriminator.state_dict().items()}
    model, losses = _train(objective)

    assert all(torch.isfinite(torch.tensor(losses)))
    assert set(objective.last) == {"d", "adv", "fm", "l1"}
    assert all(torch.isfinite(torch.tensor(list(objective.last.values()))))
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "generator did not move"
    d_after = objective.discriminator.state_dict()
    assert any(not torch.equal(d_before[k], d_after[k]) for k in d_before), "discriminator did not move"
    # The discriminator is a separate object: none of it is in what the generator ships, and the
    # generator's backward pass never reaches its parameters.
    assert not set(after) & set(d_after)
    assert not any("parametrizations" in k or k.startswith(("convs.", "head.")) for k in after)
    assert all(p.grad is None and not p.requires_grad for p in objective.discriminator.parameters())


def test_objective_is_seeded_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = PerceptualObjective("cpu", seed=5)
    assert torch.equal(torch.rand(3), expected)
    b = PerceptualObjective("cpu", seed=5)
    for (ka, va), (kb, vb) in zip(a.discriminator.state_dict().items(), b.discriminator.state_dict().items(),
                                  strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_objective_with_vgg_reports_its_term() -> None:
    objective = PerceptualObjective("cpu", vgg=VGGFeatures("conv2_2"), vgg_weight=0.1)
    _, losses = _train(objective, steps=1)
    assert set(objective.last) == {"d", "adv", "fm", "l1", "vgg"}
    assert objective.last["vgg"] >= 0 and all(torch.isfinite(torch.tensor(losses)))


def test_objective_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="pred and target"):
        PerceptualObjective("cpu")(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 8))


@pytest.mark.parametrize("hw", [(24, 24), (40, 56)])
def test_discriminator_any_size_and_features(hw: tuple[int, int]) -> None:
    d = Discriminator(width=8)
    x = torch.rand(2, 3, *hw)
    logits = d(x)
    assert logits.shape == (2,)
    logits2, feats = d(x, return_features=True)
    assert logits2.shape == (2,) and len(feats) == 9
    assert [f.shape[1] for f in feats] == [8, 8, 8, 16, 16, 32, 32, 64, 64]
    assert feats[0].shape[-2:] == hw and all(torch.isfinite(f).all() for f in feats)


# -- VGG weights -------------------------------------------------------------------------------


def _vgg_file(path: Path, **changes: torch.Tensor | None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=g) * 0.05 for k, v in VGGFeatures("conv2_2").state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # extra keys are ignored
    for k, v in changes.items():
        if v is None:
            del state[k]
        else:
            state[k] = v
    save_file(state, str(path))
    return state


def test_load_vgg19_reads_safetensors(tmp_path: Path) -> None:
    state = _vgg_file(tmp_path / "vgg.safetensors")
    vgg = load_vgg19(tmp_path / "vgg.safetensors", layer="conv2_2")
    assert torch.equal(vgg.state_dict()["features.5.weight"], state["features.5.weight"])
    assert not any(p.requires_grad for p in vgg.parameters()) and not vgg.training
    out = vgg(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 128, 16, 16) and torch.isfinite(out).all()


def test_vgg_layers_have_torchvision_names() -> None:
    keys = [k for k in VGGFeatures("conv5_4").state_dict() if k.endswith(".weight")]
    assert keys[:4] == ["features.0.weight", "features.2.weight", "features.5.weight", "features.7.weight"]
    assert len(keys) == 16 and keys[-1] == "features.34.weight"
    with pytest.raises(ValueError, match="conv2_2"):
        VGGFeatures("conv9_9")


def test_load_vgg19_wrong_shape_names_key_and_shapes(tmp_path: Path) -> None:
    p = tmp_path / "vgg.safetensors"
    _vgg_file(p, **{"features.5.weight": torch.zeros(128, 64, 3, 1)})
    with pytest.raises(VGGWeightsError, match=r"features\.5\.weight.*\(128, 64, 3, 1\).*\(128, 64, 3, 3\)") as e:
        load_vgg19(p, layer="conv2_2")
    assert isinstance(e.value, CodecError) and e.value.http_status == 422


def test_load_vgg19_missing_key_and_nonfinite(tmp_path: Path) -> None:
    p = tmp_path / "vgg.safetensors"
    _vgg_file(p, **{"features.7.bias": None})
    with pytest.raises(VGGWeightsError, match=r"features\.7\.bias"):
        load_vgg19(p, layer="conv2_2")
    _vgg_file(p, **{"features.2.bias": torch.full((64,), float("nan"))})
    with pytest.raises(VGGWeightsError, match=r"features\.2\.bias.*NaN"):
        load_vgg19(p, layer="conv2_2")
    with pytest.raises(VGGWeightsError, match=r"features\.10\.weight"):  # deeper layer absent
        load_vgg19(p, layer="conv3_4")


def test_load_vgg19_refuses_pickles_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    raw = tmp_path / "vgg19.pkl"
    raw.write_bytes(pickle.dumps({"features.0.weight": _Touch(marker)}))
    zipped = tmp_path / "vgg19.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "evil": _Touch(marker)}, zipped)
    for p in (raw, zipped):
        with pytest.raises(VGGWeightsError, match="pickles .* are refused"):
            load_vgg19(p)
    assert not marker.exists()
    pickle.loads(raw.read_bytes())  # the payload is live: loading it the unsafe way would run it
    assert marker.exists()


def test_load_vgg19_refuses_garbage_and_missing_files(tmp_path: Path) -> None:
    junk = tmp_path / "vgg19.safetensors"
    junk.write_bytes(b"not a weights file at all")
    with pytest.raises(VGGWeightsError, match="cannot parse"):
        load_vgg19(junk)
    with pytest.raises(VGGWeightsError, match="does not exist"):
        load_vgg19(tmp_path / "nope.safetensors")
    with pytest.raises(VGGWeightsError, match="does not exist"):
        load_vgg19(tmp_path)


# -- network interpolation ---------------------------------------------------------------------


def test_interpolate_states() -> None:
    fid = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor(3)}
    perc = {"w": torch.tensor([4.0, -2.0]), "n": torch.tensor(7)}
    s0, s1, mid = (interpolate_states(fid, perc, a) for a in (0.0, 1.0, 0.5))
    assert torch.equal(s0["w"], fid["w"]) and torch.equal(s1["w"], perc["w"])
    assert torch.equal(mid["w"], torch.tensor([2.0, 0.0]))
    assert int(s0["n"]) == 3 and int(s1["n"]) == 7
    assert s0["w"] is not fid["w"]
    with pytest.raises(ValueError, match="keys"):
        interpolate_states(fid, {"w": perc["w"], "m": perc["n"]}, 0.5)
    with pytest.raises(ValueError, match="shape"):
        interpolate_states(fid, {"w": torch.zeros(3), "n": perc["n"]}, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        interpolate_states(fid, perc, 1.5)


def test_shipped_discriminator_loads_strictly_and_scores() -> None:
    d = load_discriminator()
    assert d.convs[0].weight.shape[0] == 16  # rebuilt from the file's shapes alone
    assert d(torch.rand(2, 3, 40, 48)).shape == (2,)


def test_discriminator_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DiscriminatorWeightsError, match="cannot read"):
        load_discriminator(tmp_path / "missing.safetensors")
    garbage = tmp_path / "g.safetensors"
    garbage.write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(DiscriminatorWeightsError, match="cannot read"):
        load_discriminator(garbage)
    other = tmp_path / "o.safetensors"
    save_file({"w": torch.zeros(3)}, str(other))
    with pytest.raises(DiscriminatorWeightsError, match="not a discriminator"):
        load_discriminator(other)
    state = {k: v.contiguous() for k, v in Discriminator(8).state_dict().items()}
    state.pop("head.bias")
    cut = tmp_path / "cut.safetensors"
    save_file(state, str(cut))
    with pytest.raises(DiscriminatorWeightsError, match="do not match"):
        load_discriminator(cut)
