"""Firing rates as input: rate tables (YAML, CSV), their checks, rate mode in every convention, ``--rates``."""

import json
import os

import pytest
import torch

from snnas.energy.conventions import with_rates
from snnas.energy.counting import count_ops
from snnas.energy.estimate import estimate
from snnas.energy.profile import load_profile
from snnas.energy.rates import RatesError, published, read_table, resolve, shipped
from snnas.nas.models import build_model
from snnas.nas.models.checkpoint import save_model
from snnas.nas.models.zoo import ZOO
from tests.cli.test_cli import snnas
from tests.conftest import tiny_arch


@pytest.fixture(scope="module")
def tiny_counts():
    torch.manual_seed(0)
    model = build_model(tiny_arch())
    return count_ops(model, torch.rand(2, tiny_arch().in_channels, tiny_arch().img_size, tiny_arch().img_size))


def _event_layer(counts):
    """A layer with one conv / linear fed by events."""
    return next(c for c in counts.layers if len(c.records) == 1 and c.records[0].op != "matmul"
                and c.records[0].kinds[0] != "real")


def test_every_shipped_table_names_its_source_and_a_zoo_entry():
    assert {"spikingformer-8-512", "spikingformer-8-768"} <= set(shipped())
    for name in shipped():
        table = published(name)
        assert table.source and "@" in table.source  # repository@commit path
        assert table.meta["convention"] and table.meta["published_mj"] > 0
    assert "spikingformer-8-512" in ZOO


def test_a_yaml_table_and_a_csv_table_read_alike(tmp_path):
    yaml_file = tmp_path / "r.yaml"
    yaml_file.write_text("a.conv: 0.25\nb.attn: {q: 0.1, k: 0.2, v: 0.3}\n")
    csv_file = tmp_path / "r.csv"
    csv_file.write_text("layer,rate,q,k,v\na.conv,0.25,,,\nb.attn,,0.1,0.2,0.3\n")
    assert read_table(yaml_file).rates == read_table(csv_file).rates == {"a.conv": 0.25,
                                                                          "b.attn": {"q": 0.1, "k": 0.2, "v": 0.3}}


@pytest.mark.parametrize("text, words", [
    ("a.conv: .nan\n", ["a.conv", "nan"]),
    ("a.conv: 1.5\n", ["a.conv", "1.5"]),
    ("a.conv: -0.1\n", ["a.conv"]),
    ("a.conv: true\n", ["a.conv", "True"]),
    ("a.conv: '0.3'\n", ["a.conv"]),
    ("b.attn: {q: 0.1, k: 0.2}\n", ["b.attn"]),
    ("b.attn: {q: 0.1, k: 0.2, v: .inf}\n", ["b.attn.v"]),
    ("rates: {a.conv: 0.2}\n", ["source"]),
    ("rates: {a.conv: 0.2}\nsource: x\nauthor: y\n", ["author"]),
    ("- 0.2\n", ["mapping"]),
])
def test_a_bad_value_is_refused_naming_its_key(tmp_path, text, words):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(RatesError) as err:
        read_table(path)
    assert len(str(err.value).splitlines()) == 1 and all(w in str(err.value) for w in words)


def test_a_bad_csv_is_refused(tmp_path):
    for text, word in [("name,rate\na,0.1\n", "header"), ("layer,rate\na,x\n", "'x'"), ("layer,rate\na,2\n", "a:"),
                       ("layer,rate\n,0.2\n", "line 2")]:
        path = tmp_path / "r.csv"
        path.write_text(text)
        with pytest.raises(RatesError, match=word):
            read_table(path)


def test_a_fifo_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "rates.yaml"
    os.mkfifo(fifo)
    with pytest.raises(RatesError, match="not a regular file"):
        read_table(fifo)


def test_an_unknown_layer_is_refused_listing_valid_ones(tmp_path, tiny_counts):
    path = tmp_path / "r.yaml"
    path.write_text("stages.0.block9.attn.q.conv: 0.2\n")
    with pytest.raises(RatesError) as err:
        resolve(read_table(path), tiny_counts)
    message = str(err.value)
    assert "block9" in message and _event_layer(tiny_counts).name.split(".")[0] in message
    assert len(message.splitlines()) == 1


def test_published_names_the_entries_that_have_a_table():
    with pytest.raises(RatesError) as err:
        published("spikformer-4-256")
    assert "spikformer-4-256" in str(err.value) and "spikingformer-8-512" in str(err.value)


def test_given_rates_price_every_convention_at_those_rates(tiny_counts):
    layer = _event_layer(tiny_counts)
    rec = layer.records[0]
    rated = with_rates(tiny_counts, {layer.name: 0.25})
    new = next(c for c in rated.layers if c.name == layer.name).records[0]
    assert new.operand_rates[0] == 0.25 and new.nnz[0] == pytest.approx(0.25 * rec.numel[0])
    assert new.total("acs") == pytest.approx(0.25 * rec.dense)  # exact conventions: the expectation at that rate
    assert new.total("rate_dense") == pytest.approx(0.25 * rec.dense)  # rate-based ones: the papers' estimate
    fp32 = load_profile("45nm-fp32")
    for convention in ("snnas", "spikformer", "spikingformer", "spikingresformer", "spikingjelly"):
        before = estimate(tiny_counts, fp32, convention=convention).by_layer_mj.get(layer.name, 0.0)
        after = estimate(rated, fp32, convention=convention).by_layer_mj.get(layer.name, 0.0)
        if convention != "spikingresformer" or before:
            assert after != before or rec.operand_rates[0] == 0.25, convention


