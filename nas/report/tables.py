"""Study -> trials.csv, pareto.csv, pareto.png/.pdf/.svg and summary.json (``snnas report`` rebuilds them)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd

from snnas.nas.models.arch import ArchConfig

from snnas.nas.failpoints import failpoint
from snnas.nas.files import PAPER_STYLE, atomic_write, write_figure
from snnas.nas.search.pareto import hypervolume, pareto_mask
from snnas.nas.search.study import COMPLETE_ATTRS, ENERGY_ATTRS, FINGERPRINT_DEFAULTS, range_attr
from snnas.nas.search.workers import counts_toward_budget

STATE = {optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.FAIL: "failed",
         optuna.trial.TrialState.PRUNED: "pruned", optuna.trial.TrialState.RUNNING: "running",
         optuna.trial.TrialState.WAITING: "waiting"}
ARCH_FIELDS = tuple(f.name for f in dataclasses.fields(ArchConfig) if f.name != "notes")
INT_COLUMNS = ("trial", "params", "seed", "threads", "duplicate_of", "rung", "cost_images",
               *(f.name for f in dataclasses.fields(ArchConfig) if f.type == "int"))
SIGNIFICANT = 6  # digits kept of each float in trials.csv / pareto.csv (the study keeps full precision)
# Figures sized for one column of a two-column paper, in the fonts of the text.
@dataclass
class ReportSummary:
    trials_csv: Path
    pareto_csv: Path
    plots: list[Path]
    hypervolume: float
    reference: dict
    front_size: int
    counts: dict  # evaluated, complete, failed, duplicates, pruned, running (see ``trial_counts``)
    objective: str = "accuracy"
    best: float | None = None
    latex: Path | None = None
    energy_model: str = "arithmetic"  # the energy the front is drawn on

    def line(self, budget: int | None = None) -> str:
        """The counts in words: '6 of 6 evaluated (5 complete, 1 failed); 4 repeated architectures reused; 2 pruned'."""
        c = self.counts
        of = f" of {budget}" if budget is not None else ""
        parts = [f"{c['evaluated']}{of} evaluated ({c['complete']} complete, {c['failed']} failed)"]
        if c["duplicates"]:
            parts.append(f"{c['duplicates']} repeated architectures reused")
        if c["pruned"]:
            parts.append(f"{c['pruned']} pruned")
        if c["running"]:
            parts.append(f"{c['running']} still running")
        if c["queued"]:
            parts.append(f"{c['queued']} queued to run again")
        return "; ".join(parts)


def _flat(value):
    return "-".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def study_energy_model(study: optuna.Study) -> str:
    """The energy model the study optimised (``snnas search --energy-model``; arithmetic before it existed)."""
    return (study.user_attrs.get("snnas") or {}).get("energy_model", FINGERPRINT_DEFAULTS["energy_model"])


def check_energy_model(name: str) -> str:
    if name not in ENERGY_ATTRS:
        raise ValueError(f"--energy-model {name!r}: choose from {', '.join(ENERGY_ATTRS)}")
    return name


def _front_energy(t, chosen: str, told: str, profile: str | None) -> float | None:
    """The energy the front is drawn on: the told objective, or the other model's on the same profile."""
    if not t.values:
        return None
    if chosen == told:
        return t.values[1]
    return (t.user_attrs.get(ENERGY_ATTRS[chosen]) or {}).get(profile)


def _energy_band(ax, front: pd.DataFrame, scale: float) -> None:
    """Horizontal bars from each front point's energy at every profile term's low end to its high end
    (drawn only for trials that recorded a range: profiles whose terms carry one)."""
    if "energy_low_mj" not in front or "energy_high_mj" not in front:
        return
    banded = front[front["energy_low_mj"].notna() & front["energy_high_mj"].notna()]
    if banded.empty:
        return
    low, high = pd.to_numeric(banded["energy_low_mj"]), pd.to_numeric(banded["energy_high_mj"])
    xerr = [(banded["energy_mj"] - low).clip(lower=0), (high - banded["energy_mj"]).clip(lower=0)]
    ax.errorbar(banded["energy_mj"], banded["objective"] * scale, xerr=xerr, fmt="none", ecolor="C0", elinewidth=0.6,
                alpha=0.5, capsize=1.5, zorder=2, label="energy range (profile terms at low / high)")


