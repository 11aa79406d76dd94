"""What ``snnas energy`` writes: the report as a dict (JSON), CSV rows, and the terminal tables.

Every layer that costs energy under the first profile is a row, with its share of the total,
so the rows add up to the total; a total that leaves something out is marked a lower bound.
"""

from __future__ import annotations

import csv
import io

from rich import box
from rich.markup import escape
from rich.table import Table

from snnas.cli.common import console
from snnas.energy.estimate import PARTS

LAYER_KEYS = ("macs", "acs", "ac", "ac_signed", "ac_multi", "ac_coincidence", "dense", "rate_dense", "bias",
              "neuron_updates", "spikes", "residual_adds", "masks", "products", "reductions", "pool",
              "activations", "nonlinear", "norm", "bn", "scalings")
OTHER_KEYS = ("residual_adds", "masks", "products", "reductions", "pool", "activations", "nonlinear", "norm")


def build_report(model: str, counts, estimates, input_info: dict, extra: dict) -> dict:
    """The JSON report: per sample, every layer that did any work, energies per profile."""
    layers = []
    for layer in counts.layers:
        row = {"name": layer.name, "type": layer.type, "operand": layer.operand, "in_rate": layer.in_rate,
               "params": layer.params}
        row.update({k: layer.total(k) for k in LAYER_KEYS})
        by_profile = {e.profile: e.by_layer_mj.get(layer.name, 0.0) for e in estimates}
        row["energy_mj"] = by_profile[estimates[0].profile] if estimates else None
        row["energy_mj_by_profile"] = by_profile
        ranged = [e for e in estimates if e.has_range]
        if ranged:  # the same layer priced at every term's low / high end (profile ranges)
            row["energy_low_mj_by_profile"] = {e.profile: e.by_layer_low_mj.get(layer.name, 0.0) for e in ranged}
            row["energy_high_mj_by_profile"] = {e.profile: e.by_layer_high_mj.get(layer.name, 0.0) for e in ranged}
        parts = {e.profile: e.by_layer_parts_mj.get(layer.name, {}) for e in estimates if e.memory}
        if parts:
            row["energy_parts_mj_by_profile"] = {p: {k: v.get(k, 0.0) for k in PARTS} for p, v in parts.items()}
        if any(row[k] for k in LAYER_KEYS) or any(by_profile.values()):
            layers.append(row)
    return {
        "model": model, "params": counts.params, "input": input_info, **extra,
        "per": "sample (all time steps)",
        "complete": counts.complete,
        "totals": {k: counts.total(k) for k in LAYER_KEYS},
        "layers": layers,
        "energy": [e.to_dict() for e in estimates],
        "unsupported": counts.unsupported,
    }


