"""The zoo reproduces the published parameter counts under each paper's convention."""

import pytest
import torch

from snnas.nas.models import build_model
from snnas.nas.models.params import count_parameters
from snnas.nas.models.zoo import ZOO, get

REQUIRED = [f"spikformer-{v}" for v in ("8-384", "6-512", "8-512", "10-512", "8-768", "4-256", "2-384", "4-384")] + \
    [f"spikingresformer-{v}" for v in ("ti", "s", "m", "l", "cifar")] + ["a2os2a-8-512", "a2os2a-10-512"] + \
    ["sdt-8-384", "sdt-8-512", "qkformer-10-384", "qkformer-10-512"]


def test_zoo_holds_every_required_variant_and_an_lsformer_and_a_v2_configuration():
    assert set(REQUIRED) <= set(ZOO)
    assert any(e.arch.stem == "scs" for e in ZOO.values())
    assert any("ls_ssa" in e.arch.attention and e.arch.stem_pool == "spool" for e in ZOO.values())


@pytest.mark.parametrize("name", [n for n, e in ZOO.items() if e.published_params_m is not None])
def test_published_parameter_counts_are_reproduced_within_10k(name):
    entry = ZOO[name]
    assert abs(entry.params_m() - entry.published_params_m) <= 0.01


@pytest.mark.parametrize("name, convention, exact", [
    # hand-computed from the papers' layer lists (see shared/reference/architectures.md)
    ("spikformer-8-384", "all", 8 * (12 * 384**2 + 24 * 384) + 2_201_520 + 385_000),
    ("spikformer-4-384", "all", 4 * (12 * 384**2 + 27 * 384) + 2_201_520 + 3_850),
    ("spikingresformer-ti", "no_bn", 11_141_312),
    ("spikingresformer-ti", "all", 11_141_312 + 39_680),
    ("spikingresformer-s", "no_bn", 17_761_472),
    # counted on the official models/spikingresformer.py (xyshi2000/SpikingResformer @3f75127, built with
    # spikingjelly): spikingresformer_dvsg(num_classes=11) and spikingresformer_cifar(num_classes=10), 64 px
    ("spikingresformer-dvsg", "all", 2_709_830),
    ("spikingresformer-cifar10dvs", "all", 10_793_152),
])
def test_exact_parameter_counts_match_hand_computed_layer_sums(name, convention, exact):
    with torch.device("meta"):
        model = get(name).build()
    assert count_parameters(model, convention=convention) == exact


def test_spikformer_imagenet_block_has_12d2_plus_24d_parameters():
    with torch.device("meta"):
        model = get("spikformer-8-512").build()
    assert count_parameters(model.stages[0].block0) == 12 * 512**2 + 24 * 512


def test_unknown_zoo_name_lists_where_to_look():
    with pytest.raises(KeyError, match="snnas zoo"):
        get("spikformer-99-1")