def trials_frame(study: optuna.Study, energy_model: str | None = None) -> pd.DataFrame:
    """One row per trial: every architecture field (lists as 4-4), the whole architecture as JSON,
    objectives, energies per profile and energy model, counts, state, timing. ``energy_mj`` and
    the front are by ``energy_model`` on the first profile (default: the study's objective)."""
    told = study_energy_model(study)
    chosen = check_energy_model(energy_model or told)
    first = (study.user_attrs.get("snnas") or {}).get("objective_profile")
    rows = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        arch = ua.get("arch", {})
        row = {"trial": t.number, "state": STATE.get(t.state, str(t.state)),
               "objective": t.values[0] if t.values else None, "accuracy": ua.get("accuracy"),
               "energy_mj": _front_energy(t, chosen, told, first)}
        for end in ("low", "high"):  # the band of the front's energy where the profile's terms carry ranges
            row[f"energy_{end}_mj"] = (ua.get(range_attr(chosen, end)) or {}).get(first) if t.values else None
        for model, key in ENERGY_ATTRS.items():  # energy_mj[P] (arithmetic), energy_lemaire_mj[P]
            for name, mj in (ua.get(key) or {}).items():
                row[f"{key}[{name}]"] = mj
                row[f"{COMPLETE_ATTRS[model]}[{name}]"] = (ua.get(COMPLETE_ATTRS[model]) or {}).get(name)
        for key in ("likelihood", "val_loss", "soft_accuracy", "params", "dense", "macs", "acs", "firing_rate",
                    "zero_cost", "loss", "train_time_s",
                    "eval_time_s", "count_time_s", "score_time_s", "duration_s", "seed", "threads", "rung",
                    "cost_images"):
            row[key] = ua.get(key)
        rungs = ua.get("rungs") or {}
        row["rung_scores"] = "/".join(f"{rungs[k]['score']:.4g}" for k in sorted(rungs, key=int)) if rungs else ""
        row["feasible"] = all(v <= 0 for v in (getattr(t, "constraints", None) or {}).values()) if t.values else None
        row["duplicate_of"] = ua.get("duplicate_of")
        row["counted"] = counts_toward_budget(t)  # toward --budget: not a repeat, not a worker's failure
        row["fail_reason"] = ua.get("fail_reason") or ua.get("pruned_reason") or \
            ("worker died (heartbeat)" if t.state == optuna.trial.TrialState.FAIL else "")
        for key in ARCH_FIELDS:
            row[key] = _flat(arch.get(key))
        row["arch_json"] = json.dumps(arch, separators=(",", ":"), sort_keys=False) if arch else ""
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["energy_mj"] = pd.to_numeric(frame["energy_mj"])  # None where a trial lacks the chosen model's energy
    done = frame["state"].eq("complete") & frame["feasible"].fillna(True).astype(bool) & frame["duplicate_of"].isna() \
        & frame["energy_mj"].notna()
    frame["pareto"] = False
    if done.any():
        sub = frame[done]
        frame.loc[done, "pareto"] = pareto_mask(sub["objective"].tolist(), sub["energy_mj"].tolist())
    return frame


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """For the CSV files: whole-number columns as integers (empty where unknown), other floats
    rounded to ``SIGNIFICANT`` significant digits."""
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if column in INT_COLUMNS:
            numbers = pd.to_numeric(series, errors="coerce")
            out[column] = numbers.round().astype("Int64")
        elif pd.api.types.is_float_dtype(series):
            out[column] = series.map(lambda v: float(f"{v:.{SIGNIFICANT}g}") if pd.notna(v) else v)
    return out


def trial_counts(frame: pd.DataFrame) -> dict:
    """Trials by what became of them; ``evaluated`` (complete or failed, repeats excluded) is what
    --budget counts."""
    keys = ("evaluated", "complete", "failed", "retried", "duplicates", "pruned", "running", "queued")
    if frame.empty:
        return dict.fromkeys(keys, 0)
    counted, state = frame["counted"].astype(bool), frame["state"]
    complete, failed = int((state.eq("complete") & counted).sum()), int((state.eq("failed") & counted).sum())
    return {"evaluated": complete + failed, "complete": complete, "failed": failed,
            "retried": int((state.eq("failed") & ~counted).sum()),  # interrupted or orphaned, run again
            "duplicates": int(frame["duplicate_of"].notna().sum()), "pruned": int(state.eq("pruned").sum()),
            "running": int(state.eq("running").sum()), "queued": int(state.eq("waiting").sum())}


