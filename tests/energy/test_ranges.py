"""Profile terms with ranges (issue 26): each end with its source, every energy as value [low - high]."""

import csv
import io
import json
import re
from collections import Counter

import pytest
import yaml

from snnas.energy.counts import LayerCounts, OpCounts, OpRecord
from snnas.energy.estimate import estimate
from snnas.energy.profile import ProfileError, builtin_profile_names, load_profile, parse_profile
from tests.cli.test_cli import snnas
from tests.cli.test_energy_cli import _saved_snnas_model

RANGED = {
    "name": "ranged", "title": "a profile with ranges", "kind": "cmos", "regime": "fp32", "source": "test",
    "terms": {
        "mac_pj": {"value": 4.0, "source": "a", "evidence": "e",
                   "range": {"low": {"value": 2.0, "source": "lo"}, "high": {"value": 5.0, "source": "hi"}}},
        "ac_pj": {"value": 1.0, "source": "b", "evidence": "e", "range": {"low": {"value": 0.5, "source": "lo"}}},
        "add_pj": {"value": 0.1, "source": "c", "evidence": "e"},
        "neuron_update_pj": {"value": 3.0, "source": "d", "evidence": "e",
                             "range": {"high": {"value": 7.0, "source": "hi"}}},
        "bn_pj": {"value": None, "source": "unknown", "evidence": "unknown"},
    },
}


def _counts() -> OpCounts:
    """Layer a: 1000 MACs; layer b: 3000 ACs and 100 neuron updates."""
    mac = OpRecord("conv", 1000.0, 0.0, ("real", "real"), (1.0, 1.0), (1.0, 1.0), {"mac": 1000.0})
    ac = OpRecord("conv", 3000.0, 0.0, ("binary", "real"), (1.0, 1.0), (1.0, 1.0), {"ac": 3000.0})
    return OpCounts([LayerCounts("a", "Conv2d", 0, [mac]),
                     LayerCounts("b", "Conv2d", 1, [ac], Counter({"neuron_updates": 100}))], 1, 0, {})


def test_a_ranged_profile_prices_low_value_and_high_by_hand():
    profile = parse_profile(RANGED, origin="test")
    e = estimate(_counts(), profile)
    assert e.total_mj == pytest.approx((1000 * 4 + 3000 * 1 + 100 * 3) / 1e9)
    assert e.total_low_mj == pytest.approx((1000 * 2 + 3000 * 0.5 + 100 * 3) / 1e9)  # no low end: the value
    assert e.total_high_mj == pytest.approx((1000 * 5 + 3000 * 1 + 100 * 7) / 1e9)
    assert e.total_low_mj <= e.total_mj <= e.total_high_mj and e.has_range
    assert e.by_layer_low_mj == pytest.approx({"a": 2e-6, "b": 1.8e-6})
    assert e.by_layer_high_mj == pytest.approx({"a": 5e-6, "b": 3.7e-6})
    for end, total in (("low", e.total_low_mj), ("high", e.total_high_mj)):  # each bound: every term at that end
        at_end = estimate(_counts(), profile.at(end))
        assert at_end.total_mj == total and not at_end.has_range
    term = profile.terms["ac_pj"]
    assert (term.at("low"), term.at("high"), term.low_source, term.high_source) == (0.5, 1.0, "lo", "")


def test_old_profiles_load_unchanged_and_price_no_band():
    for name in builtin_profile_names():
        profile = load_profile(name)
        assert all(t.at("low") == t.at("high") == t.value for t in profile.terms.values()
                   if not t.has_range)
    e = estimate(_counts(), load_profile("45nm-fp32"))
    assert e.total_low_mj == e.total_high_mj == e.total_mj and not e.has_range
    assert e.to_dict()["total_low_mj"] == e.to_dict()["total_high_mj"] == e.total_mj
    loihi = load_profile("loihi")
    assert not loihi.has_range and loihi.at("low") == loihi == loihi.at("high")


