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


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: every architecture field (lists as 4-4), the whole architecture as JSON,
    objectives, energies per profile, counts, state, timing."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        arch = ua.get("arch", {})
        row = {"trial": t.number, "state": STATE.get(t.state, str(t.state)),
               "objective": t.values[0] if t.values else None, "accuracy": ua.get("accuracy"),
               "energy_mj": t.values[1] if t.values else None}
        for name, mj in (ua.get("energy_mj") or {}).items():
            row[f"energy_mj[{name}]"] = mj
            row[f"energy_complete[{name}]"] = (ua.get("energy_complete") or {}).get(name)
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
    done = frame["state"].eq("complete") & frame["feasible"].fillna(True).astype(bool) & frame["duplicate_of"].isna()
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

    @property
    def objective_label(self) -> str:
        return OBJECTIVE_LABELS.get(self.objective, self.objective)

    @property
    def is_fraction(self) -> bool:
        """A number in [0, 1], shown as a percentage (accuracy, likelihood), not a score."""
        return self.objective in TRAINED_OBJECTIVE

    def caption(self) -> str:
        data = f"{self.data} at {self.resolution} px" if self.resolution else (self.data or "unknown data")
        return f"{data}; energy: {self.profiles[0] if self.profiles else '?'}, {self.convention} convention"


def study_context(study: optuna.Study, frame: pd.DataFrame, out_dir: Path, data: str | None = None) -> StudyContext:

    identity = study.user_attrs.get("snnas") or {}
    first = identity.get("objective_profile")
    others = [c[len("energy_mj["):-1] for c in frame.columns if c.startswith("energy_mj[")] if not frame.empty else []
    profiles = ([first] if first else []) + [p for p in others if p != first]
    return StudyContext(study.study_name, study.user_attrs.get("objective", "accuracy"), profiles,
                        identity.get("convention", "snnas"), data or study_data_spec(out_dir), identity.get("resolution"))


def trained_results(out_dir: Path) -> pd.DataFrame:
    """One row per ``snnas train`` run of this study's trials (``OUT/trained/*/evaluation.json``)."""
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
        refined_y = f"refined_{ctx.objective}"
        if refined is not None and not refined.empty and refined_y in refined:
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
        ax.set_xlabel(f"energy per sample (mJ, log scale; {ctx.profiles[0] if ctx.profiles else '?'})")
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
                  data: str | None = None) -> ReportSummary:
    """Every output of a study into ``out_dir``; ``data`` names the data searched on (default:
    from the folder's run.json)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = trials_frame(study)
    ctx = study_context(study, frame, out_dir, data)
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
    trained = trained_results(out_dir)
    plots = plot_front(frame, out_dir, ctx, refined=refined, trained=trained) if len(done) else []
    counts = trial_counts(frame)
    best_key = f"best_{ctx.objective}"
    best = None if done.empty else float(done["objective"].max())
    summary = {"study": ctx.name, "objective": ctx.objective, "data": ctx.data, "resolution": ctx.resolution,
               "energy_profile": ctx.profiles[0] if ctx.profiles else None, "convention": ctx.convention,
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
    return ReportSummary(trials_csv, pareto_csv, plots, hv, ref, int(len(front)), counts, ctx.objective, best, tex)


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
