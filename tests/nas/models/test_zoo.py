"""The zoo reproduces the published parameter counts under each paper's convention."""

import pytest
import torch

from nas.models import build_model
from nas.models.params import count_parameters
from nas.models.zoo import ZOO, get

REQUIRED = [f"spikformer-{v}" for v in ("8-384", "6-512", "8-512", "10-512", "8-768", "4-256", "2-384", "4-384")] + \
    [f"spikingresformer-{v}" for v in ("ti", "s", "m", "l", "cifar")] + ["a2os2a-8-512", "a2os2a-10-512"]


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
