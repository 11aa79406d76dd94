"""Proxy fidelity: does the default proxy rank architectures as a much longer training does?

Run:  python benchmarks/proxy_fidelity.py [--draws 0 1] [--archs 20] [--ablation] [--no-cache]

For each draw (a sampler seed), samples architectures uniformly from the default space
(Optuna's RandomSampler, not a search), trains each with the default proxy and with the
reference schedule (PyTorch's initialisation, 1000 steps of 64 images: 10x the proxy's
training images), and reports Kendall tau and Spearman rho between the two accuracy rankings
with bootstrap 95% intervals, within the smaller and the larger half by parameter count, and
the same statistics for the SAHD zero-cost score, the parameter count and dense MACs as
baselines. ``--ablation`` also ranks the first draw with the proxy variants that led to the
default (earlier default, batch-norm gain, steps), so the table says what moved the number.

Draw 0 was used to choose the default proxy settings; draw 1 was not, and is reported apart
as the held-out figure. Measured runs are cached in results/benchmarks/cache/proxy_runs.jsonl
(see benchmarks/_runs.py). Writes results/benchmarks/proxy_fidelity.{csv,json,png} and prints
a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from _runs import RunCache, draw_archs, setup  # benchmarks/_runs.py, beside this script
from nas.models import build_model
from nas.proxy import ProxySettings, zero_cost_proxy
from nas.stats import bootstrap_ci, kendall_tau, spearman_rho
from nas.study import SearchSettings

OUT = Path("results/benchmarks")
CACHE = OUT / "cache" / "proxy_runs.jsonl"
# The reference: the usual recipe (PyTorch init, warm-up then cosine), 32 epochs of the 2000 images.
LONG = ProxySettings(steps=1000, batch_size=64, warmup_fraction=0.01, bn_init_gain=1.0)
# What was tried on draw 0 on the way to the default (name -> settings).
VARIANTS = {
    "v0.1 default: 100 steps x 64, gain 1": ProxySettings(steps=100, batch_size=64, bn_init_gain=1.0),
    "100 steps x 64, gain 2": ProxySettings(steps=100, batch_size=64, bn_init_gain=2.0),
    "200 steps x 64, gain 1": ProxySettings(steps=200, batch_size=64, bn_init_gain=1.0),
    "200 steps x 32, gain 2 (default)": ProxySettings(),
    "200 steps x 64, gain 2": ProxySettings(steps=200, batch_size=64, bn_init_gain=2.0),
}


def _stats(x, y) -> dict:
    return {"kendall_tau": kendall_tau(x, y), "kendall_tau_ci95": bootstrap_ci(x, y, kendall_tau),
            "spearman_rho": spearman_rho(x, y), "spearman_rho_ci95": bootstrap_ci(x, y, spearman_rho),
            "n": len(x)}


def _summary(frame: pd.DataFrame) -> dict:
    long_acc = frame["long_accuracy"].tolist()
    out = _stats(frame["short_accuracy"].tolist(), long_acc)
    median = frame["params"].median()
    out["within_size_groups"] = {
        name: _stats(g["short_accuracy"].tolist(), g["long_accuracy"].tolist())
        for name, g in (("small", frame[frame["params"] <= median]), ("large", frame[frame["params"] > median]))}
    scored = frame.dropna(subset=["zero_cost"])
    out["baselines"] = {"zero_cost_sahd": _stats(scored["zero_cost"].tolist(), scored["long_accuracy"].tolist()),
                        "params": _stats(frame["params"].tolist(), long_acc),
                        "dense_macs": _stats(frame["dense"].tolist(), long_acc)}
    return out


def _params(arch) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(arch).parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, nargs="+", default=[0, 1], help="sampler seeds, one draw each")
    parser.add_argument("--archs", type=int, default=20, help="architectures per draw")
    parser.add_argument("--ablation", action="store_true", help="also rank draw 0 with the proxy variants")
    parser.add_argument("--no-cache", action="store_true", help="measure every run again")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    split, space, shape = setup(args.threads)
    short = SearchSettings().proxy_settings
    budget_ratio = (LONG.steps * LONG.batch_size) / (short.steps * short.batch_size)
    if budget_ratio < 10:
        raise SystemExit(f"the reference schedule must see at least 10x the proxy's images, got {budget_ratio:.1f}x")
    cache, cpu = RunCache(None if args.no_cache else CACHE), torch.device("cpu")
    rows, start = [], time.perf_counter()
    for draw in args.draws:
        for i, arch in enumerate(draw_archs(space, shape, draw, args.archs)):
            zc = zero_cost_proxy(arch, split, short, device=cpu)
            a = cache.run(arch, short, split, cpu)
            b = cache.run(arch, LONG, split, cpu)
            row = {"draw": draw, "arch": i, "short_accuracy": a["accuracy"], "long_accuracy": b["accuracy"],
                   "zero_cost": zc.zero_cost, "params": _params(arch), "dense": zc.counts.total("dense"),
                   "short_train_s": a["train_time_s"], "long_train_s": b["train_time_s"]}
            if args.ablation and draw == args.draws[0]:
                for name, settings in VARIANTS.items():
                    row[f"variant:{name}"] = cache.run(arch, settings, split, cpu)["accuracy"]
            rows.append({**row, **{k: str(v) for k, v in arch.to_dict().items()}})
            print(f"  draw {draw} {i + 1}/{args.archs}: short {a['accuracy']:.3f} long {b['accuracy']:.3f}"
                  f"{' (cached)' if a['cached'] and b['cached'] else ''} ({time.perf_counter() - start:.0f} s)",
                  flush=True)
    frame = pd.DataFrame(rows)
    result = {"n_archs": len(frame), "long_over_short_budget": budget_ratio,
              "budget_unit": "training images seen (steps x batch)",
              "long_over_short_steps": LONG.steps / short.steps, "proxy_settings": asdict(short),
              "reference_settings": asdict(LONG), "draws": args.draws, "tuned_on_draw": 0,
              "wall_time_s": round(time.perf_counter() - start, 1),
              "note": "wall_time_s excludes runs reused from the cache"}
    result.update(_summary(frame))  # headline: every draw pooled
    result["per_draw"] = {str(d): _summary(g) for d, g in frame.groupby("draw")}
    if args.ablation:
        first = frame[frame["draw"] == args.draws[0]]
        result["ablation"] = {name: {**_stats(first[f"variant:{name}"].tolist(), first["long_accuracy"].tolist()),
                                     "settings": asdict(s)} for name, s in VARIANTS.items()}
    OUT.mkdir(parents=True, exist_ok=True)
    frame.to_csv(OUT / "proxy_fidelity.csv", index=False)
    (OUT / "proxy_fidelity.json").write_text(json.dumps(result, indent=2))
    _plot(frame, result)
    held = [d for d in args.draws if d != 0]
    held_txt = "".join(f"; held-out draw {d}: tau {result['per_draw'][str(d)]['kendall_tau']:.3f}" for d in held)
    print(f"proxy fidelity: Kendall tau {result['kendall_tau']:.3f} "
          f"[{result['kendall_tau_ci95'][0]:.3f}, {result['kendall_tau_ci95'][1]:.3f}], Spearman rho "
          f"{result['spearman_rho']:.3f} over {len(frame)} archs{held_txt}; {short.steps} steps x {short.batch_size} "
          f"vs {LONG.steps} x {LONG.batch_size}; SAHD tau {result['baselines']['zero_cost_sahd']['kendall_tau']:.3f}, "
          f"params tau {result['baselines']['params']['kendall_tau']:.3f}")


def _plot(frame: pd.DataFrame, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context({"font.family": "serif", "font.size": 8}):
        fig, ax = plt.subplots(figsize=(3.4, 2.6), dpi=200)
        for draw, g in frame.groupby("draw"):
            label = f"draw {draw}" + (" (tuning)" if draw == result["tuned_on_draw"] else " (held out)")
            ax.scatter(g["short_accuracy"] * 100, g["long_accuracy"] * 100, s=12, label=label)
        ps, ls = result["proxy_settings"], result["reference_settings"]
        ax.set_xlabel(f"proxy accuracy, {ps['steps']} steps x {ps['batch_size']} (%)")
        ax.set_ylabel(f"accuracy, {ls['steps']} steps x {ls['batch_size']} (%)")
        ax.set_title(f"Kendall tau {result['kendall_tau']:.2f}, n = {result['n_archs']}", fontsize=8)
        ax.legend(fontsize=6, frameon=False)
        fig.tight_layout()
        fig.savefig(OUT / "proxy_fidelity.png")
        plt.close(fig)


if __name__ == "__main__":
    main()
