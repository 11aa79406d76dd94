"""Which proxy score ranks best at today's cost? Candidate scores on the draws, against the reference ranking.

Run:  python benchmarks/proxy_ranking.py [--draws 0 1] [--archs 20] [--threads 1]

For every architecture of each draw (the same uniform samples as benchmarks/proxy_fidelity.py)
this measures the reference accuracy (1000 steps x 64, PyTorch init) and, with the default
proxy schedule (200 steps x 32, batch-norm gain 2), the final held-out accuracy, the held-out
cross-entropy and the held-out mean probability of the right class ("soft accuracy"), at two
seeds (initialisation and batch order), plus two half-length runs (100 steps, seeds 0 and 1)
whose average costs what one default run costs, and the SAHD zero-cost score. It reports the
Kendall tau of every candidate score against the reference ranking, per draw and pooled, and
the per-run cost of each. Scores that need two default runs cost twice today's and are shown
for scale only. Writes results/benchmarks/proxy_ranking.{csv,json}.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from _runs import RunCache, draw_archs, setup  # benchmarks/_runs.py, beside this script
from nas.proxy import ProxySettings, zero_cost_proxy
from nas.stats import bootstrap_ci, kendall_tau
from proxy_fidelity import LONG

OUT = Path("results/benchmarks")
CACHE = OUT / "cache" / "proxy_runs.jsonl"
DEFAULT = ProxySettings()
HALF = replace(DEFAULT, steps=DEFAULT.steps // 2)


def _rank(values) -> pd.Series:
    return pd.Series(values).rank()


# score name -> (function of a row, cost in default runs)
SCORES = {
    "accuracy (today's)": (lambda r: r["acc_s0"], 1),
    "soft accuracy": (lambda r: r["soft_s0"], 1),
    "negative held-out loss": (lambda r: -r["loss_s0"], 1),
    "two half runs, mean soft accuracy": (lambda r: (r["half_soft_s0"] + r["half_soft_s1"]) / 2, 1),
    "two half runs, mean accuracy": (lambda r: (r["half_acc_s0"] + r["half_acc_s1"]) / 2, 1),
    "two default runs, mean accuracy": (lambda r: (r["acc_s0"] + r["acc_s1"]) / 2, 2),
    "two default runs, mean soft accuracy": (lambda r: (r["soft_s0"] + r["soft_s1"]) / 2, 2),
}
MIXES = {  # rank averages with the zero-cost score (no extra cost: it is taken in every trial)
    "soft accuracy + SAHD ranks": "soft_s0",
    "accuracy + SAHD ranks": "acc_s0",
}


def measure(cache: RunCache, arch, split, device) -> dict:
    row = {"ref": cache.run(arch, LONG, split, device)["accuracy"]}
    for tag, settings in (("", DEFAULT), ("half_", HALF)):
        for seed in (0, 1):
            run = cache.run(arch, replace(settings, seed=seed), split, device, scores=True)
            row[f"{tag}acc_s{seed}"], row[f"{tag}soft_s{seed}"] = run["accuracy"], run["soft_accuracy"]
            row[f"{tag}loss_s{seed}"], row[f"{tag}train_s{seed}"] = run["val_loss"], run["train_time_s"]
    row["sahd"] = zero_cost_proxy(arch, split, DEFAULT, device=device).zero_cost
    return row


def taus(frame: pd.DataFrame) -> dict:
    out = {}
    for name, (fn, cost) in SCORES.items():
        values = [fn(r) for _, r in frame.iterrows()]
        out[name] = {"kendall_tau": kendall_tau(values, frame["ref"].tolist()),
                     "kendall_tau_ci95": bootstrap_ci(values, frame["ref"].tolist(), kendall_tau), "cost": cost}
    for name, column in MIXES.items():
        values = ((_rank(frame[column]) + _rank(frame["sahd"])) / 2).tolist()
        out[name] = {"kendall_tau": kendall_tau(values, frame["ref"].tolist()),
                     "kendall_tau_ci95": bootstrap_ci(values, frame["ref"].tolist(), kendall_tau), "cost": 1}
    out["SAHD alone"] = {"kendall_tau": kendall_tau(frame["sahd"].tolist(), frame["ref"].tolist()), "cost": 0}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--archs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="proxy_ranking", help="output file stem under results/benchmarks")
    args = parser.parse_args()
    split, space, shape = setup(args.threads)
    cache, cpu, start = RunCache(CACHE), torch.device("cpu"), time.perf_counter()
    rows = []
    for draw in args.draws:
        for i, arch in enumerate(draw_archs(space, shape, draw, args.archs)):
            rows.append({"draw": draw, "arch": i, **measure(cache, arch, split, cpu)})
            print(f"  draw {draw} {i + 1}/{args.archs} ({time.perf_counter() - start:.0f} s)", flush=True)
    frame = pd.DataFrame(rows)
    result = {"draws": args.draws, "per_draw": {str(d): taus(g) for d, g in frame.groupby("draw")},
              "pooled": taus(frame), "default": DEFAULT.__dict__, "half": HALF.__dict__,
              "reference": LONG.__dict__, "threads": torch.get_num_threads()}
    OUT.mkdir(parents=True, exist_ok=True)
    frame.to_csv(OUT / f"{args.out}.csv", index=False)
    (OUT / f"{args.out}.json").write_text(json.dumps(result, indent=2, default=str))
    width = max(map(len, result["pooled"]))
    print(f"{'score':{width}s}  " + "  ".join(f"draw {d}" for d in args.draws) + "  pooled  cost")
    for name, pooled in result["pooled"].items():
        per = "  ".join(f"{result['per_draw'][str(d)][name]['kendall_tau']:6.3f}" for d in args.draws)
        print(f"{name:{width}s}  {per}  {pooled['kendall_tau']:6.3f}  {pooled['cost']}x")


if __name__ == "__main__":
    main()
