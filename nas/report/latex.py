"""``pareto.tex``: the study's front as a booktabs table to ``\\input`` in a paper.

One row per front member (every complete trial with ``every=True``), lowest energy first:
trial, a short architecture summary, parameters, time steps, the proxy's objective, the trained
accuracy and energy where ``snnas train`` has run on the trial, and the proxy energy per chosen
profile. A figure that is a lower bound (an operation left uncounted, a profile term unknown)
is printed with a leading ``$\\geq$``; a missing one as ``--``. The caption names the data,
the energy convention and the profiles. Needs ``\\usepackage{booktabs}``.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from snnas.nas.files import atomic_write

SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
           "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
ATTENTION = {"ssa": "SSA", "dssa": "DSSA", "a2os2a": "A$^2$OS$^2$A", "ls_ssa": "LS-SSA"}
NEURON = {"lif": "LIF", "plif": "PLIF", "if": "IF", "ternary": "ternary", "relu": "ReLU", "binary": "binary"}


def escape(text: str) -> str:
    """``text`` safe in LaTeX's text mode."""
    return "".join(SPECIAL.get(c, c) for c in str(text))


def arch_summary(row) -> str:
    """'SSA/LS-SSA, 2-2 blocks, 64-128 ch, LIF, GWFFN, conv3 stem' from a trials.csv row."""
    attention = "/".join(ATTENTION.get(a, escape(a)) for a in dict.fromkeys(str(row["attention"]).split("-")))
    neuron = NEURON.get(str(row["neuron"]), escape(row["neuron"]))
    blocks = f"{row['depths']} block{'' if str(row['depths']) == '1' else 's'}"
    parts = [attention, blocks, f"{row['dims']} ch", neuron, escape(str(row["mlp"]).upper()),
             f"{escape(row['stem'])} stem"]
    return ", ".join(parts)


def _number(value, digits: int = 3, *, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):
        return "--"
    v = float(value) * scale
    if v == 0:
        return "0"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(v)))))
    return f"{v:.{decimals}f}"


def _unit(values: list[float]) -> tuple[str, float]:
    """mJ, or uJ when every value is below 0.1 mJ (numbers a reader can compare at a glance)."""
    finite = [v for v in values if v is not None and pd.notna(v)]
    if finite and max(finite) < 0.1:
        return r"$\mu$J", 1e3
    return "mJ", 1.0


def write_latex(frame: pd.DataFrame, path: Path, ctx, trained: pd.DataFrame, *, profiles: list[str] | None = None,
                every: bool = False) -> Path:
    """Write the table to ``path``; returns it. ``profiles``: energy columns (default: every profile
    the study priced, its objective first)."""
    profiles = list(profiles or ctx.profiles)
    energy, complete = ctx.energy_prefix, ctx.complete_prefix  # the columns of the front's energy model
    missing = [p for p in profiles if f"{energy}[{p}]" not in frame.columns]
    if missing:
        raise ValueError(f"--profile {missing[0]}: the study priced {', '.join(ctx.profiles) or 'no profile'}; "
                         "a search prices the profiles given to it with --profile")
    if frame.empty or not frame["state"].eq("complete").any():
        raise ValueError(f"{path.parent}: no complete trial yet; pareto.tex needs one")
    done = frame[frame["state"].eq("complete") & frame["duplicate_of"].isna()]
    rows = done if every else done[done["pareto"]]
    if not trained.empty:
        rows = pd.concat([rows, done[done["trial"].isin(trained["trial"]) & ~done.index.isin(rows.index)]])
        rows = rows.merge(trained, on="trial", how="left")
    rows = rows.sort_values("energy_mj")
    has_trained = not trained.empty and rows["trained_accuracy"].notna().any()
    unit, scale = _unit([v for p in profiles for v in rows[f"{energy}[{p}]"]] +
                        ([v for v in rows.get(f"trained_energy_mj[{profiles[0]}]", [])] if has_trained else []))
    trained_proxy = ctx.objective != "sahd_score"  # a training proxy: its mean held-out accuracy is shown
    params_scale, params_unit = (1e-6, "M") if rows["params"].max() >= 1e6 else (1e-3, "K")
    heads = ["Trial", "Architecture", f"Params ({params_unit})", "$T$", "Proxy acc.\\ (\\%)" if trained_proxy else "SAHD score"]
    if has_trained:
        heads += ["Trained acc.\\ (\\%)", f"Trained energy ({unit})"]
    lead = len(heads)
    columns = "r l r r r" + (" r r" if has_trained else "") + " " + " ".join("r" for _ in profiles)
    lines = [f"% snnas report of study {escape(ctx.name)}: {len(rows)} rows; generated "
             f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}",
             "% needs \\usepackage{booktabs}",
             "\\begin{table}[t]", "\\centering", "\\small",
             f"\\caption{{{_caption(ctx, profiles, unit, every, has_trained)}}}",
             f"\\label{{tab:{escape(ctx.name).replace(chr(92), '')}-pareto}}",
             f"\\begin{{tabular}}{{{columns}}}", "\\toprule",
             " & ".join(heads) + f" & \\multicolumn{{{len(profiles)}}}{{c}}{{Proxy energy ({unit})}} \\\\",
             f"\\cmidrule(lr){{{lead + 1}-{lead + len(profiles)}}}",
             " & " * lead + " & ".join(escape(p) for p in profiles) + " \\\\", "\\midrule"]
    for _, row in rows.iterrows():
        mark = "$^\\star$" if row["pareto"] else ""
        cells = [f"{int(row['trial'])}{mark}", arch_summary(row), _number(row["params"], scale=params_scale),
                 str(int(row["time_steps"])),
                 _number(row["accuracy"], scale=100.0) if trained_proxy else _number(row["objective"], 4)]
        if has_trained:
            cells += [_number(row.get("trained_accuracy"), 4, scale=100.0),
                      _energy(row, f"trained_energy_mj[{profiles[0]}]", f"trained_energy_complete[{profiles[0]}]",
                              scale)]
        cells += [_energy(row, f"{energy}[{p}]", f"{complete}[{p}]", scale) for p in profiles]
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    atomic_write(path, "\n".join(lines))
    return path


def _energy(row, key: str, complete_key: str, scale: float) -> str:
    text = _number(row.get(key), scale=scale)
    complete = row.get(complete_key)
    if text != "--" and complete is not None and not pd.isna(complete) and not bool(complete):
        return "$\\geq$" + text
    return text


def _caption(ctx, profiles, unit, every, has_trained) -> str:
    data = escape(ctx.data or "the search data")
    at = f" at {ctx.resolution}$\\times${ctx.resolution} px" if ctx.resolution else ""
    which = "Complete trials" if every else "Pareto-front architectures ($^\\star$)"
    model = " and Lemaire et al.'s memory-aware model (2022)" if ctx.energy_model == "lemaire" else ""
    text = (f"{which} of study \\texttt{{{escape(ctx.name)}}} on {data}{at}, lowest energy first. Energy per "
            f"sample (all time steps) in {unit} under the {escape(ctx.convention)} convention{model} on "
            f"{', '.join(escape(p) for p in profiles)}; $\\geq$ marks a lower bound.")
    if ctx.objective == "likelihood":
        text += (" The front is taken in (proxy held-out likelihood, energy); proxy accuracy is the mean over the "
                 "proxy's short trainings.")
    if has_trained:
        text += (" Trained: \\texttt{snnas train} with the seed papers' recipe, accuracy on held-out images, "
                 f"energy on {escape(profiles[0])} with the trained firing rates (at the training resolution).")
    return text
