import pytest

from snnas.nas.models import build_model, check_parts
from snnas.nas.models.arch import ArchConfig, ArchConfigError
from snnas.nas.models.zoo import ZOO
from tests.conftest import tiny_arch


@pytest.mark.parametrize(
    "changes, field",
    [
        (dict(attention=("ssa", "softmax")), "attention"),
        (dict(neuron="izhikevich"), "neuron"),
        (dict(stem="vit"), "stem"),
        (dict(downsample="avgpool"), "downsample"),
        (dict(mlp="moe"), "mlp"),
        (dict(residual="dense"), "residual"),
        (dict(heads=(3, 4)), "heads"),  # 16 not divisible by 3
        (dict(dims=(16,)), "dims"),  # one entry for two stages
        (dict(depths=(1, 0)), "depths"),
        (dict(img_size=18), "img_size"),  # not divisible by 2^(1+1)
        (dict(patch_sizes=(3, 1)), "patch_sizes"),  # 8x8 map, patch 3
        (dict(window=4), "window"),
        (dict(attention=("ls_ssa", "ls_ssa"), heads=(2, 4), dilations=(1, 2, 3)), "dilations"),
        (dict(mlp="gwffn", group_width=12), "group_width"),
        (dict(dims=(12, 24), heads=(2, 4)), "dims"),  # sps needs dims[0] % 8 == 0
        (dict(stem="conv7", stem_downsample=1), "stem_downsample"),
        (dict(time_steps=0), "time_steps"),
        (dict(time_steps=2.5), "time_steps"),
        (dict(qkv_bias="yes"), "qkv_bias"),
        (dict(num_classes=1), "num_classes"),
        (dict(depths=3), "depths"),
    ],
)
def test_invalid_fields_raise_an_error_naming_the_field(changes, field):
    """Structure is checked when an ArchConfig is made; the parts it names where it is built."""
    with pytest.raises(ArchConfigError) as info:
        check_parts(tiny_arch(**changes))
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}:")


def test_unknown_part_names_are_refused_where_the_network_is_built():
    arch = tiny_arch(attention=("ssa", "softmax"))  # a structurally valid description
    with pytest.raises(ArchConfigError, match="unknown attention 'softmax'"):
        build_model(arch)


def test_from_dict_refuses_unknown_keys_instead_of_ignoring_them():
    data = tiny_arch().to_dict()
    data["dimz"] = [16, 32]
    with pytest.raises(ArchConfigError, match="dimz"):
        ArchConfig.from_dict(data)


def test_dict_round_trip_keeps_every_zoo_architecture_equal():
    for entry in ZOO.values():
        data = entry.arch.to_dict()
        assert isinstance(data["dims"], list)
        assert ArchConfig.from_dict(data) == entry.arch


def test_lists_become_tuples_so_configs_are_hashable():
    arch = tiny_arch(dims=[16, 32], depths=[1, 2])
    assert arch.dims == (16, 32) and arch.depths == (1, 2)
    assert hash(arch) == hash(tiny_arch(dims=(16, 32), depths=(1, 2)))


def test_stage_resolution_follows_stem_and_stage_downsampling():
    arch = tiny_arch()
    assert [arch.stage_resolution(i) for i in range(arch.num_stages)] == [8, 4]
    assert arch.depth == 2


@pytest.mark.parametrize("base, change", [
    (dict(depths=(1,), dims=(32,), heads=(2,), attention=("ssa",)), dict(downsample="spool")),
    (dict(depths=(1,), dims=(32,), heads=(2,), attention=("ssa",)), dict(dilations=(1, 2), window=5)),
    (dict(depths=(1, 1), dims=(32, 32), heads=(2, 2), attention=("ssa", "dssa"), patch_sizes=(1, 2)),
     dict(patch_sizes=(2, 2))),
    (dict(depths=(1,), dims=(32,), heads=(2,), attention=("dssa",), patch_sizes=(2,)), dict(attn_order="kv_first")),
    (dict(depths=(1,), dims=(32,), heads=(2,), attention=("ssa",), mlp="mlp"), dict(group_width=16)),
    (dict(depths=(1,), dims=(32,), heads=(2,), attention=("ssa",), stem="scs"), dict(stem_pool="spool")),
    (dict(depths=(1,), dims=(32,), heads=(2,), attention=("sdsa",)), dict(attn_scale=0.25, attn_scale_learnable=True)),
])
def test_fields_the_network_ignores_leave_its_key_and_its_numbers_unchanged(base, change):
    import dataclasses

    import torch

    from snnas.nas.models import build_model

    a = ArchConfig(img_size=16, in_channels=1, time_steps=2, **base)
    b = dataclasses.replace(a, **change)
    assert a != b and a.network_key() == b.network_key()
    x = torch.rand(2, 1, 16, 16)
    outs = []
    for arch in (a, b):
        torch.manual_seed(0)
        outs.append(build_model(arch).eval()(x))
    assert torch.equal(*outs)


