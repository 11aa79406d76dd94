"""Proxy fidelity: does a ranker order unseen architectures as a much longer training does?

Run:  python benchmarks/proxy_fidelity.py [--draws 31 32 33] [--archs 12] [--ref-seeds 3 4]
                                          [--threads N] [--measure-only] [--no-cache]

For each draw (a sampler seed none of the settings were chosen on), samples architectures
uniformly from the benchmark space (Optuna's RandomSampler, not a search), trains each with the
reference schedule (PyTorch's initialisation, 1000 steps of 64 images) under two seeds, and
ranks it with every ranker: the search's fixed proxy (two 100-step runs, likelihood), the
multi-fidelity rungs (one run of 100 and of 300 steps), the SAHD zero-cost score, the parameter
count and dense MACs. For each ranker it reports Kendall tau against the first reference seed:

- ``all``: every architecture of the draw;
- ``top_quarter``: the architectures in the reference's top quarter (the front's region);
- ``within_size``: the smaller and the larger half by parameter count, averaged;

beside the reference's own **noise ceiling**: the same statistics between the two reference
seeds (no ranker can be expected to agree with one reference run better than another run of it).
Each figure is given per draw and as the mean over the draws with a 95% bootstrap interval
(architectures resampled within each draw). Measured runs are cached in
results/benchmarks/cache/proxy_runs.jsonl (benchmarks/_runs.py), so several processes can
measure different draws at once (``--measure-only``) and a last run gathers them. Writes
results/benchmarks/proxy_fidelity.{csv,json} and prints a table.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import torch

from _runs import RunCache, draw_archs, setup  # benchmarks/_runs.py, beside this script
from snnas.nas.models import build_model
from snnas.nas.search.proxy import ProxySettings, zero_cost_proxy
from snnas.nas.search.stats import kendall_tau
from snnas.nas.search.study import SearchSettings

OUT = Path("results/benchmarks")
CACHE = OUT / "cache" / "proxy_runs.jsonl"
# The reference: the usual recipe (PyTorch init, warm-up then cosine), 32 epochs of the 2000 images.
LONG = ProxySettings(steps=1000, batch_size=64, warmup_fraction=0.01, bn_init_gain=1.0, runs=1, score="accuracy")
# Trained rankers: name -> settings (each scored by its own ``score``).
TRAINED = {
    "fixed proxy (2 x 100 steps, likelihood)": SearchSettings().proxy_settings,
    "rung 100 steps (1 run, likelihood)": ProxySettings(steps=100, runs=1, score="likelihood"),
    "rung 300 steps (1 run, likelihood)": ProxySettings(steps=300, runs=1, score="likelihood"),
}
FREE = ("zero_cost_sahd", "params", "dense_macs")


def _params(arch) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(arch).parameters())


def _measure(args, split, space, shape) -> pd.DataFrame:
    cache, cpu = RunCache(None if args.no_cache else CACHE), torch.device("cpu")
    rows, start = [], time.perf_counter()
    for draw in args.draws:
        archs = list(enumerate(draw_archs(space, shape, draw, args.archs)))
        for i, arch in reversed(archs) if args.reverse else archs:
            zc = zero_cost_proxy(arch, split, TRAINED["fixed proxy (2 x 100 steps, likelihood)"], device=cpu)
            row = {"draw": draw, "arch": i, "zero_cost_sahd": zc.zero_cost, "params": _params(arch),
                   "dense_macs": zc.counts.total("dense")}
            cost = 0.0
            for name, settings in TRAINED.items():
                run = cache.run(arch, settings, split, cpu, scores=True)
                row[name], row[f"{name} s"] = run[settings.score], run["train_time_s"]
            for k, seed in enumerate(args.ref_seeds):
                run = cache.run(arch, replace(LONG, seed=seed), split, cpu)
                row[f"reference seed {seed}"], row[f"reference seed {seed} s"] = run["accuracy"], run["train_time_s"]
                cost += run["train_time_s"]
            rows.append({**row, **{k: str(v) for k, v in arch.to_dict().items()}})
            print(f"  draw {draw} {i + 1}/{args.archs}: reference {row[f'reference seed {args.ref_seeds[0]}']:.3f} "
                  f"/ {row[f'reference seed {args.ref_seeds[1]}']:.3f} ({time.perf_counter() - start:.0f} s)",
                  flush=True)
    return pd.DataFrame(rows)


def _taus(g: pd.DataFrame, ranker: str, ref: str) -> dict:
    """Kendall tau of ``ranker`` against ``ref`` on one draw: all, top quarter of ``ref``, within size halves."""
    g = g.dropna(subset=[ranker, ref])
    top = g.nlargest(max(3, round(len(g) / 4)), ref)
    median = g["params"].median()
    halves = [h for h in (g[g["params"] <= median], g[g["params"] > median]) if len(h) > 2]
    within = [kendall_tau(h[ranker].tolist(), h[ref].tolist()) for h in halves]
    return {"all": kendall_tau(g[ranker].tolist(), g[ref].tolist()),
            "top_quarter": kendall_tau(top[ranker].tolist(), top[ref].tolist()),
            "within_size": sum(within) / len(within) if within else float("nan")}


def _mean_with_ci(frame: pd.DataFrame, ranker: str, ref: str, resamples: int = 1000) -> dict:
    """Per draw taus, their mean over draws, and a bootstrap interval of the mean
    (architectures resampled with replacement within each draw)."""
    draws = {d: g.reset_index(drop=True) for d, g in frame.groupby("draw")}
    per_draw = {str(d): _taus(g, ranker, ref) for d, g in draws.items()}
    out = {}
    rng = random.Random(0)
    for stat in ("all", "top_quarter", "within_size"):
        mean = sum(t[stat] for t in per_draw.values()) / len(per_draw)
        boots = []
        for _ in range(resamples):
            values = []
            for g in draws.values():
                sample = g.iloc[[rng.randrange(len(g)) for _ in range(len(g))]]
                values.append(_taus(sample, ranker, ref)[stat])
            if all(v == v for v in values):
                boots.append(sum(values) / len(values))
        boots.sort()
        ci = [boots[int(0.025 * (len(boots) - 1))], boots[int(0.975 * (len(boots) - 1))]] if boots else [None, None]
        out[stat] = {"mean": mean, "ci95": ci}
    out["per_draw"] = per_draw
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, nargs="+", default=[31, 32, 33],
                        help="sampler seeds, one draw each (0, 1, 2 and 5 chose earlier settings)")
    parser.add_argument("--archs", type=int, default=12, help="architectures per draw")
    parser.add_argument("--ref-seeds", type=int, nargs=2, default=[3, 4],
                        help="seeds of the two reference trainings (the first ranks, both give the ceiling)")
    parser.add_argument("--measure-only", action="store_true", help="fill the cache, write nothing")
    parser.add_argument("--reverse", action="store_true",
                        help="measure each draw's architectures last to first (a second process sharing the cache)")
    parser.add_argument("--no-cache", action="store_true", help="measure every run again")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    proxy_seeds = {s.seed + r for s in TRAINED.values() for r in range(s.runs)}
    if proxy_seeds & set(args.ref_seeds):
        parser.error(f"--ref-seeds must differ from the rankers' seeds {sorted(proxy_seeds)}")
    split, space, shape = setup(args.threads)
    start = time.perf_counter()
    frame = _measure(args, split, space, shape)
    if args.measure_only:
        return
    ref, twin = (f"reference seed {s}" for s in args.ref_seeds)
    rankers = {name: _mean_with_ci(frame, name, ref) for name in [*TRAINED, *FREE]}
    result = {
        "draws": args.draws, "archs_per_draw": args.archs, "reference_seeds": args.ref_seeds,
        "reference_settings": asdict(LONG), "rankers": rankers,
        "noise_ceiling": _mean_with_ci(frame, twin, ref),
        "ranker_settings": {name: asdict(s) for name, s in TRAINED.items()},
        "train_time_s_mean": {name: float(frame[f"{name} s"].mean()) for name in TRAINED}
        | {"reference": float(frame[f"{ref} s"].mean())},
        "statistic": ("Kendall tau-b against the first reference seed; all = every architecture of a draw, "
                      "top_quarter = the reference's best quarter, within_size = mean of the two halves by "
                      "parameter count; mean over draws with a 95% bootstrap interval (architectures "
                      "resampled within draws)"),
        "wall_time_s": round(time.perf_counter() - start, 1)}
    OUT.mkdir(parents=True, exist_ok=True)
    frame.to_csv(OUT / "proxy_fidelity.csv", index=False)
    (OUT / "proxy_fidelity.json").write_text(json.dumps(result, indent=2))
    print(f"{'ranker':45s} {'all':>22s} {'top quarter':>22s} {'within size':>22s}")
    for name, r in [("noise ceiling (reference vs reference)", result["noise_ceiling"]), *rankers.items()]:
        cells = [f"{r[s]['mean']:.2f} [{r[s]['ci95'][0]:.2f}, {r[s]['ci95'][1]:.2f}]"
                 for s in ("all", "top_quarter", "within_size")]
        print(f"{name:45s} " + " ".join(f"{c:>22s}" for c in cells))


if __name__ == "__main__":
    main()
