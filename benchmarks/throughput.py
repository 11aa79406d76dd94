"""Throughput: seconds per trial by proxy and model size, where the time goes, and what changed.

Run:  python benchmarks/throughput.py [--trials 9] [--repeats 5]

Runs ``run_search`` (the code path of ``snnas search``) on the default space and the embedded
digits with a random sampler, so every proxy sees the same architectures: the default training
proxy, the v0.1 training schedule (100 steps of 64, PyTorch init) and the training-free SAHD
proxy. Reports seconds per trial by proxy and by size (tercile of parameter count) with the
shares spent training, evaluating, counting and scoring (SAHD), and the rest (building, energy
estimates, storage). Then times, side by side on the same trained candidates (interleaved,
medians of repeats), the evaluation and counting as v0.1 did them (held-out accuracy, then a
second pass over the counted images) against the single counted evaluation pass now used.
Writes results/benchmarks/throughput.{csv,json} and prints a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from _runs import setup  # benchmarks/_runs.py, beside this script
from snnas.energy.counting import count_ops
from snnas.nas.models.arch import ArchConfig
from snnas.nas.data import ProxySplit
from snnas.nas.search.proxy import SINGLE_RUN, ProxySettings, accuracy, build_candidate, evaluate, scale_batch_norms, train
from snnas.nas.report.tables import trials_frame
from snnas.nas.search.space import SearchSpace
from snnas.nas.search.study import SearchSettings, run_search

OUT = Path("results/benchmarks")
PROXIES = {  # name -> (search proxy, proxy settings)
    "train (default: 2 runs x 100 steps x 32)": ("train", ProxySettings()),
    "train (v0.2: 1 run x 200 steps x 32)": ("train", ProxySettings(**SINGLE_RUN)),
    "train (v0.1 schedule: 100 x 64, gain 1)": ("train", ProxySettings(steps=100, batch_size=64, bn_init_gain=1.0,
                                                                       runs=1, score="accuracy")),
    "sahd": ("sahd", ProxySettings()),
}
DEFAULT = "train (default: 2 runs x 100 steps x 32)"
PARTS = ("train_time_s", "eval_time_s", "count_time_s", "score_time_s")


def _search(proxy: str, settings: ProxySettings, trials: int, split: ProxySplit, space: SearchSpace) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        s = SearchSettings(study="throughput", budget=trials, sampler="random", seed=0, proxy=proxy,
                           out_dir=Path(tmp), proxy_settings=settings)
        study = run_search(s, space, split, device=torch.device("cpu"))
        frame = trials_frame(study)
        frame = frame[frame["state"].eq("complete") & frame["duplicate_of"].isna()].copy()
        trials = study.trials
        frame["arch"] = [json.dumps(trials[int(t)].user_attrs["arch"], sort_keys=True) for t in frame["trial"]]
    return frame


def _shares(frame: pd.DataFrame) -> dict:
    total = frame["duration_s"].sum()
    out = {"seconds_per_trial": float(frame["duration_s"].mean()), "trials": int(len(frame))}
    for part in PARTS:
        out[f"share_{part.removesuffix('_time_s')}"] = float(frame[part].fillna(0).sum() / total)
    out["share_other"] = 1.0 - sum(out[f"share_{p.removesuffix('_time_s')}"] for p in PARTS)
    return out


def _eval_ratio(archs: list[str], split: ProxySplit, repeats: int) -> dict:
    """v0.1's two passes (an accuracy pass, then a counting pass) against the counted single pass,
    on the same trained candidates. Both count the batch in one pass (``per_sample=False``, as the
    search does), so the ratio is the single pass's saving alone, not that of batched counting."""
    settings = ProxySettings()
    before, after = [], []
    for key in archs:
        model = build_candidate(ArchConfig.from_dict(json.loads(key)), seed=0, device=torch.device("cpu"))
        scale_batch_norms(model, settings.bn_init_gain)
        train(model, split, ProxySettings(steps=20, batch_size=32), torch.device("cpu"))  # realistic firing
        b, a = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            acc_old = accuracy(model, split.val_x, split.val_y, batch=settings.eval_batch, device=torch.device("cpu"))
            count_ops(model, split.val_x[:settings.energy_samples], per_sample=False)
            t1 = time.perf_counter()
            acc_new = evaluate(model, split, settings, torch.device("cpu"))[0]["accuracy"]
            t2 = time.perf_counter()
            assert acc_old == acc_new, "the single pass must give the same accuracy"
            b.append(t1 - t0)
            a.append(t2 - t1)
        before.append(statistics.median(b))
        after.append(statistics.median(a))
    return {"before_s": sum(before), "after_s": sum(after), "speedup": sum(before) / sum(after),
            "archs": len(archs), "repeats": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    split, space, _ = setup(args.threads)
    start = time.perf_counter()
    frames = {}
    for name, (proxy, settings) in PROXIES.items():
        frames[name] = _search(proxy, settings, args.trials, split, space)
        print(f"  {name}: {frames[name]['duration_s'].mean():.2f} s per trial", flush=True)
    sizes = frames[DEFAULT][["arch", "params"]]
    cuts = sizes["params"].quantile([1 / 3, 2 / 3]).tolist()
    size_of = {a: ("small" if p <= cuts[0] else "medium" if p <= cuts[1] else "large")
               for a, p in zip(sizes["arch"], sizes["params"])}
    by_proxy, by_size, rows = {}, {}, []
    for name, frame in frames.items():
        frame["size"] = frame["arch"].map(size_of)
        by_proxy[name] = _shares(frame)
        by_size[name] = {g: {**_shares(sub), "median_params": float(sub["params"].median())}
                         for g, sub in frame.groupby("size")}
        rows.append(frame.assign(proxy=name)[["proxy", "trial", "size", "params", "duration_s", *PARTS]])
    ratio = _eval_ratio(sizes["arch"].tolist(), split, args.repeats)
    train_share = by_proxy[DEFAULT]
    per_trial_saving = ratio["before_s"] / len(sizes) - ratio["after_s"] / len(sizes)
    result = {"seconds_per_trial": {k: v["seconds_per_trial"] for k, v in by_proxy.items()},
              "by_proxy": by_proxy, "by_size": by_size, "size_bounds_params": cuts,
              "evaluation_and_counting": ratio,
              "evaluation_saving_per_trial_s": per_trial_saving,
              "evaluation_saving_share_of_trial": per_trial_saving / train_share["seconds_per_trial"],
              "cpu_threads": torch.get_num_threads(), "wall_time_s": round(time.perf_counter() - start, 1)}
    OUT.mkdir(parents=True, exist_ok=True)
    pd.concat(rows).to_csv(OUT / "throughput.csv", index=False)
    (OUT / "throughput.json").write_text(json.dumps(result, indent=2))
    print(f"throughput on {torch.get_num_threads()} CPU threads: default proxy {train_share['seconds_per_trial']:.2f} s "
          f"per trial ({train_share['share_train']:.0%} training, {train_share['share_eval']:.1%} evaluation, "
          f"{train_share['share_count']:.1%} counting, {train_share['share_score']:.1%} SAHD), v0.2 proxy "
          f"{result['seconds_per_trial']['train (v0.2: 1 run x 200 steps x 32)']:.2f} s, v0.1 schedule "
          f"{result['seconds_per_trial']['train (v0.1 schedule: 100 x 64, gain 1)']:.2f} s, SAHD proxy "
          f"{result['seconds_per_trial']['sahd']:.2f} s; evaluation + counting {ratio['speedup']:.2f}x faster "
          f"({ratio['before_s'] / len(sizes):.3f} -> {ratio['after_s'] / len(sizes):.3f} s per trial)")


if __name__ == "__main__":
    main()
