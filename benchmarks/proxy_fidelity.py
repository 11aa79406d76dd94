"""Proxy fidelity: does the search's proxy rank architectures as a much longer training does?

Run:  python benchmarks/proxy_fidelity.py [--draws 0 1] [--held-out-draw 2] [--held-out-ref-seed 3]
                                          [--archs 20] [--ablation] [--no-cache]

For each draw (a sampler seed), samples architectures uniformly from the default space
(Optuna's RandomSampler, not a search), scores each with the search's default proxy (its
objective: by default the likelihood of two 100-step runs) and trains it with the reference
schedule (PyTorch's initialisation, 1000 steps of 64 images: 10x the proxy's training images),
and reports Kendall tau and Spearman rho between the two rankings with bootstrap 95%
intervals, within the smaller and the larger half by parameter count, and the same statistics
for the SAHD zero-cost score, the parameter count and dense MACs as baselines.

The headline, ``kendall_tau_held_out``, is measured on ``--held-out-draw``, a draw that played
no part in choosing the proxy (benchmarks/proxy_ranking.py chose it on draws 0 and 1), against
reference runs whose seed (``--held-out-ref-seed``) is none of the proxy's, so no proxy run
shares an initialisation or a batch order with the run it is judged against. The tuning draws'
reference runs use seed 0, shared with the proxy's first run, and are reported apart.
``--ablation`` also ranks the first draw with the one-run variants that led to the v0.2 default.
Measured runs are cached in results/benchmarks/cache/proxy_runs.jsonl (see
benchmarks/_runs.py). Writes results/benchmarks/proxy_fidelity.{csv,json,png} and prints a
one-line summary.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import torch

from _runs import RunCache, draw_archs, setup  # benchmarks/_runs.py, beside this script
from snnas.nas.models import build_model
from snnas.nas.search.proxy import SINGLE_RUN, ProxySettings, zero_cost_proxy
from snnas.nas.search.stats import bootstrap_ci, kendall_tau, spearman_rho
from snnas.nas.search.study import SearchSettings

OUT = Path("results/benchmarks")
CACHE = OUT / "cache" / "proxy_runs.jsonl"
# The reference: the usual recipe (PyTorch init, warm-up then cosine), 32 epochs of the 2000 images.
LONG = ProxySettings(steps=1000, batch_size=64, warmup_fraction=0.01, bn_init_gain=1.0, runs=1, score="accuracy")

def _single(**changes) -> ProxySettings:
    """A one-run proxy ranked by accuracy, as every proxy was before the two-run default."""
    return ProxySettings(**{**SINGLE_RUN, **changes})


# What was tried on draw 0 on the way to the v0.2 default (name -> settings).
VARIANTS = {
    "v0.1 default: 100 steps x 64, gain 1": _single(steps=100, batch_size=64, bn_init_gain=1.0),
    "100 steps x 64, gain 2": _single(steps=100, batch_size=64, bn_init_gain=2.0),
    "200 steps x 64, gain 1": _single(steps=200, batch_size=64, bn_init_gain=1.0),
    "200 steps x 32, gain 2 (v0.2 default)": _single(),
    "200 steps x 64, gain 2": _single(steps=200, batch_size=64, bn_init_gain=2.0),
}


def _stats(x, y) -> dict:
    return {"kendall_tau": kendall_tau(x, y), "kendall_tau_ci95": bootstrap_ci(x, y, kendall_tau),
            "spearman_rho": spearman_rho(x, y), "spearman_rho_ci95": bootstrap_ci(x, y, spearman_rho),
            "n": len(x)}


def _summary(frame: pd.DataFrame) -> dict:
    long_acc = frame["long_accuracy"].tolist()
    out = _stats(frame["short_score"].tolist(), long_acc)
    median = frame["params"].median()
    out["within_size_groups"] = {
        name: _stats(g["short_score"].tolist(), g["long_accuracy"].tolist())
        for name, g in (("small", frame[frame["params"] <= median]), ("large", frame[frame["params"] > median]))}
    scored = frame.dropna(subset=["zero_cost"])
    out["baselines"] = {"zero_cost_sahd": _stats(scored["zero_cost"].tolist(), scored["long_accuracy"].tolist()),
                        "params": _stats(frame["params"].tolist(), long_acc),
                        "dense_macs": _stats(frame["dense"].tolist(), long_acc)}
    return out


def _paired_difference(frame: pd.DataFrame) -> dict:
    """tau(proxy) - tau(v0.2 proxy) on the same architectures, with a bootstrap over architectures."""
    pairs = list(zip(frame["short_score"], frame["v02_accuracy"]))

    def difference(xs, ys) -> float:
        return kendall_tau([a for a, _ in xs], ys) - kendall_tau([b for _, b in xs], ys)

    ref = frame["long_accuracy"].tolist()
    return {"difference": difference(pairs, ref), "ci95": bootstrap_ci(pairs, ref, difference)}


def _params(arch) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(arch).parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, nargs="+", default=[0, 1], help="sampler seeds, one draw each")
    parser.add_argument("--held-out-draw", type=int, default=2,
                        help="a draw no choice of settings used: the headline kendall_tau_held_out")
    parser.add_argument("--held-out-ref-seed", type=int, default=3,
                        help="seed of the held-out draw's reference runs (none of the proxy's seeds)")
    parser.add_argument("--archs", type=int, default=20, help="architectures per draw")
    parser.add_argument("--ablation", action="store_true", help="also rank draw 0 with the proxy variants")
    parser.add_argument("--no-cache", action="store_true", help="measure every run again")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    split, space, shape = setup(args.threads)
    short = SearchSettings().proxy_settings
    proxy_seeds = set(range(short.seed, short.seed + short.runs))
    if args.held_out_ref_seed in proxy_seeds:
        parser.error(f"--held-out-ref-seed must differ from the proxy's seeds {sorted(proxy_seeds)}")
    budget_ratio = (LONG.steps * LONG.batch_size) / (short.steps * short.batch_size * short.runs)
    if budget_ratio < 10:
        raise SystemExit(f"the reference schedule must see at least 10x the proxy's images, got {budget_ratio:.1f}x")
    cache, cpu = RunCache(None if args.no_cache else CACHE), torch.device("cpu")
    rows, start = [], time.perf_counter()
    draws = [d for d in args.draws if d != args.held_out_draw] + [args.held_out_draw]
    for draw in draws:
        reference = replace(LONG, seed=args.held_out_ref_seed) if draw == args.held_out_draw else LONG
        for i, arch in enumerate(draw_archs(space, shape, draw, args.archs)):
            zc = zero_cost_proxy(arch, split, short, device=cpu)
            a = cache.run(arch, short, split, cpu, scores=True)
            b = cache.run(arch, reference, split, cpu)
            row = {"draw": draw, "arch": i, "short_score": a[short.score], "short_accuracy": a["accuracy"],
                   "long_accuracy": b["accuracy"], "reference_seed": reference.seed,
                   "zero_cost": zc.zero_cost, "params": _params(arch), "dense": zc.counts.total("dense"),
                   "short_train_s": a["train_time_s"], "long_train_s": b["train_time_s"]}
            if draw == args.held_out_draw:  # the proxy it replaced, on the same held-out draw
                row["v02_accuracy"] = cache.run(arch, _single(), split, cpu)["accuracy"]
            if args.ablation and draw == draws[0]:
                for name, settings in VARIANTS.items():
                    row[f"variant:{name}"] = cache.run(arch, settings, split, cpu)["accuracy"]
            rows.append({**row, **{k: str(v) for k, v in arch.to_dict().items()}})
            print(f"  draw {draw} {i + 1}/{args.archs}: proxy {short.score} {a[short.score]:.3f} (accuracy "
                  f"{a['accuracy']:.3f}), reference {b['accuracy']:.3f}"
                  f"{' (cached)' if a['cached'] and b['cached'] else ''} ({time.perf_counter() - start:.0f} s)",
                  flush=True)
    frame = pd.DataFrame(rows)
    tuning, held = frame[frame["draw"] != args.held_out_draw], frame[frame["draw"] == args.held_out_draw]
    held_stats = _summary(held)
    result = {"kendall_tau_held_out": held_stats["kendall_tau"],
              "kendall_tau_held_out_ci95": held_stats["kendall_tau_ci95"],
              "held_out": {"draw_seed": args.held_out_draw, "n": len(held), "reference_seed": args.held_out_ref_seed,
                           "proxy_seeds": sorted(proxy_seeds), "proxy_score": short.score, **held_stats,
                           "proxy_accuracy_instead": _stats(held["short_accuracy"].tolist(),
                                                            held["long_accuracy"].tolist()),
                           "v0.2_proxy": {"settings": asdict(_single()),
                                          **_stats(held["v02_accuracy"].tolist(), held["long_accuracy"].tolist())},
                           "tau_minus_v0.2_tau": _paired_difference(held)},
              "n_archs": len(frame), "long_over_short_budget": budget_ratio,
              "budget_unit": "training images seen (runs x steps x batch)",
              "proxy_settings": asdict(short), "reference_settings": asdict(LONG), "draws": draws,
              "tuned_on_draws": [d for d in draws if d != args.held_out_draw],
              "tuning_draws_reference_seed": LONG.seed,
              "note": ("the tuning draws' reference runs share seed 0 with the proxy's first run (initialisation "
                       "and batch order), which flatters their figures; the held-out draw's do not. "
                       "wall_time_s excludes runs reused from the cache"),
              "wall_time_s": round(time.perf_counter() - start, 1)}
    result["tuning_draws"] = _summary(tuning)
    result["per_draw"] = {str(d): _summary(g) for d, g in frame.groupby("draw")}
    if args.ablation:
        first = frame[frame["draw"] == draws[0]]
        result["ablation"] = {name: {**_stats(first[f"variant:{name}"].tolist(), first["long_accuracy"].tolist()),
                                     "settings": asdict(s)} for name, s in VARIANTS.items()}
    OUT.mkdir(parents=True, exist_ok=True)
    frame.to_csv(OUT / "proxy_fidelity.csv", index=False)
    (OUT / "proxy_fidelity.json").write_text(json.dumps(result, indent=2))
    _plot(frame, result, args.held_out_draw)
    low, high = result["kendall_tau_held_out_ci95"]
    print(f"proxy fidelity: held-out draw {args.held_out_draw} (n = {len(held)}, reference seed "
          f"{args.held_out_ref_seed}): Kendall tau {result['kendall_tau_held_out']:.3f} [{low:.3f}, {high:.3f}], "
          f"Spearman rho {held_stats['spearman_rho']:.3f}; proxy accuracy instead of {short.score}: tau "
          f"{result['held_out']['proxy_accuracy_instead']['kendall_tau']:.3f}; v0.2 proxy (one 200-step run, "
          f"accuracy): tau {result['held_out']['v0.2_proxy']['kendall_tau']:.3f}; SAHD tau "
          f"{held_stats['baselines']['zero_cost_sahd']['kendall_tau']:.3f}; tuning draws: tau "
          f"{result['tuning_draws']['kendall_tau']:.3f}")


def _plot(frame: pd.DataFrame, result: dict, held_out: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context({"font.family": "serif", "font.size": 8}):
        fig, ax = plt.subplots(figsize=(3.4, 2.6), dpi=200)
        for draw, g in frame.groupby("draw"):
            label = f"draw {draw}" + (" (held out)" if draw == held_out else " (tuning)")
            ax.scatter(g["short_score"] * 100, g["long_accuracy"] * 100, s=12, label=label,
                       marker="o" if draw == held_out else ".")
        ps, ls = result["proxy_settings"], result["reference_settings"]
        ax.set_xlabel(f"proxy {ps['score']}, {ps['runs']} x {ps['steps']} steps x {ps['batch_size']} (%)")
        ax.set_ylabel(f"accuracy, {ls['steps']} steps x {ls['batch_size']} (%)")
        ax.set_title(f"held-out draw: Kendall tau {result['kendall_tau_held_out']:.2f}, "
                     f"n = {result['held_out']['n']}", fontsize=8)
        ax.legend(fontsize=6, frameon=False)
        fig.tight_layout()
        fig.savefig(OUT / "proxy_fidelity.png")
        plt.close(fig)


if __name__ == "__main__":
    main()
