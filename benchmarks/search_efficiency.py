"""Search efficiency: TPE against random sampling and NSGA-II at the same budget, over seeds.

Run:  python benchmarks/search_efficiency.py [--budget 20] [--seeds 0 1 2 3 4] [--no-cache]

Every sampler runs the default space on the embedded digits with the default proxy (the same
proxy seed for every run, so an architecture scores the same whichever sampler proposes it;
measured runs are shared through results/benchmarks/cache/proxy_runs.jsonl). An architecture a
run already evaluated is told its earlier result and costs no budget, as in ``snnas search``.

Compared by hypervolume in (accuracy up, log10 energy down), normalised to [0, 1] by bounds
fixed before any run: accuracy from chance (1/classes) to 1, energy (45 nm fp32) from the
smallest first-layer MAC energy to the largest dense all-MAC energy of 200 architectures drawn
with a seed no run uses.
Samplers are told the search's own objective (the proxy's likelihood by default); the front
each run found in (objective, energy) is re-evaluated with another proxy seed (new
initialisation and batch order), and the hypervolume of the re-evaluated points in (accuracy,
energy) is the score, so a run is not rewarded
for lucky proxy noise. Also plots the proxy-front hypervolume against trials (median and
interquartile band over seeds). Writes results/benchmarks/search_efficiency.{csv,json,png} (and
_runs.csv); another budget than 20 writes search_efficiency_b<budget>.* beside them (--stem
names them otherwise).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

import optuna
import pandas as pd
import torch

from _runs import ENERGY_CONVENTION, ENERGY_PROFILE, RunCache, setup  # benchmarks/_runs.py, beside this script
from snnas.energy.counting import count_ops
from snnas.energy.profile import load_profile
from snnas.nas.data import ProxySplit
from snnas.nas.models import build_model
from snnas.nas.search.pareto import hypervolume, pareto_mask
from snnas.nas.search.space import DataShape, SearchSpace
from snnas.nas.search.study import SAMPLERS, SearchSettings, make_sampler

OUT = Path("results/benchmarks")
CACHE = OUT / "cache" / "proxy_runs.jsonl"
BOUNDS_SEED, BOUNDS_ARCHS = 12345, 200
REEVAL_SEED = 2  # first proxy seed of the re-evaluation (runs seeds 2, 3; the search uses 0, 1)


def _bounds(space: SearchSpace, shape: DataShape, split: ProxySplit) -> dict:
    """Energy bounds from counts of architectures no run will be scored on.

    Upper: the largest dense energy (every operation a MAC). Lower: the smallest energy of the
    first synaptic layer alone (the stem's convolution of real-valued pixels is a MAC whatever
    the firing rates): no candidate of the space costs less than that.
    """
    mac_pj = load_profile(ENERGY_PROFILE).value("mac_pj")
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=BOUNDS_SEED))
    upper, lower = [], []
    for _ in range(BOUNDS_ARCHS):
        trial = sampler.ask()
        arch = space.suggest(trial, shape)
        sampler.tell(trial, 0.0)
        torch.manual_seed(0)
        counts = count_ops(build_model(arch), split.val_x[:4])
        upper.append(counts.total("dense") * mac_pj * 1e-9)  # pJ -> mJ
        lower.append(counts.synaptic_layers()[0].total("macs") * mac_pj * 1e-9)
    return {"accuracy": [1.0 / split.num_classes, 1.0], "energy_mj": [min(lower), max(upper)],
            "how": f"{ENERGY_PROFILE}, {BOUNDS_ARCHS} random architectures (seed {BOUNDS_SEED}), fixed before the "
                   "runs: lower = smallest first-layer MAC energy, upper = largest dense all-MAC energy"}


def normalised_hv(accuracy: list[float], energy_mj: list[float], bounds: dict) -> float:
    (a_lo, a_hi), (e_lo, e_hi) = bounds["accuracy"], bounds["energy_mj"]
    log_e = [math.log10(e) for e in energy_mj]
    area = hypervolume(accuracy, log_e, ref_accuracy=a_lo, ref_energy=math.log10(e_hi))
    return area / ((a_hi - a_lo) * (math.log10(e_hi) - math.log10(e_lo)))


def propose(study: optuna.Study, space, shape, budget: int, evaluate) -> dict:
    """Ask ``study`` for architectures until ``budget`` distinct ones are evaluated (or 200
    proposals in a row repeat one): ``evaluate(arch) -> (result, objectives to tell)``. A
    re-proposed architecture is told its earlier objectives and costs no budget, as in ``snnas
    search``. Returns {architecture key: result} in the order they were evaluated."""
    seen, told = {}, {}
    duplicates = 0
    while len(seen) < budget and duplicates < 200:
        trial = study.ask()
        arch = space.suggest(trial, shape)
        key = json.dumps(arch.to_dict(), sort_keys=True)
        if key in seen:
            duplicates += 1
        else:
            duplicates = 0
            seen[key], told[key] = evaluate(arch)
        study.tell(trial, told[key])
    return seen


def run_one(sampler_name: str, seed: int, budget: int, space, shape, split, cache, cpu, proxy) -> list[dict]:
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=make_sampler(sampler_name, seed=seed, budget=budget))

    def evaluate(arch):
        result = cache.run(arch, proxy, split, cpu, energy=True, scores=proxy.score != "accuracy")
        return result, [result[proxy.score], result["energy_mj"]]  # the search's own objective

    results = propose(study, space, shape, budget, evaluate)
    return [{"sampler": sampler_name, "seed": seed, "n": n, "arch": key, "objective": r[proxy.score],
             "accuracy": r["accuracy"], "energy_mj": r["energy_mj"], "train_time_s": r["train_time_s"],
             "cached": r["cached"]} for n, (key, r) in enumerate(results.items(), start=1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--stem", default=None, help="output file names (default: search_efficiency, or "
                                                     "search_efficiency_b<budget> for another budget than 20)")
    args = parser.parse_args()
    split, space, shape = setup(args.threads)
    proxy, cpu = SearchSettings().proxy_settings, torch.device("cpu")
    cache = RunCache(None if args.no_cache else CACHE)
    start = time.perf_counter()
    bounds = _bounds(space, shape, split)  # before any run
    print(f"bounds fixed: energy {bounds['energy_mj'][0]:.3g}-{bounds['energy_mj'][1]:.3g} mJ", flush=True)
    rows, finals = [], []
    reeval = replace(proxy, seed=REEVAL_SEED)
    for seed in args.seeds:
        for name in args.samplers:
            t0 = time.perf_counter()
            run = run_one(name, seed, args.budget, space, shape, split, cache, cpu, proxy)
            frame = pd.DataFrame(run)
            for i in range(len(frame)):  # proxy-front hypervolume after each evaluated trial
                frame.loc[i, "hv_proxy"] = normalised_hv(frame["objective"][:i + 1].tolist(),
                                                         frame["energy_mj"][:i + 1].tolist(), bounds)
            front = frame[pareto_mask(frame["objective"].tolist(), frame["energy_mj"].tolist())]
            again = [cache.run(_arch_of(a), reeval, split, cpu, energy=True) for a in front["arch"]]
            hv = normalised_hv([r["accuracy"] for r in again], [r["energy_mj"] for r in again], bounds)
            finals.append({"sampler": name, "seed": seed, "hypervolume": hv,
                           "hypervolume_proxy": float(frame["hv_proxy"].iloc[-1]), "front_size": len(front),
                           "evaluated": len(frame), "best_accuracy": float(frame["accuracy"].max()),
                           "wall_s": round(time.perf_counter() - t0, 1)})
            rows.extend(frame.to_dict("records"))
            print(f"  seed {seed} {name}: re-evaluated HV {hv:.4f} (proxy front {finals[-1]['hypervolume_proxy']:.4f},"
                  f" {len(front)} on front) ({time.perf_counter() - start:.0f} s)", flush=True)
    wall = time.perf_counter() - start
    table = pd.DataFrame(finals)
    hv = {n: table[table["sampler"] == n]["hypervolume"].tolist() for n in args.samplers}

    def spread(values: list[float]) -> dict:
        q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
        return {"median": statistics.median(values), "q1": q[0], "q3": q[2], "min": min(values), "max": max(values)}

    result = {"hypervolume": hv, "summary": {n: spread(v) for n, v in hv.items()},
              "hypervolume_proxy_front": {n: table[table["sampler"] == n]["hypervolume_proxy"].tolist()
                                          for n in args.samplers},
              "wins_tpe_over_random": sum(t > r for t, r in zip(hv.get("tpe", []), hv.get("random", []))),
              "budget": args.budget, "seeds": args.seeds,
              "reference_point": {"accuracy": bounds["accuracy"][0], "energy_mj": bounds["energy_mj"][1]},
              "bounds": bounds, "hypervolume_space": "accuracy x log10(energy mJ), normalised by the bounds",
              "energy_objective": f"{ENERGY_PROFILE}, {ENERGY_CONVENTION} convention",
              "proxy_settings": asdict(proxy), "reevaluation_proxy_seed": REEVAL_SEED,
              "wall_time_s": round(wall, 1), "cpu_threads": torch.get_num_threads(),
              "note": "wall_time_s excludes runs reused from the cache (runs: per-sampler table in the CSV)"}
    OUT.mkdir(parents=True, exist_ok=True)
    stem = args.stem or ("search_efficiency" if args.budget == 20 else f"search_efficiency_b{args.budget}")
    pd.DataFrame(rows).to_csv(OUT / f"{stem}.csv", index=False)
    table.to_csv(OUT / f"{stem}_runs.csv", index=False)
    (OUT / f"{stem}.json").write_text(json.dumps(result, indent=2))
    _plot(pd.DataFrame(rows), table, args.budget, OUT / f"{stem}.png")
    s = result["summary"]
    print("search efficiency: median re-evaluated hypervolume " +
          ", ".join(f"{n} {s[n]['median']:.4f} [{s[n]['q1']:.4f}, {s[n]['q3']:.4f}]" for n in args.samplers) +
          f" over {len(args.seeds)} seeds at budget {args.budget}; TPE beat random in "
          f"{result['wins_tpe_over_random']}/{len(args.seeds)} seeds; {wall / 60:.1f} min")


def _arch_of(key: str):
    from snnas.nas.models.arch import ArchConfig

    return ArchConfig.from_dict(json.loads(key))


def _plot(rows: pd.DataFrame, table: pd.DataFrame, budget: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context({"font.family": "serif", "font.size": 8}):
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(6.8, 2.6), dpi=200, gridspec_kw={"width_ratios": [2, 1]})
        for name, g in rows.groupby("sampler"):
            curve = g.pivot_table(index="n", columns="seed", values="hv_proxy").ffill()
            med, lo, hi = curve.median(axis=1), curve.quantile(0.25, axis=1), curve.quantile(0.75, axis=1)
            ax.plot(med.index, med.values, label=name)
            ax.fill_between(med.index, lo.values, hi.values, alpha=0.2)
        ax.set_xlabel("evaluated trials")
        ax.set_ylabel("hypervolume of the proxy front")
        ax.set_xlim(1, budget)
        ax.legend(frameon=False)
        names = sorted(table["sampler"].unique())
        bx.boxplot([table[table["sampler"] == n]["hypervolume"] for n in names], tick_labels=names)
        for i, n in enumerate(names, start=1):
            vals = table[table["sampler"] == n]["hypervolume"]
            bx.scatter([i] * len(vals), vals, s=8, zorder=3)
        bx.set_ylabel("re-evaluated hypervolume")
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)


if __name__ == "__main__":
    main()
