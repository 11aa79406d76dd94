"""Wall time of the default ``snnas search``, this code against an earlier commit, side by side.

Run:  python benchmarks/search_speed.py [--trials 16] [--budget 200] [--before adc008e] [--repeats 1]

Runs the default search as a user does (``snnas search --budget N`` with every default: embedded
digits, proxy, TPE, seed 0, and the default number of workers and threads; the space is
``benchmarks/space_measured.yaml``, the default space when the README's figures were taken) for
``--trials`` trials in a temporary folder, once with this checkout and once with the code of
``--before`` (checked out into a temporary git worktree; by default the last commit before the
fused neurons, the shifted LS-SSA form and one worker per core), alternating the two
``--repeats`` times so both see the same machine load. For each it prints the wall time, the
start-up (process start, data, study set-up: the wall time less the span from the first trial's
start to the last one's end), the trials per hour, and the projected wall time of
``--budget`` trials (start-up + budget x span / trials), then the ratio of the two. TPE's first
10 trials are random draws from the space, so a dozen or more sample the size distribution a
full run sees; both sides draw the same first candidates. Writes
results/benchmarks/search_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "benchmarks"
TARGET_MIN, STRETCH_MIN = 30.0, 20.0  # issue #12


def _run(tree: Path, trials: int, tmp: Path) -> dict:
    """One timed ``snnas search`` with the code in ``tree``."""
    out = tmp / f"run-{time.monotonic_ns()}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SNNAS_DEBUG")}
    env["PYTHONPATH"] = str(tree)  # this tree's packages before the installed checkout
    start = time.perf_counter()
    # the space the README's figures were measured on, for both trees (the default space has grown)
    space = Path(__file__).resolve().with_name("space_measured.yaml")
    module = "snnas" if (tree / "snnas" / "__main__.py").exists() else "cli.main"  # trees before the snnas namespace
    done = subprocess.run([sys.executable, "-m", module, "search", "--budget", str(trials), "--out", str(out),
                           "--space", str(space)], cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"snnas search failed in {tree}: {done.stderr.strip()[-400:]}")
    storage = JournalStorage(JournalFileBackend(str(out / "snnas" / "study.journal")))
    done = [t for t in optuna.load_study(study_name="snnas", storage=storage).trials
            if t.state == optuna.trial.TrialState.COMPLETE and t.datetime_complete is not None]
    trials = [t for t in done if "duplicate_of" not in t.user_attrs]  # what --budget counts; reuses are free
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    return {"wall_s": wall, "span_s": span, "startup_s": wall - span, "trials": len(trials),
            "reused": len(done) - len(trials),
            "train_time_s_mean": statistics.fmean(t.user_attrs.get("train_time_s", float("nan")) for t in trials)}


def _project(runs: list[dict], budget: int) -> dict:
    span = statistics.fmean(r["span_s"] / r["trials"] for r in runs)
    startup = statistics.fmean(r["startup_s"] for r in runs)
    return {"runs": runs, "s_per_trial": span, "startup_s": startup, "trials_per_hour": 3600 / span,
            "projected_min": (startup + budget * span) / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--before", default="adc008e", help="the earlier commit to compare with")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    revision = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        worktree = tmp / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), revision], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            sides = {"before": [], "after": []}
            for repeat in range(args.repeats):
                for side, tree in (("before", worktree), ("after", ROOT)):
                    sides[side].append(_run(tree, args.trials, tmp))
                    r = sides[side][-1]
                    print(f"  {side} ({repeat + 1}/{args.repeats}): {r['wall_s']:.0f} s for {r['trials']} trials",
                          flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, capture_output=True)
    result = {side: _project(runs, args.budget) for side, runs in sides.items()}
    result.update({"before_commit": revision, "trials": args.trials, "budget": args.budget,
                   "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                   "speedup": result["before"]["projected_min"] / result["after"]["projected_min"],
                   "target_min": TARGET_MIN, "stretch_min": STRETCH_MIN})
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "search_speed.json").write_text(json.dumps(result, indent=2))
    for side in ("before", "after"):
        r = result[side]
        print(f"{side:6s} ({revision if side == 'before' else 'this checkout'}): {r['s_per_trial']:.2f} s per trial "
              f"({r['trials_per_hour']:.0f} trials/h), start-up {r['startup_s']:.1f} s, projected --budget "
              f"{args.budget}: {r['projected_min']:.1f} min")
    print(f"speed-up {result['speedup']:.2f}x; target {TARGET_MIN:.0f} min "
          f"({'met' if result['after']['projected_min'] <= TARGET_MIN else 'not met'}), stretch {STRETCH_MIN:.0f} min "
          f"({'met' if result['after']['projected_min'] <= STRETCH_MIN else 'not met'})")


if __name__ == "__main__":
    main()
