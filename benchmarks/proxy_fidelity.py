"""Proxy fidelity: does the default proxy rank architectures as a much longer training does?

Run:  python benchmarks/proxy_fidelity.py [--archs 20] [--long-steps 1000] [--seed 0]

Samples architectures uniformly from the default space (Optuna's RandomSampler, not a search),
trains each with the default proxy and with a schedule at least 10x longer (same data, split and
seed), and reports Kendall tau and Spearman rho between the two accuracy rankings with
bootstrap 95% intervals, within the smaller and the larger half by parameter count too, and the
same statistics for the SAHD zero-cost score, the parameter count and dense MACs as baselines.
Writes results/benchmarks/proxy_fidelity.{csv,json,png} and prints a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import optuna
import pandas as pd
import torch

from nas.data import ProxySplit, load_dataset
from nas.proxy import train_proxy
from nas.space import DataShape, SearchSpace
from nas.stats import bootstrap_ci, kendall_tau, spearman_rho
from nas.study import SearchSettings

OUT = Path("results/benchmarks")


def _stats(x, y) -> dict:
    tau, rho = kendall_tau(x, y), spearman_rho(x, y)
    return {"kendall_tau": tau, "kendall_tau_ci95": bootstrap_ci(x, y, kendall_tau),
            "spearman_rho": rho, "spearman_rho_ci95": bootstrap_ci(x, y, spearman_rho), "n": len(x)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=20)
    parser.add_argument("--long-steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    defaults = SearchSettings()
    short = defaults.proxy_settings
    long = replace(short, steps=args.long_steps)
    if long.steps < 10 * short.steps:
        raise SystemExit(f"--long-steps must be at least 10x the proxy's {short.steps} steps")
    split = ProxySplit.make(load_dataset("digits"), train_size=defaults.train_size, val_size=defaults.val_size,
                            resolution=defaults.resolution, seed=defaults.seed)
    space = SearchSpace.from_yaml("space.yaml")
    shape = DataShape(split.resolution, split.channels, split.num_classes)
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.seed))
    rows, cpu = [], torch.device("cpu")
    start = time.perf_counter()
    for i in range(args.archs):
        trial = sampler.ask()
        arch = space.suggest(trial, shape)
        sampler.tell(trial, 0.0)
        a = train_proxy(arch, split, short, device=cpu)
        b = train_proxy(arch, split, long, device=cpu, zero_cost=False)
        rows.append({"arch": i, "short_accuracy": a.accuracy, "long_accuracy": b.accuracy,
                     "zero_cost": a.zero_cost, "params": sum(p.numel() for p in _model_params(arch)),
                     "dense": a.counts.total("dense"), "short_train_s": a.train_time_s,
                     "long_train_s": b.train_time_s, **{k: str(v) for k, v in arch.to_dict().items()}})
        print(f"  {i + 1}/{args.archs}: short {a.accuracy:.3f} long {b.accuracy:.3f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    frame = pd.DataFrame(rows)
    long_acc = frame["long_accuracy"].tolist()
    result = {"n_archs": len(frame), "long_over_short_budget": long.steps / short.steps,
              "short_steps": short.steps, "long_steps": long.steps, "proxy_settings": asdict(short),
              "wall_time_s": round(time.perf_counter() - start, 1)}
    result.update(_stats(frame["short_accuracy"].tolist(), long_acc))
    median = frame["params"].median()
    result["within_size_groups"] = {
        name: _stats(g["short_accuracy"].tolist(), g["long_accuracy"].tolist())
        for name, g in (("small", frame[frame["params"] <= median]), ("large", frame[frame["params"] > median]))}
    scored = frame.dropna(subset=["zero_cost"])
    result["baselines"] = {"zero_cost_sahd": _stats(scored["zero_cost"].tolist(), scored["long_accuracy"].tolist()),
                           "params": _stats(frame["params"].tolist(), long_acc),
                           "dense_macs": _stats(frame["dense"].tolist(), long_acc)}
    OUT.mkdir(parents=True, exist_ok=True)
    frame.to_csv(OUT / "proxy_fidelity.csv", index=False)
    (OUT / "proxy_fidelity.json").write_text(json.dumps(result, indent=2))
    _plot(frame, result)
    print(f"proxy fidelity: Kendall tau {result['kendall_tau']:.3f} "
          f"[{result['kendall_tau_ci95'][0]:.3f}, {result['kendall_tau_ci95'][1]:.3f}], Spearman rho "
          f"{result['spearman_rho']:.3f} over {len(frame)} archs, {short.steps} vs {long.steps} steps; "
          f"SAHD tau {result['baselines']['zero_cost_sahd']['kendall_tau']:.3f}, params tau "
          f"{result['baselines']['params']['kendall_tau']:.3f}")


def _model_params(arch):
    from nas.models import build_model

    with torch.device("meta"):
        return list(build_model(arch).parameters())


def _plot(frame: pd.DataFrame, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context({"font.family": "serif", "font.size": 8}):
        fig, ax = plt.subplots(figsize=(3.4, 2.6), dpi=200)
        ax.scatter(frame["short_accuracy"] * 100, frame["long_accuracy"] * 100, s=12)
        ax.set_xlabel(f"proxy accuracy, {result['short_steps']} steps (%)")
        ax.set_ylabel(f"accuracy, {result['long_steps']} steps (%)")
        ax.set_title(f"Kendall tau {result['kendall_tau']:.2f}, n = {result['n_archs']}", fontsize=8)
        fig.tight_layout()
        fig.savefig(OUT / "proxy_fidelity.png")
        plt.close(fig)


if __name__ == "__main__":
    main()
