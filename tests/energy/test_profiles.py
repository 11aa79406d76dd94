import pytest
import torch
from torch import nn

from snnas.energy.counting import count_ops
from snnas.energy.estimate import estimate
from snnas.energy.profile import ProfileError, builtin_profile_names, load_profile

HOROWITZ = {"45nm-fp32": (4.6, 0.9), "45nm-fp16": (1.5, 0.4), "45nm-int32": (3.2, 0.1), "45nm-int8": (0.23, 0.03)}


@pytest.mark.parametrize("name", builtin_profile_names())
def test_every_builtin_profile_names_a_source_and_evidence_for_every_term(name):
    profile = load_profile(name)
    assert profile.source and profile.regime
    for term in profile.terms.values():
        assert term.source and term.evidence
        assert term.value is None or term.value >= 0


@pytest.mark.parametrize("name, mac_ac", HOROWITZ.items())
def test_45nm_regimes_follow_horowitz(name, mac_ac):
    profile = load_profile(name)
    assert (profile.value("mac_pj"), profile.value("ac_pj")) == mac_ac


def test_an_estimate_needing_an_unknown_term_is_incomplete_and_names_it():
    counts = count_ops(nn.Linear(3, 2), torch.rand(1, 3))  # real input: one MAC-driven layer
    result = estimate(counts, load_profile("loihi"))
    assert not result.complete and result.missing == ["mac_pj"]
    assert estimate(counts, load_profile("45nm-fp32")).total_mj == pytest.approx(6 * 4.6e-9)


def test_user_profile_files_are_validated_strictly(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text(open(load_profile.__code__.co_filename.replace("profile.py", "profiles/45nm-fp32.yaml")).read()
                    .replace("name: 45nm-fp32", "name: mine"))
    assert load_profile(str(good)).name == "mine"
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("value: 0.9", "value: -1", 1))
    with pytest.raises(ProfileError, match="value"):
        load_profile(str(bad))
    for hostile in (".nan", ".inf", "-.inf", "true", "'0.9'"):
        broken = tmp_path / "broken.yaml"
        broken.write_text(good.read_text().replace("value: 0.9", f"value: {hostile}", 1))
        with pytest.raises(ProfileError, match="finite non-negative"):
            load_profile(str(broken))
    with pytest.raises(ProfileError, match="no such profile file"):
        load_profile(str(tmp_path / "absent.yaml"))
    typo = tmp_path / "typo.yaml"
    typo.write_text(good.read_text().replace("ac_pj:", "acc_pj:", 1))
    with pytest.raises(ProfileError, match="acc_pj"):
        load_profile(str(typo))


def test_memory_mode_adds_sram_traffic_after_lemaire():
    from snnas.energy.memory import read_geometry

    model = nn.Linear(3, 2, bias=False)
    counts, geometry = count_ops(model, torch.ones(1, 3)), read_geometry(model)
    profile = load_profile("45nm-fp32")
    plain = estimate(counts, profile)
    with_memory = estimate(counts, profile, memory=True, geometry=geometry)
    assert with_memory.total_mj > plain.total_mj and with_memory.part_mj("memory") > 0
    assert estimate(counts, load_profile("loihi"), memory=True, geometry=geometry).missing == ["memory"]
    assert not estimate(counts, profile, memory=True).complete  # the model's layers are needed


def test_a_term_a_profile_leaves_out_is_unknown_unless_the_hardware_has_no_such_cost(tmp_path):
    text = open(load_profile.__code__.co_filename.replace("profile.py", "profiles/45nm-fp32.yaml")).read()
    start = text.index("  nonlinear_pj:")
    mine = tmp_path / "mine.yaml"
    mine.write_text(text[:start] + text[text.index("  bn_pj:"):])  # no nonlinear_pj at all
    counts = count_ops(nn.Softmax(-1), torch.rand(1, 4))
    result = estimate(counts, load_profile(str(mine)))
    assert not result.complete and result.missing == ["nonlinear_pj"]
    from spikingjelly.activation_based.neuron import LIFNode

    spikes = count_ops(LIFNode(step_mode="m"), torch.full((2, 1, 3), 3.0), batch_dim=1)
    assert spikes.total("spikes") == 6 and "spike_pj" not in load_profile(str(mine)).terms
    assert estimate(spikes, load_profile(str(mine))).complete  # no spike_pj: no routing cost on CMOS
