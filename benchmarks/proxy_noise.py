"""Run-to-run noise of the proxy: the same architectures trained again with other thread counts and seeds.

Run:  python benchmarks/proxy_noise.py [--draw 5] [--archs 8] [--threads 1 2] [--seeds 0 2 4]

Samples ``--archs`` architectures uniformly from the default space (a draw no other benchmark
uses) and scores each with the search's default proxy (two 100-step runs) once per (thread
count, seed) pair, measuring
every run now (no cache: the cache's key leaves the thread count out, because a run's numbers
are meant to depend only on the architecture, the settings and the data). Two kinds of noise:

- threads: the same seed on 1 and 2 threads. The same arithmetic summed in another order
  differs at the rounding level, and a short training of a spiking network amplifies that.
- seed: another initialisation and batch order on the same thread count, the noise a search
  accepts by training each candidate once.

For the proxy's likelihood (the search's objective) and its mean accuracy it
reports the standard deviation of the score per architecture (mean over architectures, and
the largest), the standard deviation of each architecture's rank among the ``--archs``
(mean, largest), and the mean Kendall tau between the rankings of two runs; first across
thread counts at each seed, then across seeds at each thread count. Writes
results/benchmarks/proxy_noise.{csv,json}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from _runs import draw_archs, setup  # benchmarks/_runs.py, beside this script
from snnas.nas.search.proxy import ProxySettings, train_proxy
from snnas.nas.search.stats import kendall_tau

OUT = Path("results/benchmarks")
SCORES = {"likelihood": "likelihood", "accuracy": "accuracy"}


def _noise(frame: pd.DataFrame, score: str, fixed: str, varied: str) -> dict:
    """Spread of ``score`` across values of ``varied`` with ``fixed`` held, averaged over ``fixed``."""
    stds, rank_stds, taus = [], [], []
    for _, group in frame.groupby(fixed):
        table = group.pivot(index="arch", columns=varied, values=score)  # arch x varied
        ranks = table.rank(axis=0)
        stds += table.std(axis=1, ddof=1).tolist()
        rank_stds += ranks.std(axis=1, ddof=1).tolist()
        taus += [kendall_tau(table[a].tolist(), table[b].tolist()) for a, b in itertools.combinations(table.columns, 2)]
    return {"std_mean": statistics.fmean(stds), "std_max": max(stds), "rank_std_mean": statistics.fmean(rank_stds),
            "rank_std_max": max(rank_stds), "kendall_tau_between_runs_mean": statistics.fmean(taus),
            "kendall_tau_between_runs_min": min(taus)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draw", type=int, default=5, help="sampler seed of the architectures")
    parser.add_argument("--archs", type=int, default=8)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 2, 4],
                        help="first seeds of the proxy's runs (a proxy of 2 runs uses seed and seed + 1)")
    args = parser.parse_args()
    if len(args.threads) < 2 or len(args.seeds) < 2:
        parser.error("give at least two thread counts and two seeds")
    split, space, shape = setup(None)
    archs = draw_archs(space, shape, args.draw, args.archs)
    rows, start = [], time.perf_counter()
    for i, arch in enumerate(archs):
        for threads, seed in itertools.product(args.threads, args.seeds):
            torch.set_num_threads(threads)
            result = train_proxy(arch, split, replace(ProxySettings(), seed=seed), device=torch.device("cpu"),
                                 zero_cost=False)
            rows.append({"arch": i, "threads": threads, "seed": seed, "likelihood": result.likelihood,
                         "accuracy": result.accuracy, "train_time_s": result.train_time_s})
        print(f"  arch {i + 1}/{len(archs)} ({time.perf_counter() - start:.0f} s)", flush=True)
    frame = pd.DataFrame(rows)
    result = {"draw": args.draw, "archs": args.archs, "threads": args.threads, "seeds": args.seeds,
              "proxy": ProxySettings().identity(), "wall_time_s": round(time.perf_counter() - start, 1),
              "noise": {name: {"threads (same seed)": _noise(frame, column, "seed", "threads"),
                               "seed (same threads)": _noise(frame, column, "threads", "seed")}
                        for name, column in SCORES.items()}}
    OUT.mkdir(parents=True, exist_ok=True)
    frame.to_csv(OUT / "proxy_noise.csv", index=False)
    (OUT / "proxy_noise.json").write_text(json.dumps(result, indent=2))
    for name, kinds in result["noise"].items():
        for kind, n in kinds.items():
            print(f"{name:10s} across {kind:19s}: std {n['std_mean']:.4f} (max {n['std_max']:.4f}), rank std "
                  f"{n['rank_std_mean']:.2f} (max {n['rank_std_max']:.2f}) of {args.archs}, tau between runs "
                  f"{n['kendall_tau_between_runs_mean']:.2f} (min {n['kendall_tau_between_runs_min']:.2f})")


if __name__ == "__main__":
    main()
