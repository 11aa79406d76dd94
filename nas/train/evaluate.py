"""A trained model on its held-out images: accuracy, per-layer firing rates and energy per profile, in one report.

``snnas evaluate`` prints and writes it; ``snnas train`` writes it beside the checkpoints
(``evaluation.json``) so that ``snnas report --latex`` can put trained numbers beside the
proxy's. Energy is counted on the trained network running on real held-out images, so the
firing rates, and with them the ACs, are the trained model's own.
"""

from __future__ import annotations

import copy

import torch

from snnas.energy.counting import count_ops
from snnas.energy.estimate import estimate
from snnas.energy.profile import Profile
from snnas.nas.models.arch import ArchConfig
from snnas.nas.data import Dataset, fit_images, held_out_split

REPORT_FORMAT = "snnas-evaluation"


def firing_rates(counts) -> list[dict]:
    """Every spiking layer in forward order: spikes per neuron update (per sample, all time steps)."""
    rows = []
    for layer in counts.layers:
        updates = layer.total("neuron_updates")
        if updates:
            rows.append({"layer": layer.name, "type": layer.type, "neuron_updates": updates,
                         "spikes": layer.total("spikes"), "rate": layer.total("spikes") / updates})
    return rows


def evaluate_model(model: torch.nn.Module, arch: ArchConfig, data: Dataset, *, profiles: list[Profile],
                   convention: str, samples: int = 128, device: torch.device = torch.device("cpu"),
                   batch: int = 256) -> dict:
    """Accuracy and loss on every held-out image; counts and energy on ``samples`` of them, drawn as
    ``snnas energy --data`` draws them (seed 0), so the two commands agree on the same model."""
    from snnas.nas.data import held_out_part, model_input, sample_images
    from snnas.nas.train.training import test_scores

    _, (test_x, test_y) = held_out_split(data)
    if int(test_y.max()) >= arch.num_classes:
        raise ValueError(f"{data.name} has labels up to {int(test_y.max())}, the model has {arch.num_classes} classes")
    x = fit_images(test_x, channels=arch.in_channels, size=arch.img_size)
    model = model.to(device)
    acc, loss = test_scores(model, x, test_y, batch=batch, device=device)
    counted = copy.deepcopy(model).cpu()  # the counter runs on the CPU, per sample
    n = max(1, min(samples, len(test_y)))
    drawn = model_input(sample_images(held_out_part(data), n, channels=arch.in_channels, size=arch.img_size))
    counts = count_ops(counted, drawn, batch_dim=drawn.dim() - 4)
    energies = [estimate(counts, p, convention=convention) for p in profiles]
    updates = counts.total("neuron_updates")
    return {
        "format": REPORT_FORMAT,
        "accuracy": acc, "test_loss": loss, "test_images": len(test_y),
        "data": {"name": data.name, "fingerprint": data.fingerprint, "held_out": _held_out_kind(data)},
        "arch": arch.to_dict(), "params": counts.params,
        "energy_samples": n, "per": "sample (all time steps)", "complete": counts.complete,
        "unsupported": counts.unsupported,
        "firing_rate": counts.total("spikes") / updates if updates else 0.0,
        "totals": {k: counts.total(k) for k in ("macs", "acs", "dense", "neuron_updates", "spikes")},
        "energy": {e.profile: {"total_mj": e.total_mj, "complete": e.complete, "missing": e.missing,
                               "regime": e.regime, "by_term_mj": e.by_term_mj} for e in energies},
        "convention": convention,
        "layers": [{**row, "energy_mj": {e.profile: e.by_layer_mj.get(row["layer"], 0.0) for e in energies}}
                   for row in firing_rates(counts)],
        "synaptic_layers": [{"layer": layer.name, "type": layer.type, "in_rate": layer.in_rate,
                             "macs": layer.total("macs"), "acs": layer.total("acs"),
                             "energy_mj": {e.profile: e.by_layer_mj.get(layer.name, 0.0) for e in energies}}
                            for layer in counts.synaptic_layers()],
    }


def _held_out_kind(data: Dataset) -> str:
    return "the data's own test set" if data.test_from is not None else "a fixed fifth (seed 0) never used in training or search"


def plot_rates(report: dict, stem, *, title: str) -> list:
    """A per-layer firing-rate figure (png, pdf, svg) of an evaluation report; returns the paths."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from snnas.nas.files import write_figure
    from snnas.nas.files import PAPER_STYLE

    rows = report["layers"]
    stem = Path(stem)
    with plt.rc_context(PAPER_STYLE):
        fig, ax = plt.subplots(figsize=(max(3.4, 0.12 * len(rows) + 1.0), 2.4), dpi=200)
        rates = [r["rate"] * 100 for r in rows]
        ax.bar(range(len(rows)), rates, color="C0", width=0.8)
        ax.axhline(report["firing_rate"] * 100, color="C3", lw=0.8, ls="--",
                   label=f"whole network {report['firing_rate'] * 100:.1f}% (spikes / neuron updates)")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([_short_layer(r["layer"]) for r in rows], rotation=90, fontsize=4.5)
        ax.set_ylabel("firing rate (%)")
        ax.set_title(title if len(title) <= 70 else title[:67] + "...", fontsize=6)
        ax.legend(frameon=False, loc="upper right", fontsize=5.5)
        fig.tight_layout()
        paths = write_figure(fig, stem)
        plt.close(fig)
    return paths


def _short_layer(name: str) -> str:
    parts = name.replace("stages.", "s").replace("blocks.", "b").split(".")
    return ".".join(parts[-4:]) if len(parts) > 4 else ".".join(parts)