def reference_point(frame: pd.DataFrame, ref_energy_mj: float | None = None) -> dict:
    """Accuracy 0, and 1.1 x the highest energy seen unless given (written down with the result)."""
    done = frame[frame["state"].eq("complete")] if not frame.empty else frame
    if ref_energy_mj is None:
        ref_energy_mj = float(done["energy_mj"].max()) * 1.1 if len(done) else 1.0
    return {"accuracy": 0.0, "energy_mj": ref_energy_mj}


OBJECTIVE_LABELS = {"likelihood": "proxy held-out likelihood (%)", "accuracy": "proxy held-out accuracy (%)",
                    "sahd_score": "SAHD score (training-free proxy)"}
# A trained model's value of each training-proxy objective, from its evaluation.json
TRAINED_OBJECTIVE = {"accuracy": "trained_accuracy", "likelihood": "trained_likelihood"}


@dataclass
class StudyContext:
    """What every output names: the objective, the energy profiles and convention, the data."""

    name: str
    objective: str  # likelihood | accuracy | sahd_score
    profiles: list[str]  # the first is the energy objective
    convention: str
    data: str | None
    resolution: int | None
    energy_model: str = "arithmetic"  # the front's energy (arithmetic | lemaire), on the first profile

    @property
    def energy_label(self) -> str:
        """The front's energy in words: '45nm-fp32' or '45nm-fp32, Lemaire memory-aware'."""
        profile = self.profiles[0] if self.profiles else "?"
        return profile + (", Lemaire memory-aware" if self.energy_model == "lemaire" else "")

    @property
    def energy_prefix(self) -> str:
        """The columns of this model's energies per profile: ``energy_mj[P]`` or ``energy_lemaire_mj[P]``."""
        return ENERGY_ATTRS[self.energy_model]

    @property
    def complete_prefix(self) -> str:
        return COMPLETE_ATTRS[self.energy_model]

    @property
    def objective_label(self) -> str:
        return OBJECTIVE_LABELS.get(self.objective, self.objective)

    @property
    def is_fraction(self) -> bool:
        """A number in [0, 1], shown as a percentage (accuracy, likelihood), not a score."""
        return self.objective in TRAINED_OBJECTIVE

    def caption(self) -> str:
        data = f"{self.data} at {self.resolution} px" if self.resolution else (self.data or "unknown data")
        return f"{data}; energy: {self.energy_label}, {self.convention} convention"


def study_context(study: optuna.Study, frame: pd.DataFrame, out_dir: Path, data: str | None = None,
                  energy_model: str | None = None) -> StudyContext:

    identity = study.user_attrs.get("snnas") or {}
    first = identity.get("objective_profile")
    others = [c[len("energy_mj["):-1] for c in frame.columns if c.startswith("energy_mj[")] if not frame.empty else []
    profiles = ([first] if first else []) + [p for p in others if p != first]
    return StudyContext(study.study_name, study.user_attrs.get("objective", "accuracy"), profiles,
                        identity.get("convention", "snnas"), data or study_data_spec(out_dir), identity.get("resolution"),
                        energy_model or study_energy_model(study))


def trained_results(out_dir: Path, energy_model: str = "arithmetic") -> pd.DataFrame:
    """One row per ``snnas train`` run of this study's trials (``OUT/trained/*/evaluation.json``), with
    its energies by ``energy_model`` (none where the evaluation priced by the other)."""
    rows = []
    for path in sorted((out_dir / "trained").glob("*/evaluation.json")):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a run still going, or a file cut short: the next report picks it up
        source = report.get("source") or {}
        if source.get("kind") != "trial" or not isinstance(source.get("trial"), int):
            continue
        arch = report.get("arch") or {}
        loss = report.get("test_loss")
        row = {"trial": source["trial"], "trained_accuracy": report.get("accuracy"),
               "trained_likelihood": math.exp(-loss) if isinstance(loss, (int, float)) and math.isfinite(loss) else None,
               "trained_img_size": arch.get("img_size"), "trained_time_steps": arch.get("time_steps"),
               "epochs": report.get("epochs"), "best_epoch": report.get("best_epoch"),
               "trained_firing_rate": report.get("firing_rate"), "folder": str(path.parent)}
        for name, e in (report.get("energy") or {}).items():
            if (e.get("energy_model") or ("lemaire" if e.get("memory") else "arithmetic")) != energy_model:
                continue
            row[f"trained_energy_mj[{name}]"] = e.get("total_mj")
            row[f"trained_energy_complete[{name}]"] = e.get("complete")
        rows.append(row)
    return pd.DataFrame(rows)