def test_the_shipped_ranges_and_their_sources():
    truenorth = load_profile("truenorth").terms["ac_pj"]
    assert (truenorth.at("low"), truenorth.value, truenorth.at("high")) == (2.5, 26.0, 26.0)
    assert "Akopyan" in truenorth.low_source and "Merolla" in truenorth.source
    e = estimate(_counts(), load_profile("truenorth"))  # 3000 ACs at 2.5 / 26 pJ (the MAC is unknown: incomplete)
    assert (e.total_low_mj, e.total_mj) == pytest.approx((3000 * 2.5e-9, 3000 * 26e-9))
    for name in ("45nm-fp32", "45nm-fp16", "45nm-int32", "45nm-int8"):
        memory = load_profile(name).memory
        assert memory.has_range and "64-bit" in memory.low_source
        for size, value in ((8192, 2.5), (32768, 5.0), (1 << 20, 25.0), (20000, None)):
            assert memory.at("low").pj_per_byte(size) == pytest.approx(memory.pj_per_byte(size) / 2)
            assert memory.at("high").pj_per_byte(size) == memory.pj_per_byte(size)
            if value is not None:
                assert memory.pj_per_byte(size) == value
        assert not any(t.has_range for t in load_profile(name).terms.values())  # the arithmetic: Horowitz only


@pytest.mark.parametrize("change, message", [
    (lambda d: d["terms"]["mac_pj"]["range"]["low"].update(value=4.5), "wrong side"),
    (lambda d: d["terms"]["mac_pj"]["range"]["high"].update(value=3.0), "wrong side"),
    (lambda d: d["terms"]["mac_pj"]["range"]["low"].pop("source"), "source"),
    (lambda d: d["terms"]["mac_pj"]["range"]["low"].update(source=" "), "source"),
    (lambda d: d["terms"]["mac_pj"]["range"].update(middle={"value": 1, "source": "x"}), "low and/or high"),
    (lambda d: d["terms"]["bn_pj"].update(range={"low": {"value": 1, "source": "x"}}), "needs a value"),
    (lambda d: d["terms"]["mac_pj"]["range"]["low"].update(value=-1), "value"),
])
def test_bad_ranges_are_refused_with_the_place(change, message):
    data = yaml.safe_load(yaml.safe_dump(RANGED))
    change(data)
    with pytest.raises(ProfileError, match=message):
        parse_profile(data, origin="bad.yaml")


def test_a_memory_range_keeps_the_sizes_and_its_side():
    data = yaml.safe_load(open(load_profile.__globals__["resources"].files("snnas.energy") / "profiles" /
                               "45nm-fp32.yaml"))
    data["memory"]["range"]["low"]["pj_per_byte"][1] = [4096, 1.25]
    with pytest.raises(ProfileError, match="sizes"):
        parse_profile(data, origin="m.yaml")
    data["memory"]["range"]["low"]["pj_per_byte"][1] = [8192, 3.0]
    with pytest.raises(ProfileError, match="its side"):
        parse_profile(data, origin="m.yaml")


def _ranged_file(tmp_path):
    path = tmp_path / "ranged.yaml"
    path.write_text(yaml.safe_dump(RANGED))
    return str(path)


def test_the_cli_prints_the_range_in_table_json_and_csv(tmp_path):
    model, ranged = str(_saved_snnas_model(tmp_path)), _ranged_file(tmp_path)
    common = ("energy", model, "--samples", "2", "--no-baseline", "-p", ranged, "-p", "45nm-fp32")
    report = json.loads(snnas(*common, "-f", "json").stdout)
    mine, fp32 = report["energy"]
    assert mine["total_low_mj"] < mine["total_mj"] < mine["total_high_mj"]
    assert fp32["total_low_mj"] == fp32["total_mj"] == fp32["total_high_mj"]
    low = sum(row["energy_low_mj_by_profile"]["ranged"] for row in report["layers"])
    assert low == pytest.approx(mine["total_low_mj"], rel=1e-12)
    rows = list(csv.DictReader(io.StringIO(snnas(*common, "-f", "csv").stdout)))
    total = rows[-1]
    assert float(total["energy_low_mj[ranged]"]) == pytest.approx(mine["total_low_mj"])
    assert float(total["energy_high_mj[ranged]"]) == pytest.approx(mine["total_high_mj"])
    assert total["energy_low_mj[45nm-fp32]"] == total["energy_mj[45nm-fp32]"] == total["energy_high_mj[45nm-fp32]"]
    table = snnas(*common).stdout
    assert f"{mine['total_mj']:.4g} [{mine['total_low_mj']:.4g} - {mine['total_high_mj']:.4g}]" in table
    assert "[low - high]: the same counts" in table
    plain = snnas("energy", model, "--samples", "2", "--no-baseline").stdout
    assert not re.search(r"\d \[\d", plain) and "[low - high]" not in plain  # no band without ranges


