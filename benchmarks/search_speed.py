"""Project the wall time of the default ``snnas search --budget 200`` from a few timed trials.

Run:  python benchmarks/search_speed.py [--trials 12] [--budget 200]

Runs the default search (default space, embedded digits, default proxy settings, TPE, seed 0)
for a few trials in a temporary folder, on this machine's CPU, and prints seconds per trial
(split into training, evaluation and counting) and the projection for the full budget
against the 45-minute target of issue #4. TPE's first 10 trials are random draws from the
space, so a dozen trials sample the size distribution the full run sees.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import torch

from nas.data import ProxySplit, load_dataset
from nas.report import trials_frame
from nas.space import SearchSpace
from nas.study import SearchSettings, run_search

TARGET_MIN = 45.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--budget", type=int, default=200)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        settings = SearchSettings(study="speed", budget=args.trials, out_dir=Path(tmp))
        start = time.perf_counter()
        split = ProxySplit.make(load_dataset("digits"), train_size=settings.train_size, val_size=settings.val_size,
                                resolution=settings.resolution, seed=settings.seed)
        setup = time.perf_counter() - start
        study = run_search(settings, SearchSpace.from_yaml("space.yaml"), split, device=torch.device("cpu"))
        wall = time.perf_counter() - start - setup
        frame = trials_frame(study)
    per_trial = wall / args.trials
    parts = {k: statistics.mean(frame[k].dropna()) for k in ("train_time_s", "eval_time_s", "count_time_s")}
    projected_min = (setup + per_trial * args.budget) / 60
    print(f"{args.trials} trials on {torch.get_num_threads()} CPU threads: {per_trial:.2f} s per trial "
          f"(train {parts['train_time_s']:.2f}, eval {parts['eval_time_s']:.2f}, count {parts['count_time_s']:.2f}; "
          f"median {statistics.median(frame['duration_s']):.2f}); setup {setup:.1f} s")
    print(f"projected --budget {args.budget}: {projected_min:.1f} min "
          f"({projected_min / TARGET_MIN:.2f} x the {TARGET_MIN:.0f}-minute target)")


if __name__ == "__main__":
    main()