def plot_front(frame: pd.DataFrame, out_dir: Path, ctx: StudyContext, *, refined: pd.DataFrame | None = None,
               trained: pd.DataFrame | None = None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = frame[frame["state"].eq("complete") & frame["duplicate_of"].isna()]
    done = done[done["objective"].map(math.isfinite) & (done["energy_mj"] > 0)]
    with plt.rc_context(PAPER_STYLE):
        fig, ax = plt.subplots(figsize=(3.4, 2.6), dpi=200)
        scale = 100.0 if ctx.is_fraction else 1.0
        other = done[~done["pareto"]]
        front = done[done["pareto"]].sort_values("energy_mj")
        ax.scatter(other["energy_mj"], other["objective"] * scale, s=8, c="0.7", lw=0, label="dominated")
        ax.step(front["energy_mj"], front["objective"] * scale, where="post", c="C0", lw=1)
        ax.scatter(front["energy_mj"], front["objective"] * scale, s=14, c="C0", zorder=3, label="Pareto front (proxy)")
        _energy_band(ax, front, scale)
        refined_y = f"refined_{ctx.objective}"
        if refined is not None and not refined.empty and refined_y in refined:  # priced by the study's model
            ax.scatter(refined["energy_mj"], refined[refined_y] * scale, s=16, facecolors="none",
                       edgecolors="C3", zorder=4, label="front re-trained (--refine)")
        energy_key = f"trained_energy_mj[{ctx.profiles[0]}]" if ctx.profiles else None
        trained_y = TRAINED_OBJECTIVE.get(ctx.objective)
        if trained is not None and not trained.empty and energy_key in trained and trained_y in trained:
            shown = trained.merge(done[["trial", "objective", "energy_mj"]], on="trial", how="left")
            for _, row in shown.iterrows():
                if pd.notna(row["objective"]):
                    ax.plot([row["energy_mj"], row[energy_key]], [row["objective"] * scale,
                            row[trained_y] * scale], c="C2", lw=0.5, alpha=0.6)
            sides = sorted({int(v) for v in shown["trained_img_size"].dropna()})
            ax.scatter(shown[energy_key], shown[trained_y] * scale, s=18, marker="^", c="C2", zorder=5,
                       label="trained" + (f" ({'/'.join(map(str, sides))} px)" if sides else ""))
        ax.set_xscale("log")
        ax.set_xlabel(f"energy per sample (mJ, log scale; {ctx.energy_label})")
        ax.set_ylabel(ctx.objective_label if not trained_y or trained is None or trained.empty
                      else ctx.objective_label.replace("proxy ", "") + ", proxy and trained")
        ax.set_title(f"{ctx.name}: {ctx.caption()}", fontsize=6)
        ax.legend(frameon=False, loc="best")
        fig.tight_layout()
        paths = write_figure(fig, out_dir / "pareto")
        plt.close(fig)
    return paths


def write_reports(study: optuna.Study, out_dir: Path, *, ref_energy_mj: float | None = None, latex: bool = False,
                  latex_profiles: list[str] | None = None, latex_all: bool = False,
                  data: str | None = None, energy_model: str | None = None) -> ReportSummary:
    """Every output of a study into ``out_dir``; ``data`` names the data searched on (default:
    from the folder's run.json); the front is drawn on ``energy_model``'s energy (default: the
    study's objective)."""
    frame = trials_frame(study, energy_model)
    ctx = study_context(study, frame, out_dir, data, energy_model)
    _check_energies(frame, ctx, study)
    out_dir.mkdir(parents=True, exist_ok=True)
    trials_csv, pareto_csv = out_dir / "trials.csv", out_dir / "pareto.csv"
    atomic_write(trials_csv, tidy(frame).to_csv(index=False))
    failpoint("reports")
    front = frame[frame["pareto"]].sort_values("energy_mj") if not frame.empty else frame
    atomic_write(pareto_csv, tidy(front).to_csv(index=False))
    ref = reference_point(frame, ref_energy_mj)
    done = frame[frame["state"].eq("complete")] if not frame.empty else frame
    hv = hypervolume(done["objective"].tolist(), done["energy_mj"].tolist(), ref_accuracy=ref["accuracy"],
                     ref_energy=ref["energy_mj"]) if len(done) else 0.0
    refined = pd.DataFrame(study.user_attrs.get("refined", []))
    if not refined.empty:
        atomic_write(out_dir / "refined.csv", tidy(refined).to_csv(index=False))
        refined = refined[refined.get("energy_model", pd.Series("arithmetic", index=refined.index))
                          .fillna("arithmetic").eq(ctx.energy_model)]  # priced by the front's model
    trained = trained_results(out_dir, ctx.energy_model)
    plots = plot_front(frame, out_dir, ctx, refined=refined, trained=trained) if len(done) else []
    counts = trial_counts(frame)
    best_key = f"best_{ctx.objective}"
    best = None if done.empty else float(done["objective"].max())
    summary = {"study": ctx.name, "objective": ctx.objective, "data": ctx.data, "resolution": ctx.resolution,
               "energy_profile": ctx.profiles[0] if ctx.profiles else None, "convention": ctx.convention,
               "energy_model": ctx.energy_model, "energy_objective": study_energy_model(study),
               "hypervolume": hv, "reference_point": {ctx.objective: ref["accuracy"], "energy_mj": ref["energy_mj"]},
               "front_size": int(len(front)), "trials": counts,
               "hypervolume_definition": f"area dominated by the front in ({ctx.objective} up, energy mJ down), "
                                         "bounded by the reference point",
               best_key: best, "lowest_energy_mj": None if done.empty else float(done["energy_mj"].min())}
    if not refined.empty:
        column = f"refined_{ctx.objective}" if f"refined_{ctx.objective}" in refined else "refined_accuracy"
        mask = pareto_mask(refined[column].tolist(), refined["energy_mj"].tolist())
        summary["refined_front"] = refined[mask].to_dict("records")
    if not trained.empty:
        summary["trained"] = trained.to_dict("records")
    atomic_write(out_dir / "summary.json", json.dumps(_clean(summary), indent=2, default=str))
    tex = None
    if latex:
        from snnas.nas.report.latex import write_latex

        tex = write_latex(frame, out_dir / "pareto.tex", ctx, trained, profiles=latex_profiles, every=latex_all)
    return ReportSummary(trials_csv, pareto_csv, plots, hv, ref, int(len(front)), counts, ctx.objective, best, tex,
                         ctx.energy_model)


def _check_energies(frame: pd.DataFrame, ctx: StudyContext, study: optuna.Study) -> None:
    """A front on the model the study did not optimise needs that model's energies in its trials."""
    if frame.empty or ctx.energy_model == study_energy_model(study):
        return
    complete = frame["state"].eq("complete")
    if complete.any() and frame.loc[complete, "energy_mj"].isna().all():
        raise ValueError(f"study {study.study_name!r} holds no {ctx.energy_model} energies (searched before "
                         "snnas recorded them); draw its front with --energy-model "
                         f"{study_energy_model(study)}")


def _clean(value):
    """JSON-safe: NaN and infinities become null (JSON has no NaN), numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def front_spread(frame, k: int) -> list[tuple[int, float]]:
    """Up to ``k`` members of the proxy front of a ``trials_frame``, spread evenly over energy:
    (trial number, energy in mJ) each, lowest energy first."""
    front = frame[frame["pareto"]].sort_values("energy_mj") if not frame.empty else frame
    if front.empty or k <= 0:
        return []
    rows = front.iloc[sorted({round(i * (len(front) - 1) / max(1, k - 1)) for i in range(min(k, len(front)))})]
    return [(int(row["trial"]), float(row["energy_mj"])) for _, row in rows.iterrows()]


def study_data_spec(directory: Path) -> str | None:
    """The ``--data`` of the study's latest recorded run (run.json), if any."""
    path = directory / "run.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    spec = (info.get("arguments") or {}).get("data") if isinstance(info, dict) else None
    return spec if isinstance(spec, str) else None