def test_fields_the_network_reads_change_its_key():
    import dataclasses

    two = ArchConfig(img_size=16, in_channels=1, depths=(1, 1), dims=(32, 32), heads=(2, 2), attention=("ls_ssa", "ssa"),
                     patch_sizes=(1, 1))
    for change in (dict(downsample="spool"), dict(dilations=(1, 2)), dict(attn_order="kv_first"), dict(stem_pool="spool"),
                   dict(attn_scale=0.25), dict(attn_scale_learnable=True)):
        assert dataclasses.replace(two, **change).network_key() != two.network_key()


def test_fields_added_later_read_back_as_the_network_stored_without_them_with_the_same_keys():
    """A configuration stored before a field existed (a study's trial, a model file, a run-cache key)
    means the network it meant then: the field takes its ADDED_LATER value, so the configuration,
    its network_key and the keys that drop ADDED_LATER values are what they were before it."""
    import json

    from snnas.nas.models.arch import ADDED_LATER

    assert ADDED_LATER["attn_scale"] == 0.125 and ADDED_LATER["attn_scale_learnable"] is False
    for arch in [tiny_arch(), tiny_arch(attention=("ls_ssa", "ssa"))] + [e.arch for e in ZOO.values()]:
        if any(getattr(arch, name) != value for name, value in ADDED_LATER.items()):
            continue  # an entry that uses a later field's new value has no earlier form
        stored = {k: v for k, v in arch.to_dict().items() if k not in ADDED_LATER}  # as written before the fields
        again = ArchConfig.from_dict(stored)
        assert again == arch and again.network_key() == arch.network_key()
        # the benchmark run cache (benchmarks/_runs.py) keys an architecture without its ADDED_LATER values
        key = {k: v for k, v in arch.to_dict().items() if ADDED_LATER.get(k, ...) != v}
        assert json.dumps(key, sort_keys=True) == json.dumps(stored, sort_keys=True)


def test_the_attention_scale_is_fixed_or_learned_and_scales_the_attention_product():
    import torch
    from spikingjelly.activation_based.functional import reset_net

    from snnas.nas.models.attention.ssa import SSA

    base = ArchConfig(img_size=16, in_channels=1, time_steps=2, depths=(1,), dims=(32,), heads=(2,), attention=("ssa",))
    fixed, learned = SSA(base.replace(attn_scale=0.25), 0), SSA(base.replace(attn_scale_learnable=True), 0)
    assert fixed.scale == 0.25 and isinstance(learned.scale, torch.nn.Parameter) and learned.scale.item() == 0.125
    assert sum(p.numel() for p in learned.parameters()) == sum(p.numel() for p in SSA(base, 0).parameters()) + 1
    seen = {}
    for scale in (0.125, 0.25):
        torch.manual_seed(0)
        module = SSA(base.replace(attn_scale=scale), 0).train()  # batch statistics: the neurons fire
        module.attn_neuron.register_forward_hook(lambda m, args, out, s=scale: seen.__setitem__(s, args[0]))
        reset_net(module)
        with torch.no_grad():
            module(torch.rand(4, 8, 32, 4, 4).round())
    assert seen[0.125].abs().sum() > 0 and torch.equal(seen[0.25], 2 * seen[0.125])  # the neuron's input doubles
    with pytest.raises(ArchConfigError, match="attn_scale"):
        base.replace(attn_scale=0.0)
