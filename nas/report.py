"""Study -> trials.csv, pareto.csv, pareto.png/.pdf/.svg and summary.json (``snnas report`` rebuilds them)."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd

from nas.failpoints import failpoint
from nas.files import atomic_write
from nas.pareto import hypervolume, pareto_mask

STATE = {optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.FAIL: "failed",
         optuna.trial.TrialState.PRUNED: "pruned", optuna.trial.TrialState.RUNNING: "running",
         optuna.trial.TrialState.WAITING: "waiting"}
ARCH_COLUMNS = ("time_steps", "stem", "stem_pool", "depths", "dims", "heads", "attention", "patch_sizes",
                "downsample", "window", "dilations", "neuron", "residual", "mlp", "mlp_ratio", "img_size")


@dataclass
class ReportSummary:
    trials_csv: Path
    pareto_csv: Path
    plots: list[Path]
    hypervolume: float
    reference: dict
    front_size: int
    counts: dict


def _flat(value):
    return "-".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: architecture, objectives, energies per profile, counts, state, timing."""
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
        for key in ("params", "dense", "macs", "acs", "firing_rate", "zero_cost", "loss", "train_time_s",
                    "eval_time_s", "count_time_s", "score_time_s", "duration_s", "seed", "threads"):
            row[key] = ua.get(key)
        row["feasible"] = all(v <= 0 for v in (getattr(t, "constraints", None) or {}).values()) if t.values else None
        row["duplicate_of"] = ua.get("duplicate_of")
        row["fail_reason"] = ua.get("fail_reason") or ua.get("pruned_reason") or \
            ("worker died (heartbeat)" if t.state == optuna.trial.TrialState.FAIL else "")
        for key in ARCH_COLUMNS:
            row[key] = _flat(arch.get(key))
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


def reference_point(frame: pd.DataFrame, ref_energy_mj: float | None = None) -> dict:
    """Accuracy 0, and 1.1 x the highest energy seen unless given (written down with the result)."""
    done = frame[frame["state"].eq("complete")] if not frame.empty else frame
    if ref_energy_mj is None:
        ref_energy_mj = float(done["energy_mj"].max()) * 1.1 if len(done) else 1.0
    return {"accuracy": 0.0, "energy_mj": ref_energy_mj}


def plot_front(frame: pd.DataFrame, out_dir: Path, *, label: str, refined: pd.DataFrame | None = None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = frame[frame["state"].eq("complete") & frame["duplicate_of"].isna()]
    done = done[done["objective"].map(math.isfinite) & (done["energy_mj"] > 0)]
    style = {"font.family": "serif", "font.size": 8, "axes.labelsize": 8, "legend.fontsize": 7,
             "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.spines.top": False, "axes.spines.right": False}
    with plt.rc_context(style):
        fig, ax = plt.subplots(figsize=(3.4, 2.5), dpi=200)
        scale = 100.0 if label == "accuracy" else 1.0
        other = done[~done["pareto"]]
        front = done[done["pareto"]].sort_values("energy_mj")
        ax.scatter(other["energy_mj"], other["objective"] * scale, s=8, c="0.7", lw=0, label="dominated")
        ax.step(front["energy_mj"], front["objective"] * scale, where="post", c="C0", lw=1)
        ax.scatter(front["energy_mj"], front["objective"] * scale, s=14, c="C0", zorder=3, label="Pareto front")
        if refined is not None and not refined.empty:
            ax.scatter(refined["energy_mj"], refined["refined_accuracy"] * scale, s=16, facecolors="none",
                       edgecolors="C3", zorder=4, label="front re-trained")
        ax.set_xscale("log")
        ax.set_xlabel("energy per sample (mJ, log scale)")
        ax.set_ylabel("held-out accuracy (%)" if label == "accuracy" else "SAHD score")
        ax.legend(frameon=False, loc="lower right")
        fig.tight_layout()
        paths = [out_dir / f"pareto.{ext}" for ext in ("png", "pdf", "svg")]
        for path in paths:
            buffer = io.BytesIO()
            fig.savefig(buffer, format=path.suffix[1:])
            atomic_write(path, buffer.getvalue())
        plt.close(fig)
    return paths


def write_reports(study: optuna.Study, out_dir: Path, *, ref_energy_mj: float | None = None) -> ReportSummary:
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = trials_frame(study)
    trials_csv, pareto_csv = out_dir / "trials.csv", out_dir / "pareto.csv"
    atomic_write(trials_csv, frame.to_csv(index=False))
    failpoint("reports")
    front = frame[frame["pareto"]].sort_values("energy_mj") if not frame.empty else frame
    atomic_write(pareto_csv, front.to_csv(index=False))
    ref = reference_point(frame, ref_energy_mj)
    done = frame[frame["state"].eq("complete")] if not frame.empty else frame
    hv = hypervolume(done["objective"].tolist(), done["energy_mj"].tolist(), ref_accuracy=ref["accuracy"],
                     ref_energy=ref["energy_mj"]) if len(done) else 0.0
    label = study.user_attrs.get("objective", "accuracy")
    refined = pd.DataFrame(study.user_attrs.get("refined", []))
    if not refined.empty:
        atomic_write(out_dir / "refined.csv", refined.to_csv(index=False))
    plots = plot_front(frame, out_dir, label=label, refined=refined) if len(done) else []
    counts = frame["state"].value_counts().to_dict() if not frame.empty else {}
    summary = {"hypervolume": hv, "reference_point": ref, "front_size": int(len(front)),
               "objective": label, "trials": {k: int(v) for k, v in counts.items()},
               "hypervolume_definition": "area dominated by the front in (accuracy up, energy mJ down), "
                                         "bounded by the reference point",
               "best_accuracy": None if done.empty else float(done["objective"].max()),
               "lowest_energy_mj": None if done.empty else float(done["energy_mj"].min())}
    if not refined.empty:
        mask = pareto_mask(refined["refined_accuracy"].tolist(), refined["energy_mj"].tolist())
        summary["refined_front"] = refined[mask].to_dict("records")
    atomic_write(out_dir / "summary.json", json.dumps(summary, indent=2, default=_json_default))
    return ReportSummary(trials_csv, pareto_csv, plots, hv, ref, int(len(front)), summary["trials"])


def _json_default(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)
