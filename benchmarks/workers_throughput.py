"""Trials per hour with 1 and 2 local workers on this machine, printed side by side as a ratio.

Run:  python benchmarks/workers_throughput.py [--trials 8] [--steps 100]

Both runs use the default space, data and proxy on the same machine, one after the other, each
in a fresh study with the random sampler (so both evaluate the same kind of candidates). One
worker uses every core for its tensor ops; two workers get half the cores each (the default
now). Writes results/benchmarks/workers_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


OUT = Path(__file__).resolve().parent.parent / "results" / "benchmarks"


def run(workers: int, trials: int, steps: int, out: str) -> float:
    cmd = [sys.executable, "-m", "snnas", "search", "--budget", str(trials), "--study", f"w{workers}",
           "--out", out, "--sampler", "random", "--steps", str(steps), "--workers", str(workers),
           "--space", str(Path(__file__).resolve().with_name("space_measured.yaml"))]  # the README's measured space
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        one = run(1, args.trials, args.steps, out)
        two = run(2, args.trials, args.steps, out)
    per_hour = {1: args.trials / one * 3600, 2: args.trials / two * 3600}
    result = {"trials": args.trials, "steps_per_run": args.steps, "wall_s": {"1": one, "2": two},
              "trials_per_hour": {"1": per_hour[1], "2": per_hour[2]}, "ratio": per_hour[2] / per_hour[1],
              "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
              "one_worker_threads": "torch's default (every core)", "two_workers_threads": "cores / 2 each"}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "workers_throughput.json").write_text(json.dumps(result, indent=2))
    print(f"{args.trials} trials, {args.steps} steps each: 1 worker {per_hour[1]:.0f} trials/h ({one:.0f} s), "
          f"2 workers {per_hour[2]:.0f} trials/h ({two:.0f} s); ratio {per_hour[2] / per_hour[1]:.2f}x")


if __name__ == "__main__":
    main()
