"""Multi-fidelity against the fixed proxy: which search returns the better front after full training?

Run:  python benchmarks/multi_fidelity.py [--seeds 0 1 2 3 4] [--seconds 600] [--rungs 100,300,900]
                                          [--eta 3] [--ref-seed 3]

For each seed, two real ``snnas search`` runs start side by side on the 2 cores (one process
and one torch thread each, the same sampler seed, the benchmark space and the embedded digits):
today's fixed proxy (every candidate: two 100-step runs) and the multi-fidelity search
(``--rungs``). Each is stopped with SIGTERM, as a batch scheduler stops it, after ``--seconds``
of wall-clock time. Every member of each returned front is then trained with the reference
settings (benchmarks/proxy_fidelity.py's 1000 steps x 64, seed ``--ref-seed``; runs cached in
results/benchmarks/cache/proxy_runs.jsonl), and the score of a search is the hypervolume of
its re-trained front in (accuracy, log10 energy), normalised by bounds fixed before any run
(benchmarks/search_efficiency.py). Also reported per seed: the recall of the reference-best
architectures (the Pareto set of both searches' re-trained front members) among those each
search evaluated, and among those it returned.

All seeds' searches run first; the re-training then runs in ``--jobs`` processes sharing the
run cache (the extra ones take the fronts last to first). Writes results/benchmarks/multi_fidelity.json (per seed the re-trained hypervolume of each
search under ``fixed`` and ``multi_fidelity``) and prints medians with interquartile ranges.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import optuna
import torch

from _runs import BENCHMARK_SPACE, RunCache, setup  # benchmarks/_runs.py, beside this script
from proxy_fidelity import CACHE, LONG
from search_efficiency import _bounds, normalised_hv
from snnas.nas.models.arch import ArchConfig
from snnas.nas.search.pareto import pareto_mask

OUT = Path("results/benchmarks")
WORK = OUT / "cache" / "multi_fidelity"
SEARCHES = ("fixed", "multi_fidelity")


def _command(name: str, seed: int, args) -> list[str]:
    cmd = [sys.executable, "-m", "snnas", "search", "--budget", "100000", "--study", f"{name}-s{seed}",
           "--out", str(WORK), "--seed", str(seed), "--space", str(BENCHMARK_SPACE), "--workers", "1",
           "--threads", "1", "--device", "cpu"]
    return cmd + (["--rungs", args.rungs, "--eta", str(args.eta)] if name == "multi_fidelity" else [])


def _search_pair(seed: int, args) -> None:
    """Both searches of one seed, side by side, each stopped after ``args.seconds``."""
    procs = {}
    for name in SEARCHES:
        if (WORK / f"{name}-s{seed}" / "study.journal").exists():
            raise SystemExit(f"{WORK / f'{name}-s{seed}'} exists: remove {WORK} to measure again")
        log = open(WORK / f"{name}-s{seed}.log", "w")
        procs[name] = subprocess.Popen(_command(name, seed, args), stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    time.sleep(args.seconds)
    for p in procs.values():
        p.send_signal(signal.SIGTERM)
    for p in procs.values():
        p.wait(timeout=600)


def _trials(name: str, seed: int) -> list[optuna.trial.FrozenTrial]:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(WORK / f"{name}-s{seed}" / "study.journal")))
    study = optuna.load_study(study_name=f"{name}-s{seed}", storage=storage)
    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]


def _key(trial) -> str:
    return json.dumps(ArchConfig.from_dict(trial.user_attrs["arch"]).network_key(), sort_keys=True, default=str)


def _front(trials: list) -> list:
    return [t for t, keep in zip(trials, pareto_mask([t.values[0] for t in trials],
                                                     [t.values[1] for t in trials])) if keep]


def _fill(args, split, cache) -> None:
    """Re-train every front member of every seed (a helper process: last seed and member first)."""
    reference, cpu = replace(LONG, seed=args.ref_seed, steps=args.ref_steps), torch.device("cpu")
    members = [t for seed in args.seeds for name in SEARCHES for t in _front(_trials(name, seed))]
    for t in reversed(members):
        cache.run(ArchConfig.from_dict(t.user_attrs["arch"]), reference, split, cpu, energy=True)


def _judge(seed: int, args, split, cache, bounds) -> dict:
    """Re-train each search's front with the reference settings; hypervolumes and recalls."""
    reference, cpu = replace(LONG, seed=args.ref_seed, steps=args.ref_steps), torch.device("cpu")
    out, retrained, evaluated, returned = {}, {}, {}, {}
    for name in SEARCHES:
        trials = _trials(name, seed)
        front = _front(trials)
        evaluated[name] = {_key(t) for t in trials}
        returned[name] = {_key(t) for t in front}
        points = []
        for t in front:
            run = cache.run(ArchConfig.from_dict(t.user_attrs["arch"]), reference, split, cpu, energy=True)
            retrained[_key(t)] = (run["accuracy"], run["energy_mj"])
            points.append(retrained[_key(t)])
        out[name] = {"hypervolume": normalised_hv([a for a, _ in points], [e for _, e in points], bounds),
                     "evaluated": len(trials), "front_size": len(front),
                     "cost_images": sum(t.user_attrs.get("cost_images") or 0 for t in trials),
                     "rungs_reached": [t.user_attrs.get("rung", 0) for t in trials]}
        print(f"  seed {seed} {name}: {len(trials)} evaluated, {len(front)} on the front, re-trained HV "
              f"{out[name]['hypervolume']:.4f}", flush=True)
    keys = list(retrained)
    best = {k for k, keep in zip(keys, pareto_mask([retrained[k][0] for k in keys],
                                                  [retrained[k][1] for k in keys])) if keep}
    for name in SEARCHES:
        out[name]["recall_evaluated"] = len(best & evaluated[name]) / len(best) if best else None
        out[name]["recall_returned"] = len(best & returned[name]) / len(best) if best else None
    out["reference_best"] = len(best)
    return out