def test_qkv_rates_go_to_the_attention_matmuls_in_their_order(tiny_counts):
    attention = next((c for c in tiny_counts.layers if len(c.records) == 2
                      and all(r.op == "matmul" for r in c.records)), None)
    if attention is None:
        pytest.skip("the tiny architecture has no two-matmul attention")
    from snnas.energy.rates import RateTable

    pairs = resolve(RateTable({attention.name: {"q": 0.1, "k": 0.2, "v": 0.3}}, "t"), tiny_counts)[attention.name]
    assert pairs in ([(0.2, 0.3), (0.1, 1.0)], [(0.1, 0.2), (1.0, 0.3)])


def _tiny_model_file(tmp_path):
    path = tmp_path / "model.pt"
    save_model(build_model(tiny_arch()), tiny_arch(), path)
    return path


def _one_error_line(out):
    errors = [line for line in out.stderr.strip().splitlines() if not line.startswith(("note:", "warning:"))]
    return out.returncode == 2 and len(errors) == 1 and "Traceback" not in out.stderr


def test_bad_rate_files_give_one_line_and_exit_2(tmp_path):
    model = _tiny_model_file(tmp_path)
    (tmp_path / "nan.yaml").write_text("stem.conv: .nan\n")
    (tmp_path / "big.csv").write_text("layer,rate\nstem.conv,1.5\n")
    (tmp_path / "unknown.yaml").write_text("no.such.layer: 0.2\n")
    os.mkfifo(tmp_path / "fifo.yaml")
    for name, word in [("nan.yaml", "stem.conv"), ("big.csv", "1.5"), ("unknown.yaml", "no.such.layer"),
                       ("fifo.yaml", "regular file"), ("missing.yaml", "no such")]:
        out = snnas("energy", str(model), "--samples", "1", "--rates", str(tmp_path / name), "-f", "json")
        assert _one_error_line(out) and word in out.stderr, (name, out.stderr)


def test_rates_published_without_a_table_is_one_line_naming_the_tables(tmp_path):
    out = snnas("energy", "spikformer-4-256", "--rates", "published", "-f", "json")
    assert _one_error_line(out) and "spikingformer-8-512" in out.stderr


def test_the_report_says_rates_were_given(tmp_path):
    model = _tiny_model_file(tmp_path)
    plain = json.loads(snnas("energy", str(model), "--samples", "1", "-f", "json").stdout)
    layer = next(r["name"] for r in plain["layers"] if r["operand"] == "binary" and r["dense"] and r["type"].startswith("Conv"))
    table = tmp_path / "r.csv"
    table.write_text(f"layer,rate\n{layer},0.5\n")
    out = snnas("energy", str(model), "--samples", "1", "--rates", str(table), "-f", "json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["rates"]["given"] == str(table) and report["rates"]["layers"] == [layer]
    assert plain["rates"] is None
    row = next(r for r in report["layers"] if r["name"] == layer)
    assert row["in_rate"] == pytest.approx(0.5) and row["acs"] == pytest.approx(0.5 * row["dense"])
    shown = snnas("energy", str(model), "--samples", "1", "--rates", str(table))
    assert "at given firing rates" in shown.stdout and "firing rates given" in shown.stdout


@pytest.mark.slow
def test_rates_published_reproduces_spikingformer_8_512s_log():
    """The authors' log: 0.347329512 G MACs, 6.51754094 G ACs, 7.4635 mJ (README: 7.46 mJ)."""
    out = snnas("energy", "spikingformer-8-512", "--rates", "published", "-c", "spikingformer", "-p", "45nm-fp32",
                "--samples", "1", "-f", "json", timeout=900)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["rates"]["given"] == "published: spikingformer-8-512"
    assert report["energy"][0]["total_mj"] == pytest.approx(7.4635, rel=0.005)  # the log's own tolerance
    assert report["energy"][0]["total_mj"] == pytest.approx(7.463502601886196, rel=1e-6)  # in fact: its digits


def test_apply_takes_a_file_a_mapping_or_a_published_name(tmp_path, tiny_counts):
    from snnas.energy.rates import apply

    layer = _event_layer(tiny_counts).name
    path = tmp_path / "r.yaml"
    path.write_text(f"{layer}: 0.5\n")
    by_file, by_mapping = apply(tiny_counts, path), apply(tiny_counts, {layer: 0.5})
    assert by_file.total("acs") == by_mapping.total("acs")
    with pytest.raises(RatesError, match="nan"):
        apply(tiny_counts, {layer: float("nan")})
    with pytest.raises(RatesError, match="spikingformer-8-512"):
        apply(tiny_counts, "published:spikformer-4-256")
