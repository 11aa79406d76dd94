"""Samplers on a surrogate of the measured runs: many seeds in minutes, beside search_efficiency.py.

Run:  python benchmarks/sampler_surrogate.py [--budgets 20 50] [--seeds 20] [--variants]

search_efficiency.py compares TPE, random sampling and NSGA-II on real proxy trainings, which
costs about 10 s a candidate on 2 cores, so it affords five seeds. This script fits random
forests to every architecture of the measured space that the run cache holds with the default
proxy (both runs, seeds 0 and 1: held-out likelihood, accuracy, log10 energy) and runs the same
samplers on them for many seeds: a sampler is told the forest's likelihood plus Gaussian noise
of the proxy's measured run-to-run spread (proxy_noise.json: standard deviation across seeds),
and its front is scored by the hypervolume of the forest's accuracy and energy (the noise-free
analogue of search_efficiency.py's re-evaluation), normalised by the same bounds. Five-fold
cross-validated R^2 of each forest is reported: the comparison is only as good as the fit, and a
forest is smoother than the real landscape. ``--variants`` adds other settings of Optuna's TPE
(VARIANTS) beside snnas's. Writes results/benchmarks/sampler_surrogate.json.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import warnings

import numpy as np
import optuna
import torch
from sklearn.ensemble import RandomForestRegressor
from sklearn.feature_extraction import DictVectorizer
from sklearn.model_selection import cross_val_score

from _runs import RunCache, setup  # benchmarks/_runs.py, beside this script
from snnas.nas.models.arch import ArchConfig
from snnas.nas.search.pareto import pareto_mask
from snnas.nas.search.study import SAMPLERS, SearchSettings, make_sampler
from search_efficiency import CACHE, OUT, normalised_hv, propose

TARGETS = ("likelihood", "accuracy", "log10_energy_mj")


def _tpe(**changes):
    """snnas's TPE (nas.study.make_sampler) with some of its settings changed."""
    def make(seed: int, budget: int) -> optuna.samplers.BaseSampler:
        settings = {"seed": seed, "multivariate": True, "group": True, "constant_liar": True,
                    "n_startup_trials": max(4, min(10, budget // 4)), **changes}
        if "gamma_fraction" in settings:  # Optuna's multi-objective default is ceil(0.1 n)
            fraction = settings.pop("gamma_fraction")
            settings["gamma"] = lambda n: math.ceil(fraction * n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.samplers.TPESampler(**settings)
    return make


VARIANTS = {  # name: (sampler factory, energy told on a log scale)
    "tpe, Optuna's defaults (independent, 10 start-up trials)": (
        lambda seed, budget: optuna.samplers.TPESampler(seed=seed), False),
    "tpe, independent": (_tpe(multivariate=False, group=False), False),
    "tpe, 10 start-up trials": (_tpe(n_startup_trials=10), False),
    "tpe, a quarter of the trials as good (gamma 0.25)": (_tpe(gamma_fraction=0.25), False),
    "tpe, told log10 energy": (_tpe(), True),
}


def features(arch: ArchConfig) -> dict:
    """The architecture as named numbers: scalars as they are, names one-hot, stage lists by index."""
    out = {"stages": len(arch.depths)}
    for name, value in arch.to_dict().items():
        if name in ("img_size", "in_channels", "num_classes", "notes"):
            continue
        for i, v in enumerate(value) if isinstance(value, list) else [(None, value)]:
            key = name if i is None else f"{name}[{i}]"
            out[key if not isinstance(v, str) else f"{key}={v}"] = float(v) if not isinstance(v, str) else 1.0
    return out


def measured(cache: RunCache, split, proxy) -> tuple[list[ArchConfig], np.ndarray]:
    """Every architecture whose default proxy runs are all in the cache (under the current keys):
    (likelihood, accuracy, log10 energy) as the search would be told them, never trained here."""
    archs, rows, seen = [], [], set()
    for row in list(cache.rows.values()):
        arch = ArchConfig.from_dict(json.loads(row["key"])["arch"])
        key = json.dumps(arch.to_dict(), sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        result = cache.run(arch, proxy, split, torch.device("cpu"), energy=True, scores=True, measure=False)
        if result is not None and "likelihood" in result:
            archs.append(arch)
            rows.append([result["likelihood"], result["accuracy"], math.log10(result["energy_mj"])])
    return archs, np.array(rows)


def run_one(name: str, seed: int, budget: int, space, shape, predict, noise: float, bounds: dict) -> float:
    make, told_log = VARIANTS.get(name, (lambda s, b: make_sampler(name, seed=s, budget=b), False))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=make(seed, budget))
    rng = np.random.default_rng(seed)

    def evaluate(arch):
        likelihood, accuracy, log_energy = predict(arch)
        told = likelihood + rng.normal(0.0, noise)
        return (told, accuracy, 10 ** log_energy), [told, log_energy if told_log else 10 ** log_energy]

    points = list(propose(study, space, shape, budget, evaluate).values())
    front = [p for p, keep in zip(points, pareto_mask([p[0] for p in points], [p[2] for p in points])) if keep]
    return normalised_hv([p[1] for p in front], [p[2] for p in front], bounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--variants", action="store_true", help="also other settings of TPE (VARIANTS)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    start = time.perf_counter()
    split, space, shape = setup(1)
    proxy = SearchSettings().proxy_settings
    archs, y = measured(RunCache(CACHE), split, proxy)
    vectors = DictVectorizer(sparse=False)
    x = vectors.fit_transform([features(a) for a in archs])
    forests, fit = [], {}
    for j, target in enumerate(TARGETS):
        forest = RandomForestRegressor(n_estimators=300, min_samples_leaf=2, random_state=0)
        fit[target] = float(cross_val_score(forest, x, y[:, j], cv=5, scoring="r2").mean())
        forests.append(forest.fit(x, y[:, j]))
    print(f"{len(archs)} measured architectures; cross-validated R^2 " +
          ", ".join(f"{t} {r:.3f}" for t, r in fit.items()), flush=True)

    memo: dict[str, tuple[float, float, float]] = {}

    def predict(arch: ArchConfig) -> tuple[float, float, float]:
        key = json.dumps(arch.to_dict(), sort_keys=True)
        if key not in memo:
            row = vectors.transform([features(arch)])
            memo[key] = tuple(float(f.predict(row)[0]) for f in forests)
        return memo[key]

    noise = json.loads((OUT / "proxy_noise.json").read_text())["noise"]["likelihood"]["seed (same threads)"]["std_mean"]
    bounds = json.loads((OUT / "search_efficiency.json").read_text())["bounds"]
    result = {"archs": len(archs), "cv_r2": fit, "noise_std": noise, "seeds": args.seeds, "bounds": bounds,
              "budgets": {}}
    names = list(SAMPLERS) + (list(VARIANTS) if args.variants else [])
    for budget in args.budgets:
        hv = {n: [run_one(n, s, budget, space, shape, predict, noise, bounds) for s in range(args.seeds)]
              for n in names}
        summary = {}
        for n, values in hv.items():
            q = statistics.quantiles(values, n=4)
            summary[n] = {"median": statistics.median(values), "q1": q[0], "q3": q[2],
                          "wins_over_random": sum(v > r for v, r in zip(values, hv["random"]))}
        result["budgets"][str(budget)] = {"hypervolume": hv, "summary": summary}
        for n, s in summary.items():
            print(f"budget {budget}, {n}: median {s['median']:.4f} [IQR {s['q1']:.4f}, {s['q3']:.4f}], "
                  f"beat random in {s['wins_over_random']}/{args.seeds} seeds", flush=True)
    result["wall_time_s"] = round(time.perf_counter() - start, 1)
    (OUT / "sampler_surrogate.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