def _spread(values: list[float]) -> dict:
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return {"median": statistics.median(values), "q1": q[0], "q3": q[2], "min": min(values), "max": max(values)}


def main() -> None:
    global WORK
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--seconds", type=float, default=600.0, help="wall-clock budget of each search")
    parser.add_argument("--rungs", default="100,300,900", help="the multi-fidelity search's --rungs")
    parser.add_argument("--eta", type=int, default=3, help="the multi-fidelity search's --eta")
    parser.add_argument("--ref-seed", type=int, default=3, help="seed of the reference re-trainings")
    parser.add_argument("--ref-steps", type=int, default=LONG.steps,
                        help="steps of the reference re-trainings (fewer only to try the script out)")
    parser.add_argument("--work", type=Path, default=WORK, help="folder of the searches' studies")
    parser.add_argument("--output", type=Path, default=OUT / "multi_fidelity.json")
    parser.add_argument("--judge-only", action="store_true", help="re-use the searches under the work folder")
    parser.add_argument("--jobs", type=int, default=2, help="processes re-training the fronts (sharing the cache)")
    parser.add_argument("--fill-only", action="store_true",
                        help="only re-train the fronts, last first, and write nothing (what the extra jobs run)")
    args = parser.parse_args()
    WORK = args.work
    split, space, shape = setup(1)
    WORK.mkdir(parents=True, exist_ok=True)
    cache, start, per_seed = RunCache(CACHE), time.perf_counter(), {}
    if args.fill_only:
        return _fill(args, split, cache)
    bounds = _bounds(space, shape, split)  # before any run
    if not args.judge_only:
        for seed in args.seeds:
            _search_pair(seed, args)
            print(f"  seed {seed}: both searches stopped after {args.seconds:.0f} s", flush=True)
    helpers = [subprocess.Popen([sys.executable, __file__, "--fill-only", "--judge-only", "--work", str(WORK),
                                 "--ref-seed", str(args.ref_seed), "--ref-steps", str(args.ref_steps),
                                 "--seeds", *map(str, args.seeds)], env={**os.environ, "OMP_NUM_THREADS": "1"})
               for _ in range(args.jobs - 1)]
    for seed in args.seeds:
        per_seed[str(seed)] = _judge(seed, args, split, cache, bounds)
    for h in helpers:
        h.terminate()
        h.wait()
    hv = {name: [per_seed[s][name]["hypervolume"] for s in per_seed] for name in SEARCHES}
    summary = {name: _spread(v) for name, v in hv.items()}
    result = {"per_seed": {s: {name: r[name]["hypervolume"] for name in SEARCHES} for s, r in per_seed.items()},
              "details": per_seed, "summary": summary,
              "iqr_separated": summary["multi_fidelity"]["q1"] > summary["fixed"]["q3"],
              "seconds_per_search": args.seconds, "rungs": args.rungs, "eta": args.eta,
              "reference_settings": asdict(replace(LONG, seed=args.ref_seed, steps=args.ref_steps)), "bounds": bounds,
              "how": "two snnas search processes side by side on 2 cores, 1 thread each, stopped by SIGTERM; "
                     "fronts re-trained with the reference settings; hypervolume in accuracy x log10(energy)",
              "wall_time_s": round(time.perf_counter() - start, 1)}
    args.output.write_text(json.dumps(result, indent=2))
    print("multi-fidelity: median re-trained hypervolume " + ", ".join(
        f"{n} {summary[n]['median']:.4f} [{summary[n]['q1']:.4f}, {summary[n]['q3']:.4f}]" for n in SEARCHES) +
        f" over {len(args.seeds)} seeds, {args.seconds:.0f} s per search")


if __name__ == "__main__":
    main()
