"""Which proxy score ranks best at today's cost? Candidate scores on the draws, against a reference ranking.

Run:  python benchmarks/proxy_ranking.py [--draws 0 1] [--ref-seeds 0] [--proxy-seeds 1 2] [--ema 0.98]
      python benchmarks/proxy_ranking.py --draws 2 --ref-seeds 3 --only-ref --threads 1   # fill the cache

For every architecture of each draw (the same uniform samples as benchmarks/proxy_fidelity.py)
this measures the reference accuracy: the mean over ``--ref-seeds`` of long trainings (1000
steps x 64, PyTorch's initialisation). The candidates' runs use ``--proxy-seeds``, which must
differ from the reference seeds: a proxy run with the reference's seed shares its
initialisation and batch order and agrees with it better than a search's proxy would agree
with an independent long training (measured: tau 0.60 with the shared seed against 0.46
without, draw 0). With the default proxy schedule (200 steps x 32, batch-norm gain 2) the
candidates are the final held-out accuracy, the held-out cross-entropy and the held-out mean
probability of the right class ("soft accuracy"); two half-length runs (100 steps, both proxy
seeds) whose average costs what one default run costs; runs that evaluate an exponential
moving average of the weights (``--ema`` decays); rank averages with the SAHD zero-cost score;
and SAHD alone. It reports the Kendall tau of every candidate against the reference, per draw
and pooled, with bootstrap intervals, the cost of each in training images (x one default run; the
measured training-time ratio beside it), and, with two reference seeds, the reference's own noise (the tau between two
long trainings: no proxy can be expected to agree with one long training better than another
does). Scores that cost more than one default run are shown for scale only. Writes
results/benchmarks/proxy_ranking.{csv,json}.
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
from snnas.nas.search.proxy import SINGLE_RUN, ProxySettings, zero_cost_proxy
from snnas.nas.search.stats import bootstrap_ci, kendall_tau
from proxy_fidelity import LONG

OUT = Path("results/benchmarks")
CACHE = OUT / "cache" / "proxy_runs.jsonl"
DEFAULT = ProxySettings(**SINGLE_RUN)  # the proxy the candidates were compared against: one 200-step run
HALF = replace(DEFAULT, steps=DEFAULT.steps // 2)


def _rank(values) -> pd.Series:
    return pd.Series(values).rank()


def variants(emas: list[float]) -> dict[str, ProxySettings]:
    """Column prefix -> proxy settings of every run a candidate needs (seeds are added per run)."""
    out = {"": DEFAULT, "half_": HALF}
    out.update({f"ema{d:g}_": replace(DEFAULT, ema=d) for d in emas})
    return out


def scores(emas: list[float]) -> dict:
    """Score name -> (function of a row, columns of its training time)."""
    out = {
        "accuracy (today's)": (lambda r: r["acc_r0"], ["train_r0"]),
        "soft accuracy": (lambda r: r["soft_r0"], ["train_r0"]),
        "negative held-out loss": (lambda r: -r["loss_r0"], ["train_r0"]),
        "two half runs, mean accuracy": (lambda r: (r["half_acc_r0"] + r["half_acc_r1"]) / 2,
                                         ["half_train_r0", "half_train_r1"]),
        "two half runs, mean soft accuracy": (lambda r: (r["half_soft_r0"] + r["half_soft_r1"]) / 2,
                                              ["half_train_r0", "half_train_r1"]),
        "two half runs, mean negative loss": (lambda r: -(r["half_loss_r0"] + r["half_loss_r1"]) / 2,
                                              ["half_train_r0", "half_train_r1"]),
        "two default runs, mean accuracy": (lambda r: (r["acc_r0"] + r["acc_r1"]) / 2, ["train_r0", "train_r1"]),
        "two default runs, mean soft accuracy": (lambda r: (r["soft_r0"] + r["soft_r1"]) / 2,
                                                 ["train_r0", "train_r1"]),
    }
    for d in emas:
        p = f"ema{d:g}_"
        out[f"weight average (EMA {d:g}), accuracy"] = (lambda r, p=p: r[f"{p}acc_r0"], [f"{p}train_r0"])
        out[f"weight average (EMA {d:g}), soft accuracy"] = (lambda r, p=p: r[f"{p}soft_r0"], [f"{p}train_r0"])
    return out


# Training images of each candidate, in default runs (200 steps x 32): the cost on any machine. The
# measured time ratio is also reported, but the cached runs were timed under different loads.
IMAGES = {"two default runs, mean accuracy": 2.0, "two default runs, mean soft accuracy": 2.0}

MIXES = {  # rank averages with the zero-cost score (no extra cost: it is taken in every trial)
    "accuracy + SAHD ranks": "acc_r0",
    "soft accuracy + SAHD ranks": "soft_r0",
}


def measure(cache: RunCache, arch, split, device, *, ref_seeds, proxy_seeds, emas, only_ref: bool) -> dict:
    row = {f"ref_s{seed}": cache.run(arch, replace(LONG, seed=seed), split, device)["accuracy"] for seed in ref_seeds}
    row["ref"] = sum(row[f"ref_s{s}"] for s in ref_seeds) / len(ref_seeds)
    if only_ref:
        return row
    for tag, settings in variants(emas).items():
        for i, seed in enumerate(proxy_seeds[:1] if tag.startswith("ema") else proxy_seeds[:2]):
            run = cache.run(arch, replace(settings, seed=seed), split, device, scores=True)
            row[f"{tag}acc_r{i}"], row[f"{tag}soft_r{i}"] = run["accuracy"], run["soft_accuracy"]
            row[f"{tag}loss_r{i}"], row[f"{tag}train_r{i}"] = run["val_loss"], run["train_time_s"]
    row["sahd"] = zero_cost_proxy(arch, split, replace(DEFAULT, seed=proxy_seeds[0]), device=device).zero_cost
    return row


def _tau(values, ref) -> dict:
    return {"kendall_tau": kendall_tau(values, ref), "kendall_tau_ci95": bootstrap_ci(values, ref, kendall_tau)}


def taus(frame: pd.DataFrame, emas: list[float], ref_seeds: list[int]) -> dict:
    ref = frame["ref"].tolist()
    default_time = frame["train_r0"].sum()
    out = {}
    for name, (fn, cost_columns) in scores(emas).items():
        values = [fn(r) for _, r in frame.iterrows()]
        out[name] = {**_tau(values, ref), "cost": IMAGES[name] if name in IMAGES else 1.0,
                     "measured_time_ratio": float(sum(frame[c].sum() for c in cost_columns) / default_time)}
    for name, column in MIXES.items():
        values = ((_rank(frame[column]) + _rank(frame["sahd"])) / 2).tolist()
        out[name] = {**_tau(values, ref), "cost": 1.0}
    out["SAHD alone"] = {**_tau(frame["sahd"].tolist(), ref), "cost": 0.0}
    if len(ref_seeds) >= 2:  # how well one long training agrees with another: the ceiling for any proxy
        a, b = (frame[f"ref_s{s}"].tolist() for s in ref_seeds[:2])
        out["reference noise: one long run vs another"] = {**_tau(a, b), "cost": None}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--archs", type=int, default=20)
    parser.add_argument("--ref-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--proxy-seeds", type=int, nargs=2, default=[1, 2],
                        help="seeds of the candidates' runs (two-run candidates use both); none may be a reference seed")
    parser.add_argument("--ema", type=float, nargs="*", default=[])
    parser.add_argument("--only-ref", action="store_true", help="only measure the reference runs (fill the cache)")
    parser.add_argument("--reverse", action="store_true",
                        help="visit each draw's architectures last first (a second process filling the cache)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="proxy_ranking", help="output file stem under results/benchmarks")
    args = parser.parse_args()
    if set(args.proxy_seeds) & set(args.ref_seeds):
        parser.error("--proxy-seeds must differ from --ref-seeds: a shared seed shares initialisation and batch order")
    split, space, shape = setup(args.threads)
    cache, cpu, start = RunCache(CACHE), torch.device("cpu"), time.perf_counter()
    rows = []
    for draw in args.draws:
        archs = list(enumerate(draw_archs(space, shape, draw, args.archs)))
        for i, arch in (reversed(archs) if args.reverse else archs):
            rows.append({"draw": draw, "arch": i, **measure(cache, arch, split, cpu, ref_seeds=args.ref_seeds,
                                                             proxy_seeds=args.proxy_seeds, emas=args.ema,
                                                             only_ref=args.only_ref)})
            print(f"  draw {draw} {i + 1}/{args.archs} ({time.perf_counter() - start:.0f} s)", flush=True)
    if args.only_ref:
        return
    frame = pd.DataFrame(rows)
    result = {"draws": args.draws, "reference_seeds": args.ref_seeds, "proxy_seeds": args.proxy_seeds,
              "reference": "mean held-out accuracy of long trainings with the reference seeds",
              "per_draw": {str(d): taus(g, args.ema, args.ref_seeds) for d, g in frame.groupby("draw")},
              "pooled": taus(frame, args.ema, args.ref_seeds), "default": DEFAULT.identity(),
              "half": HALF.identity(), "long": LONG.identity(), "threads": torch.get_num_threads()}
    OUT.mkdir(parents=True, exist_ok=True)
    frame.to_csv(OUT / f"{args.out}.csv", index=False)
    (OUT / f"{args.out}.json").write_text(json.dumps(result, indent=2, default=str))
    width = max(map(len, result["pooled"]))
    print(f"{'score':{width}s}  " + "  ".join(f"draw {d}" for d in args.draws) + "  pooled  pooled 95% CI    cost")
    for name, pooled in result["pooled"].items():
        per = "  ".join(f"{result['per_draw'][str(d)][name]['kendall_tau']:6.3f}" for d in args.draws)
        low, high = pooled["kendall_tau_ci95"]
        cost = pooled["cost"]
        print(f"{name:{width}s}  {per}  {pooled['kendall_tau']:6.3f}  [{low:5.2f}, {high:5.2f}]  "
              f"{'' if cost is None else f'{cost:.2f}x'}")


if __name__ == "__main__":
    main()
