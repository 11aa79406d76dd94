"""Published energy figures reproduced from counts (shared/reference/energy.md)."""

import pytest
import torch

from snnas.energy.conventions import with_rates
from snnas.energy.counting import OpCounts, count_ops
from snnas.energy.estimate import estimate
from snnas.energy.profile import load_profile
from snnas.nas.models import build_model
from snnas.nas.models.zoo import get

FP32 = "45nm-fp32"


def test_45nm_fp32_prices_a_mac_at_4_6_and_an_ac_at_0_9_pj():
    profile = load_profile(FP32)
    assert profile.value("mac_pj") == 4.6 and profile.value("ac_pj") == 0.9 and profile.regime == "fp32"


@pytest.mark.parametrize("sops_g, published_mj", [(6.82, 7.73), (11.09, 11.58), (22.09, 21.48)])
def test_spikformer_imagenet_energies_follow_from_their_sops(sops_g, published_mj):
    """Spikformer 8-384 / 8-512 / 8-768: 4.6 pJ x 0.3468 G (first conv at T=4) + 0.9 pJ x SOPs."""
    from snnas.energy.conventions import CONVENTIONS
    from snnas.energy.counting import LayerCounts, OpRecord

    first = OpRecord("conv", 0.3468e9, 0.0, ("real", "real"), (1.0, 1.0), (1.0, 1.0), {"mac": 0.3468e9})
    rest = OpRecord("conv", sops_g * 1e9, 0.0, ("binary", "real"), (1.0, 1.0), (1.0, 1.0), {"ac": sops_g * 1e9})
    counts = OpCounts([LayerCounts("conv1", "Conv2d", 0, [first]), LayerCounts("blocks", "Conv2d", 1, [rest])],
                      1, 0, {})
    assert "spikformer" in CONVENTIONS
    got = estimate(counts, load_profile(FP32), convention="spikformer").total_mj
    assert got == pytest.approx(published_mj, abs=0.01)


# Spikingformer-8-512 ImageNet public log: per-block input rates (q/k/v input, proj input, fc1 input,
# fc2 input) and Q/K/V output rates, in percent.
BLOCK_INPUT_RATES = [(17.66, 29.78, 26.77, 3.29), (33.80, 30.96, 33.02, 2.96), (34.22, 31.42, 34.73, 2.56),
                     (34.43, 29.09, 34.66, 1.93), (34.33, 20.99, 36.04, 1.42), (35.93, 16.57, 35.95, 0.95),
                     (34.23, 10.68, 32.27, 0.57), (31.77, 9.48, 29.92, 1.38)]
QKV_OUTPUT_RATES = [(17.2, 3.6, 7.0), (11.6, 4.0, 7.2), (10.7, 4.4, 7.5), (8.2, 5.0, 7.7), (6.4, 4.3, 7.1),
                    (7.7, 3.1, 7.3), (7.0, 2.4, 7.3), (9.7, 2.8, 8.0)]
# Spikingformer's tokenizer: convs 2..4 and the last (its "rpe" conv, no residual), after a neuron each
SPS_RATES = {"stem.rounds.0.conv.conv": 25.83, "stem.rounds.1.conv.conv": 15.34, "stem.rounds.2.conv.conv": 13.11,
             "stem.rounds.3.conv.conv": 12.96}


def _published_rates():
    rates = {name: r / 100 for name, r in SPS_RATES.items()}
    for b, ((qkv, proj, fc1, fc2), (q, k, v)) in enumerate(zip(BLOCK_INPUT_RATES, QKV_OUTPUT_RATES)):
        p = f"stages.0.block{b}"
        rates.update({f"{p}.attn.q.conv": qkv / 100, f"{p}.attn.k.conv": qkv / 100, f"{p}.attn.v.conv": qkv / 100,
                      f"{p}.attn.proj.conv": proj / 100, f"{p}.mlp.fc1.conv": fc1 / 100,
                      f"{p}.mlp.fc2.conv": fc2 / 100,
                      # Q(K^T V): first K^T @ V, then Q @ (K^T V)
                      f"{p}.attn": [(k / 100, v / 100), (q / 100, None)]})
    return rates


@pytest.mark.slow
def test_spikingformer_8_512_imagenet_log_is_reproduced_in_rate_mode():
    model = build_model(get("spikingformer-8-512").arch)
    counts = count_ops(model, torch.rand(1, 3, 224, 224))
    block0 = next(c for c in counts.layers if c.name == "stages.0.block0.attn.q.conv")
    assert block0.total("dense") == 205_520_896  # T * N * D * D
    fc1 = next(c for c in counts.layers if c.name == "stages.0.block0.mlp.fc1.conv")
    assert fc1.total("dense") + fc1.total("bias") == 823_689_216
    rated = with_rates(counts, _published_rates())
    result = estimate(rated, load_profile(FP32), convention="spikingformer")
    macs_g = result.by_term_mj["mac_pj"] / 4.6 * 1e9 / 1e9
    acs_g = result.by_term_mj["ac_pj"] / 0.9 * 1e9 / 1e9
    assert macs_g == pytest.approx(0.347329512, rel=1e-6)  # first conv 346,816,512 + head 513,000
    assert acs_g == pytest.approx(6.517540941, rel=0.005)
    assert result.total_mj == pytest.approx(7.4635, rel=0.005)