def render_csv(report: dict) -> str:
    """One row per layer, then a TOTAL row; an energy column and a completeness column per profile."""
    profiles = [e["profile"] for e in report["energy"]]
    split = [e["profile"] for e in report["energy"] if e.get("memory")]
    fields = ["name", "type", "operand", "in_rate", "params", *LAYER_KEYS,
              *(f"energy{end}_mj[{p}]" for p in profiles for end in ("", "_low", "_high")),
              *(f"{k}_mj[{p}]" for p in split for k in PARTS),
              *(f"complete[{p}]" for p in profiles), *_baseline_fields(report)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for row in report["layers"]:
        parts = row.get("energy_parts_mj_by_profile", {})
        writer.writerow({**row, **_energy_cells(row, profiles),
                         **{f"{k}_mj[{p}]": parts.get(p, {}).get(k, 0.0) for p in split for k in PARTS}})
    total = {"name": "TOTAL", "params": report["params"], **report["totals"]}
    for e in report["energy"]:
        total[f"energy_mj[{e['profile']}]"] = e["total_mj"]
        total[f"energy_low_mj[{e['profile']}]"] = e["total_low_mj"]
        total[f"energy_high_mj[{e['profile']}]"] = e["total_high_mj"]
        total.update({f"{k}_mj[{e['profile']}]": v for k, v in e.get("by_part_mj", {}).items()
                      if e["profile"] in split})
        total[f"complete[{e['profile']}]"] = e["complete"]
    total.update(_baseline_cells(report.get("baseline")))
    writer.writerow(total)
    return buffer.getvalue()


def _energy_cells(row: dict, profiles: list[str]) -> dict:
    """A layer's energy per profile with the ends of its range (the energy itself where no range)."""
    cells = {}
    for p in profiles:
        mj = row["energy_mj_by_profile"].get(p, 0.0)
        cells[f"energy_mj[{p}]"] = mj
        for end in ("low", "high"):
            cells[f"energy_{end}_mj[{p}]"] = row.get(f"energy_{end}_mj_by_profile", {}).get(p, mj)
    return cells


def with_range(value: float, low: float | None, high: float | None, fmt: str = ".4g") -> str:
    """``value [low - high]`` where the profile's ranges give a spread, else just the value."""
    text = f"{value:{fmt}}" if value else "0"
    if low is None or high is None or (low == value and high == value):
        return text
    return f"{text} [{low:{fmt}} - {high:{fmt}}]"


BASELINE_COLUMNS = ("ann_q_bits", "measured_rate")
BASELINE_PER_PROFILE = ("ann_q_mj", "snn_over_ann_q", "break_even_rate_q", "ann_int8_mj", "snn_over_ann_int8",
                        "break_even_rate_int8", "baseline_complete")


def _baseline_fields(report: dict) -> list[str]:
    baseline = report.get("baseline")
    if not baseline:
        return []
    return [*BASELINE_COLUMNS, *(f"{k}[{b['profile']}]" for b in baseline["by_profile"] for k in BASELINE_PER_PROFILE)]


def _baseline_cells(baseline: dict | None) -> dict:
    """The fair baseline's figures on the TOTAL row (empty cells where a figure does not exist)."""
    if not baseline:
        return {}
    cells = {"ann_q_bits": baseline["bits"], "measured_rate": baseline["measured_rate"]}
    for b in baseline["by_profile"]:
        for twin in b["twins"]:
            tag = "q" if twin["name"] == "quantized" else twin["name"]
            cells[f"ann_{tag}_mj[{b['profile']}]"] = twin["energy_mj"]
            cells[f"snn_over_ann_{tag}[{b['profile']}]"] = twin["snn_over_ann"]
            cells[f"break_even_rate_{tag}[{b['profile']}]"] = twin["break_even_rate"]
        cells[f"baseline_complete[{b['profile']}]"] = b["complete"]
    return cells


def baseline_report(baselines) -> dict:
    """The JSON "baseline" object: per profile, the SNN beside its ANN twins (energy.baseline)."""
    from snnas.energy.baseline import SOURCE, activation_bits

    first = baselines[0] if baselines else None
    steps = first.time_steps if first else None
    return {"source": SOURCE, "time_steps": steps, "bits": activation_bits(steps) if steps else None,
            "measured_rate": first.measured_rate if first else None,
            "neuron_rate": first.neuron_rate if first else None,
            "rule": "the same network computing in one step with ceil(log2(T+1))-bit (and 8-bit) activations: "
                    "dense/T MACs, a multiply scaled by its operands' bits (a*w/p^2 of the profile's), one "
                    "quantiser per neuron, the other element-wise work once; the break-even rate is the measured "
                    "event-input rate of the synapses times the uniform scale of every spike count at which the SNN costs as much as the ANN",
            "by_profile": [b.to_dict() for b in baselines]}


def _g(value: float) -> str:
    return f"{value:.3g}" if value else "0"


def _layer_table(report: dict, first) -> Table:
    lower = "" if first.complete else " (lower bound)"
    rated = ", at given firing rates" if report.get("rates") else ""
    model = ", Lemaire memory model" if first.memory else ""
    table = Table(title=f"{escape(report['model'])}: per sample (all time steps), {first.profile} {first.regime}, "
                        f"{first.convention} convention{model}{rated}", box=box.SIMPLE_HEAD, show_footer=True)
    table.add_column("layer", "total" + lower, min_width=20, overflow="fold")
    table.add_column("in", no_wrap=True)
    for col in ("rate", "MACs", "ACs", "neuron upd.", "other ops"):
        table.add_column(col, justify="right", no_wrap=True)
    parts = PARTS if first.memory else ()
    for part in parts:
        table.add_column(f"{part} mJ", f"{first.part_mj(part):.4g}", justify="right", no_wrap=True)
    table.add_column("mJ", with_range(first.total_mj, first.total_low_mj, first.total_high_mj), justify="right",
                     no_wrap=True)
    table.add_column("%", "100" if first.total_mj else "-", justify="right", no_wrap=True)
    for row in report["layers"]:
        mj = row["energy_mj_by_profile"].get(first.profile, 0.0)
        if not mj:
            continue
        rate = "-" if row["in_rate"] is None else f"{row['in_rate']:.3f}"
        other = sum(row[k] for k in OTHER_KEYS)
        split = row.get("energy_parts_mj_by_profile", {}).get(first.profile, {})
        table.add_row(escape(row["name"]), row["operand"] or "-", rate, _g(row["macs"]), _g(row["acs"]),
                      _g(row["neuron_updates"]), _g(other), *(_g(split.get(p, 0.0)) for p in parts),
                      with_range(mj, *(row.get(f"energy_{end}_mj_by_profile", {}).get(first.profile, mj)
                                       for end in ("low", "high")), ".3g"),
                      f"{100 * mj / first.total_mj:.1f}")
    return table


def print_tables(report: dict, estimates) -> None:
    console.print(_layer_table(report, estimates[0]))
    source = report["input"]
    per = "per sample" if source["per_sample"] else f"per batch of {source['samples']}"
    console.print(f"input: {escape(source['source'])}, shape {tuple(source['shape'])}; operand classes decided {per}; "
                  f"BatchNorm {report['bn']}")
    if report.get("rates"):
        given = report["rates"]
        source = f" (source: {given['source']})" if given.get("source") else ""
        console.print(f"firing rates given: {escape(given['given'])}{escape(source)}, for {len(given['layers'])} "
                      "layers; the other layers keep their measured rates")
    t = report["totals"]
    console.print(f"params {report['params']:,}  MACs {t['macs']:.4g}  ACs {t['acs']:.4g}  dense {t['dense']:.4g}  "
                  f"neuron updates {t['neuron_updates']:.4g}  spikes {t['spikes']:.4g}  "
                  f"residual adds {t['residual_adds']:.4g}  BatchNorm {t['bn']:.4g}")
    energy = Table(title="energy per sample", box=box.SIMPLE_HEAD)
    for col in ("profile", "regime", "convention", "mJ", "memory mJ", "complete"):
        energy.add_column(col, justify="right" if "mJ" in col else "left")
    for e in estimates:
        status = "yes" if e.complete else f"[red]no[/]: missing {escape(', '.join(e.missing))}"
        memory = f"{e.part_mj('memory'):.4g}" if e.memory else "-"
        energy.add_row(e.profile, e.regime, e.convention + (" + Lemaire memory" if e.memory else ""),
                       with_range(e.total_mj, e.total_low_mj, e.total_high_mj) +
                       ("" if e.complete else " (lower bound)"), memory, status)
    console.print(energy)
    if any(e.has_range for e in estimates):
        console.print("\\[low - high]: the same counts priced with every profile term at the low / the high end of "
                      "its published range (snnas profiles --show NAME gives both sources)")


def _break_even(twin: dict, rate) -> str:
    value = twin["break_even_rate"]
    if rate is None:
        return "- (no spike inputs)"
    if not rate:
        return "- (no spikes)"
    if value is None:
        return "never"
    return f"{value:.3g}" + (" (any rate)" if value > 1 else "")


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.3g}"