def test_cifar_zoo_model_classifies_a_real_sized_batch():
    entry = get("spikformer-4-256")
    logits = build_model(entry.arch).eval()(torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_zoo_model_runs_a_forward_pass_at_its_published_resolution(name):
    arch = ZOO[name].arch.replace(time_steps=1)
    with torch.no_grad():
        logits = build_model(arch).eval()(torch.rand(1, arch.in_channels, arch.img_size, arch.img_size))
    assert logits.shape == (1, arch.num_classes) and torch.isfinite(logits).all()


# The published figures, each with where it is printed. The zoo must carry exactly these.
PUBLISHED = {
    # Spikformer (Zhou et al., ICLR 2023 camera-ready), Table 2 (ImageNet: params M, power mJ as printed, top-1 %)
    "spikformer-8-384": (16.81, {"imagenet_top1": 70.24, "energy_mj": 7.734}),
    "spikformer-6-512": (23.37, {"imagenet_top1": 72.46, "energy_mj": 9.417}),
    "spikformer-8-512": (29.68, {"imagenet_top1": 73.38, "energy_mj": 11.577}),
    "spikformer-10-512": (36.01, {"imagenet_top1": 73.68, "energy_mj": 13.899}),
    "spikformer-8-768": (66.34, {"imagenet_top1": 74.81, "energy_mj": 21.477}),
    # Spikformer Table 3 (CIFAR-10 / CIFAR-100, T=4)
    "spikformer-4-256": (4.15, {"cifar10_top1": 93.94, "cifar100_top1": 75.96}),
    "spikformer-2-384": (5.76, {"cifar10_top1": 94.80, "cifar100_top1": 76.95}),
    "spikformer-4-384": (9.32, {"cifar10_top1": 95.19, "cifar100_top1": 77.86}),
    # Spikformer Table 4: 2-256 on event frames at 128 x 128, T=16 (2.57 M as later tables list it; the text: 2.59 M)
    "spikformer-cifar10dvs-2-256": (2.57, {"cifar10dvs_top1": 80.9}),
    "spikformer-gesture-2-256": (2.57, {"gesture_top1": 98.3}),
    # Spikingformer (arXiv 2304.11954), ImageNet table; 7.46 mJ also in its public energy log
    "spikingformer-8-384": (16.81, {"imagenet_top1": 72.45, "energy_mj": 4.69}),
    "spikingformer-8-512": (29.68, {"imagenet_top1": 74.79, "energy_mj": 7.46}),
    "spikingformer-8-768": (66.34, {"imagenet_top1": 75.85, "energy_mj": 13.68}),
    # Spikformer V2 (arXiv 2401.02020), ImageNet 8-512 T=4
    "spikformer-v2-8-512": (None, {"imagenet_top1": 80.38}),
    # SpikingResformer (CVPR 2024), Table 1: params without BatchNorm; CIFAR: no direct-trained figure
    "spikingresformer-ti": (11.14, {"imagenet_top1": 74.34, "energy_mj": 2.46}),
    "spikingresformer-s": (17.76, {"imagenet_top1": 75.95, "energy_mj": 3.37}),
    "spikingresformer-m": (35.52, {"imagenet_top1": 77.24, "energy_mj": 5.46}),
    "spikingresformer-l": (None, {"imagenet_top1": 78.77}),
    "spikingresformer-cifar": (None, {}),
    # its DVS configurations (official code's configs/direct_training): no figure printed with them
    "spikingresformer-cifar10dvs": (None, {}),
    "spikingresformer-dvsg": (None, {}),
    # A2OS2A (CVPR 2025): 10-512 on ImageNet, T=4
    "a2os2a-8-512": (None, {}),
    "a2os2a-10-512": (None, {"imagenet_top1": 78.66}),
    # Spike-driven Transformer (NeurIPS 2023), Table 3 / official README (ImageNet, T=4)
    "sdt-8-384": (16.81, {"imagenet_top1": 72.28, "energy_mj": 3.90}),
    "sdt-6-512": (23.37, {"imagenet_top1": 74.11, "energy_mj": 3.56}),
    "sdt-8-512": (29.68, {"imagenet_top1": 74.57, "energy_mj": 4.50}),
    "sdt-10-512": (36.01, {"imagenet_top1": 74.66, "energy_mj": 5.53}),
    "sdt-8-768": (66.34, {"imagenet_top1": 77.07, "energy_mj": 6.09}),  # at 288 x 288 (official README)
    # QKFormer (NeurIPS 2024), ImageNet table, HST-10-384 / 512 / 768 at T=4 (224 px)
    "qkformer-10-384": (16.47, {"imagenet_top1": 78.80, "energy_mj": 15.13}),
    "qkformer-10-512": (29.08, {"imagenet_top1": 82.04, "energy_mj": 21.99}),
    "qkformer-10-768": (64.96, {"imagenet_top1": 84.22, "energy_mj": 38.91}),
    # LSFormer (arXiv 2605.13887): abstract only, no configuration published
    "lsformer-4-384": (None, {}),
}


def test_every_zoo_entry_carries_exactly_the_cited_published_figures_and_names_its_source():
    from snnas.nas.models.zoo import SOURCES

    assert set(ZOO) == set(PUBLISHED)
    for name, (params, figures) in PUBLISHED.items():
        entry = ZOO[name]
        assert entry.published_params_m == params and dict(entry.published) == figures, name
        assert entry.source in SOURCES, name
        assert entry.cited or not (params or figures), f"{name}: published figures without a citation"
        if entry.source == "snnas" or entry.source == "third-party":
            assert entry.interpretation, f"{name}: an interpretation must say what is snnas's reading"


def test_sum_channel_feeds_the_stem_the_polarities_and_their_sum():
    """SpikingResformer's DVS input: a model taking 2 polarities with ``sum_channel`` computes what a
    3-channel model computes on (ON, OFF, ON + OFF) with the same weights."""
    arch = get("spikingresformer-dvsg").arch.replace(img_size=16, time_steps=2, dims=(32, 32, 32), heads=(1, 1, 1))
    summed = build_model(arch).eval()
    plain = build_model(arch.replace(in_channels=3, sum_channel=False)).eval()
    plain.load_state_dict(summed.state_dict())
    assert summed.stem.conv.conv.weight.shape[1] == 3
    frames = torch.rand(2, 2, 2, 16, 16).round()  # [T, B, 2, H, W] event counts
    with torch.no_grad():
        expected = plain(torch.cat([frames, frames.sum(dim=2, keepdim=True)], dim=2))
        assert torch.equal(summed(frames), expected)
    with pytest.raises(ValueError, match="expected 2 channels"):
        summed(torch.rand(2, 2, 3, 16, 16))


# The attention scale of each entry whose attention scales (SSA, LS-SSA), and where it comes from.
ATTENTION_SCALES = {
    # ZK-Zhou/spikformer @6212689 imagenet/model.py and cifar10/model.py: self.scale = 0.125; paper section 4.1
    **{f"spikformer-{v}": 0.125 for v in ("8-384", "6-512", "8-512", "10-512", "8-768", "4-256", "2-384", "4-384")},
    # cifar10dvs/model.py: self.scale = 0.25 (the paper's section 4.2: a learnable scale); no official gesture code
    "spikformer-cifar10dvs-2-256": 0.25,
    "spikformer-gesture-2-256": 0.25,
    "spikformer-v2-8-512": 0.125,  # no public code: Spikformer's ImageNet scale
    # zhouchenlin2096/Spikingformer @4378623 imagenet/model.py: self.scale = 0.125
    "spikingformer-8-384": 0.125,
    "spikingformer-8-512": 0.125,
    "spikingformer-8-768": 0.125,
    # zhouchenlin2096/QKFormer @c2a00e8 imagenet/qkformer.py: the SSA stage's self.scale = 0.125
    **{f"qkformer-10-{d}": 0.125 for d in (384, 512, 768)},
    "lsformer-4-384": 0.125,  # snnas's reading, as SSA
}


def test_every_scaled_attention_entry_has_its_sourced_scale_and_no_other_entry_claims_one():
    from snnas.nas.models.arch import ADDED_LATER, SCALED_ATTENTION

    for name, entry in ZOO.items():
        arch = entry.arch
        if SCALED_ATTENTION & set(arch.attention):
            assert arch.attn_scale == ATTENTION_SCALES[name] and not arch.attn_scale_learnable, name
        else:  # SDSA, DSSA (firing-rate scaling), A2OS2A ("no scaling"): the field keeps its default
            assert name not in ATTENTION_SCALES and arch.attn_scale == ADDED_LATER["attn_scale"], name


def test_spikformer_event_entries_have_the_papers_heads():
    """Section 4.2: 8 heads for DVS128 Gesture, 16 for CIFAR10-DVS (as the official cifar10dvs/model.py)."""
    assert ZOO["spikformer-gesture-2-256"].arch.heads == (8,)
    assert ZOO["spikformer-cifar10dvs-2-256"].arch.heads == (16,)
    for name in ("spikformer-gesture-2-256", "spikformer-cifar10dvs-2-256"):
        assert "0.25" in ZOO[name].interpretation and "learn" in ZOO[name].interpretation


def test_sdt_8_768_is_built_at_the_288_px_of_its_published_figures_and_says_it_trains_at_224():
    entry = ZOO["sdt-8-768"]
    assert entry.arch.img_size == 288 and entry.train_img_size == 224 and "288" in entry.cited
    assert abs(entry.params_m() - 66.34) <= 0.01  # the position embedding is a conv: no parameter depends on the side
    assert all(e.train_img_size is None for e in ZOO.values() if e is not entry)
    arch = entry.arch.replace(time_steps=1, depths=(1,))
    with torch.device("meta"):
        logits = build_model(arch).eval()(torch.zeros(1, 3, 288, 288))
    assert logits.shape == (1, 1000)