def test_the_memory_model_carries_the_memory_range(tmp_path):
    out = snnas("energy", str(_saved_snnas_model(tmp_path)), "--samples", "2", "--memory", "--no-baseline",
                "-f", "json")
    fp32 = json.loads(out.stdout)["energy"][0]
    memory = fp32["by_part_mj"]["memory"]
    assert memory > 0 and fp32["total_high_mj"] == fp32["total_mj"]
    assert fp32["total_low_mj"] == pytest.approx(fp32["total_mj"] - memory / 2)  # every memory point halved


def test_profiles_show_gives_both_ends_and_their_sources():
    out = snnas("profiles", "--show", "truenorth", "-f", "json")
    ac = json.loads(out.stdout)[0]["terms"]["ac_pj"]
    assert ac["range"]["low"]["value"] == 2.5 and "Akopyan" in ac["range"]["low"]["source"]
    assert ac["range"]["high"] == {"value": 26.0, "source": ac["source"]}


def test_a_search_trial_records_the_range_of_ranged_profiles_only():
    import torch

    from snnas.energy.counting import count_ops
    from snnas.nas.models import build_model
    from snnas.nas.search.study import _energies
    from tests.conftest import tiny_arch

    arch = tiny_arch()
    counts = count_ops(build_model(arch), torch.rand(1, 3, 16, 16))
    attrs = _energies(counts, arch, [load_profile("45nm-fp32"), load_profile("loihi")], "snnas")
    assert "energy_low_mj" not in attrs  # arithmetic: no 45 nm term carries a range, Loihi none at all
    low, high = attrs["energy_lemaire_low_mj"], attrs["energy_lemaire_high_mj"]
    assert set(low) == set(high) == {"45nm-fp32"}  # the memory range
    assert low["45nm-fp32"] < attrs["energy_lemaire_mj"]["45nm-fp32"] == high["45nm-fp32"]


def test_the_pareto_plot_draws_the_band_of_front_points_with_a_range(tmp_path, monkeypatch):
    import matplotlib.axes
    import optuna
    from optuna.trial import TrialState

    from snnas.nas.models.arch import ArchConfig
    from snnas.nas.report.tables import trials_frame, write_reports

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr("snnas", {"objective_profile": "p"})
    for acc, mj, band in ((0.5, 1.0, (0.6, 1.5)), (0.6, 2.0, None), (0.3, 3.0, (2.0, 4.0))):  # the last: dominated
        attrs = {"arch": ArchConfig().to_dict(), "params": 1000, "energy_mj": {"p": mj}, "energy_complete": {"p": True}}
        if band:
            attrs |= {"energy_low_mj": {"p": band[0]}, "energy_high_mj": {"p": band[1]}}
        study.add_trial(optuna.trial.create_trial(values=[acc, mj], user_attrs=attrs, state=TrialState.COMPLETE))
    frame = trials_frame(study)
    assert frame["energy_low_mj"].tolist()[:1] == [0.6] and frame["energy_high_mj"].isna().tolist() == [False, True,
                                                                                                          False]
    drawn = []
    original = matplotlib.axes.Axes.errorbar
    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar",
                        lambda self, x, y, **kw: drawn.append((list(x), [list(e) for e in kw["xerr"]]))
                        or original(self, x, y, **kw))
    write_reports(study, tmp_path / "r")
    assert (tmp_path / "r" / "pareto.png").stat().st_size > 0
    assert drawn == [([1.0], [[pytest.approx(0.4)], [pytest.approx(0.5)]])]  # the front point with a range only