def print_baseline(baseline: dict) -> None:
    """The fair-baseline block after the energy table."""
    bits, rate = baseline["bits"], baseline["measured_rate"]
    table = Table(title=f"fair baseline: the same network as an ANN computing in one step what the SNN spreads over "
                        f"T={baseline['time_steps']} ({escape(baseline['source'])})", box=box.SIMPLE_HEAD)
    for col in ("profile", "SNN mJ", f"{bits}-bit ANN mJ", "SNN/ANN", f"break-even ({bits}-bit)", "INT8 ANN mJ",
                "SNN/INT8", "break-even (INT8)", "complete"):
        table.add_column(col, justify="left" if col in ("profile", "complete") else "right")
    for b in baseline["by_profile"]:
        q, i8 = b["twins"]
        missing = sorted({g for t in b["twins"] for g in t["missing"]})
        status = "yes" if b["complete"] else "[red]no[/]" + (f": ANN missing {escape(', '.join(missing))}"
                                                           if missing else ": SNN figure incomplete")
        table.add_row(b["profile"], f"{b['snn_mj']:.4g}", f"{q['energy_mj']:.4g}", _ratio(q["snn_over_ann"]),
                      _break_even(q, rate), f"{i8['energy_mj']:.4g}", _ratio(i8["snn_over_ann"]),
                      _break_even(i8, rate), status)
    console.print(table)
    measured = "no spike inputs" if rate is None else f"{rate:.3g} of the synapses' inputs spike per step"
    if baseline.get("neuron_rate") is not None:
        measured += f" (neurons: {baseline['neuron_rate']:.3g} spikes per neuron and step)"
    unscaled = [b["profile"] for b in baseline["by_profile"] if b["weight_bits"] is None]
    console.print(f"measured rate: {measured}; below the break-even rate (every spike count scaled alike) the SNN "
                  "costs less. Weights keep the profile's precision" +
                  (f"; {escape(', '.join(unscaled))}: not an integer regime, multiplies not scaled by bits"
                   if unscaled else ""))


