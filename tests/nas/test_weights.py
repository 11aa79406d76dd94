"""--weights: official checkpoints into zoo networks through the key maps (nas/models/keymaps/).

The fixtures (tests/fixtures/official/, see its README) hold each official model's state dict at a
small size and the logits its own code computed on a fixed input; the zoo entry's architecture at the
same sizes, with the mapped weights, must compute the same logits.
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import pytest
import torch
from spikingjelly.activation_based.functional import reset_net

from snnas.nas.models import build_model
from snnas.nas.models import zoo
from snnas.nas.models.weights import WeightsError, candidates, keymaps, load_official, read_checkpoint

FIXTURES = Path(__file__).parent.parent / "fixtures" / "official"

# the zoo entry of each family, at the fixture's sizes (tests/fixtures/official/*/config.json)
SMALL = {
    "spikformer": ("spikformer-8-384", dict(time_steps=4, depths=(2,), dims=(32,), heads=(2,))),
    "spikformer-cifar": ("spikformer-4-256", dict(time_steps=2, depths=(2,), dims=(32,), heads=(2,))),
    "spikingformer": ("spikingformer-8-384", dict(time_steps=2, depths=(2,), dims=(32,), heads=(2,))),
    "sdt": ("sdt-8-384", dict(time_steps=2, depths=(2,), dims=(32,), heads=(2,))),
    "qkformer": ("qkformer-10-384", dict(time_steps=2, depths=(1, 2, 1), dims=(8, 16, 32), heads=(2, 2, 2))),
    "spikingresformer": ("spikingresformer-ti", dict(time_steps=2, depths=(1, 2, 1), dims=(8, 16, 24),
                                                     heads=(1, 2, 2), group_width=8)),
}


def small(family: str):
    name, sizes = SMALL[family]
    return build_model(zoo.get(name).arch.replace(img_size=32, num_classes=10, **sizes))


def logits(model, x):
    model.eval()
    reset_net(model)
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("family", sorted(SMALL))
def test_official_logits(family):
    model = small(family)
    info = load_official(model, FIXTURES / family / "weights.pt")
    io = torch.load(FIXTURES / family / "io.pt", weights_only=True)
    y = logits(model, io["input"])
    scale = float(io["logits"].abs().max())
    assert torch.allclose(y, io["logits"], rtol=0, atol=1e-5 * max(1.0, scale)), (y - io["logits"]).abs().max()
    assert info.tensors > 0 and info.head


@pytest.mark.parametrize("family", sorted(SMALL))
def test_fixture_keys_are_the_official_names(family):
    """keys.json (names and shapes) is what weights.pt holds; the map covers every name."""
    keys = json.loads((FIXTURES / family / "keys.json").read_text())
    state = read_checkpoint(FIXTURES / family / "weights.pt")
    assert {k: list(v.shape) for k, v in state.items()} == keys
    (km,) = [m for m in candidates(small(family).arch) if {o for o, _, _ in m.pairs} <= set(keys)]
    assert {o for o, _, _ in km.pairs} | km.unused == set(keys)


def test_every_zoo_entry_of_the_families_has_a_map():
    for name in ("spikformer-8-512", "spikformer-4-384", "spikingformer-8-768", "sdt-8-768", "qkformer-10-768",
                 "spikingresformer-l", "spikingresformer-cifar"):
        with torch.device("meta"):
            arch = zoo.get(name).arch
        assert candidates(arch), name
    assert not candidates(zoo.get("lsformer-4-384").arch)
    assert len(keymaps()) == 6


def test_wrapped_and_ddp_checkpoints(tmp_path):
    state = torch.load(FIXTURES / "sdt" / "weights.pt", weights_only=True)
    wrapped = {"epoch": 3, "arch": "sdt", "args": argparse.Namespace(lr=0.1, model="sdt"),
               "state_dict": {f"module.{k}": v for k, v in state.items()}}
    torch.save(wrapped, tmp_path / "checkpoint.pth.tar")
    torch.save({"model": state, "epoch": 1}, tmp_path / "mae.pth")
    for path in (tmp_path / "checkpoint.pth.tar", tmp_path / "mae.pth"):
        model = small("sdt")
        load_official(model, path)
        io = torch.load(FIXTURES / "sdt" / "io.pt", weights_only=True)
        assert torch.allclose(logits(model, io["input"]), io["logits"], atol=1e-5)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = torch.load(FIXTURES / "spikformer" / "weights.pt", weights_only=True)
    del state["block.1.attn.q_conv.weight"]
    state["block.0.attn.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(WeightsError) as exc:
        load_official(small("spikformer"), tmp_path / "w.pt")
    text = str(exc.value)
    assert "\n" not in text and "missing 1 key(s): block.1.attn.q_conv.weight" in text
    assert "unexpected 1 key(s): block.0.attn.extra.weight" in text and "Spikformer" in text


def test_another_size_is_refused_naming_the_shape(tmp_path):
    model = small("spikformer").arch.replace(dims=(64,))
    with pytest.raises(WeightsError, match=r"has shape \[4, 3, 3, 3\]; stem.convs.0.conv.conv.weight needs \[8, 3"):
        load_official(build_model(model), FIXTURES / "spikformer" / "weights.pt")


def test_another_family_is_refused(tmp_path):
    with pytest.raises(WeightsError, match="does not match the official Spikformer layout.*missing.*unexpected"):
        load_official(small("spikformer"), FIXTURES / "qkformer" / "weights.pt")
    with pytest.raises(WeightsError, match="unexpected 2 key.s.: block.0.attn.talking_heads.weight"):
        load_official(small("spikformer"), FIXTURES / "sdt" / "weights.pt")  # SDT's names, one tensor more
    with pytest.raises(WeightsError, match="no official key map fits this architecture"):
        load_official(build_model(zoo.get("lsformer-4-384").arch.replace(img_size=32, num_classes=10, dims=(32,),
                                                                         heads=(2,), depths=(1,), dilations=(1, 2),
                                                                         stem_downsample=2)),
                      FIXTURES / "sdt" / "weights.pt")


def test_head_kept_for_another_class_count():
    model = build_model(small("sdt").arch.replace(num_classes=7))
    before = model.head.weight.detach().clone()
    info = load_official(model, FIXTURES / "sdt" / "weights.pt", head=False)
    assert not info.head and torch.equal(model.head.weight, before)
    state = read_checkpoint(FIXTURES / "sdt" / "weights.pt")
    assert torch.equal(model.stages[0].block0.attn.q.conv.weight, state["block.0.attn.q_conv.weight"])


class _Boom:
    def __reduce__(self):
        return (Path.touch, (Path(_Boom.target),))


def test_code_in_a_pickle_is_never_run(tmp_path):
    _Boom.target = str(tmp_path / "ran")
    torch.save({"state_dict": {"x": _Boom()}}, tmp_path / "evil.pt")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"model": _Boom()}))
    for name in ("evil.pt", "evil.pkl"):
        with pytest.raises(WeightsError, match="refused") as exc:
            read_checkpoint(tmp_path / name)
        assert "\n" not in str(exc.value)
    assert not (tmp_path / "ran").exists()


def test_torn_and_odd_files_are_refused_in_one_line(tmp_path):
    whole = (FIXTURES / "sdt" / "weights.pt").read_bytes()
    (tmp_path / "torn.pt").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save({"epoch": 3, "note": "no weights"}, tmp_path / "none.pt")
    cases = {"torn.pt": "not a readable torch file", "empty.pt": "not a readable torch file",
             "none.pt": "holds no state dict of tensors"}
    for name, words in cases.items():
        with pytest.raises(WeightsError, match=words) as exc:
            read_checkpoint(tmp_path / name)
        assert "\n" not in str(exc.value)
    with pytest.raises(WeightsError, match="cannot be read"):
        read_checkpoint(tmp_path / "absent.pt")


def test_safetensors_needs_its_package_or_reads(tmp_path):
    state = torch.load(FIXTURES / "sdt" / "weights.pt", weights_only=True)
    try:
        from safetensors.torch import save_file
    except ImportError:
        (tmp_path / "w.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
        with pytest.raises(WeightsError, match="needs the safetensors package"):
            read_checkpoint(tmp_path / "w.safetensors")
        return
    save_file(state, str(tmp_path / "w.safetensors"))
    assert set(read_checkpoint(tmp_path / "w.safetensors")) == set(state)