def _tex_mj(value, low=None, high=None) -> str:
    if value is None:
        return "--"
    text = f"{value:.4g}"
    if low is not None and high is not None and (low != value or high != value):
        text += f" [{low:.3g}--{high:.3g}]"
    return text


def _tex_twin(twin: dict | None) -> list[str]:
    if twin is None:
        return ["--", "--", "--"]
    rate = twin.get("break_even_rate")
    return [_tex_mj(twin["energy_mj"]), "--" if twin["snn_over_ann"] is None else f"{twin['snn_over_ann']:.3g}",
            "--" if rate is None else f"{rate:.3g}"]


def render_latex(report: dict) -> str:
    """A booktabs table for a paper: per profile the SNN's energy per sample (with its range) beside
    its fair baseline (energy.baseline): each ANN twin's energy, the SNN's ratio to it, and the
    break-even rate; the caption says the model, the input, T and the rule's source."""
    from snnas.nas.report.latex import escape

    baseline = report.get("baseline") or {}
    twins = {b["profile"]: {t["name"]: t for t in b["twins"]} for b in baseline.get("by_profile", [])}
    bits = baseline.get("bits")
    rows = []
    for e in report["energy"]:
        twin = twins.get(e["profile"], {})
        cells = [escape(e["profile"]), _tex_mj(e["total_mj"], e.get("total_low_mj"), e.get("total_high_mj")),
                 *_tex_twin(twin.get("quantized")), *_tex_twin(twin.get("int8")),
                 "yes" if e["complete"] else "no"]
        rows.append(" & ".join(cells) + r" \\")
    rate = baseline.get("measured_rate")
    caption = (f"Energy per sample of {escape(str(report['model']))} ({escape(str(report['input']['source']))}), "
               f"beside the same network as an ANN computing in one step with {bits}-bit and 8-bit activations "
               f"(T = {baseline.get('time_steps')}; Yan et al., arXiv 2409.08290). SNN/ANN below 1: the SNN costs "
               f"less; break-even: the synapses' input spike rate below which it does"
               + (f" (measured {rate:.3g})." if rate is not None else ".")) if baseline else \
        f"Energy per sample of {escape(str(report['model']))}."
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{lrrrrrrrl}", r"\toprule",
        rf"profile & SNN mJ & {bits}-bit ANN mJ & SNN/ANN & break-even & INT8 ANN mJ & SNN/INT8 & break-even "
        r"& complete \\", r"\midrule", *rows, r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}",
        r"\label{tab:snnas-energy}", r"\end{table}", ""])
