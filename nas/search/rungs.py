"""Multi-fidelity evaluation: successive halving over rungs of longer proxy trainings.

A search with rungs (``--rungs 100,300,900``: training steps of one run per rung, and a reduction
factor ``--eta``) evaluates every candidate on the first, cheapest rung. A candidate whose result
on rung k ranks in the best 1/eta of every result on that rung so far (Pareto rank in (score,
energy), then score) is promoted at once to rung k + 1, a fresh and longer training; the others
stop there. This is asynchronous successive halving (ASHA, Li et al., MLSys 2020) with the
promotion decided inside the trial, as Optuna's SuccessiveHalvingPruner does: the first result
on a rung is the best of one and goes on, so early candidates are not starved.

Each trial records every rung it finished in the user attribute ``rungs`` (rung number -> the
result's attributes), its highest rung in ``rung`` and what the rungs cost in ``cost_images``
(training images seen) and ``train_time_s``. A trial killed during a promotion is retried like
any trial, and the retry takes over the rungs its predecessor finished instead of training
them again.

Values on different rungs are not comparable (a longer training reaches a higher likelihood),
so a candidate's objective is its highest rung's score put on the first rung's scale: the
least-squares line from rung-k scores to rung-0 scores over every candidate measured on both
(an offset while fewer than three are; a line only if its slope is positive, so the order on
rung k is kept). The sampler and the front see that one comparable value per candidate.
"""

from __future__ import annotations

import math
from dataclasses import replace

import optuna

from snnas.nas.search.proxy import ProxySettings

COMPLETE = optuna.trial.TrialState.COMPLETE


def parse_rungs(text: str) -> tuple[int, ...]:
    """'100,300,900' -> (100, 300, 900); raises ValueError naming the offending part."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    rungs = []
    for part in parts:
        if not part.isdigit() or not 1 <= int(part) <= 1_000_000:
            raise ValueError(f"--rungs {text!r}: {part!r} is not a step count from 1 to 1000000")
        rungs.append(int(part))
    if len(rungs) < 2 or any(b <= a for a, b in zip(rungs, rungs[1:])):
        raise ValueError(f"--rungs {text!r}: give two or more increasing step counts, e.g. 100,300,900")
    return tuple(rungs)


def rung_settings(base: ProxySettings, steps: int) -> ProxySettings:
    """The proxy of one rung: one run of ``steps`` steps, otherwise the search's proxy settings."""
    return replace(base, steps=steps, runs=1)


def rung_cost(settings: ProxySettings) -> int:
    """Training images a proxy of these settings sees."""
    return settings.steps * settings.batch_size * max(1, settings.runs)


def inherited_rungs(study: optuna.Study, trial_number: int) -> dict[int, dict]:
    """The rungs finished by the trial this one retries (and by the trials that one retried)."""
    seen, number = set(), study.trials[trial_number].user_attrs.get("retry_of")
    while isinstance(number, int) and number not in seen and 0 <= number < len(study.trials):
        seen.add(number)
        stored = study.trials[number].user_attrs.get("rungs") or {}
        if stored:
            return {int(k): v for k, v in stored.items()}
        number = study.trials[number].user_attrs.get("retry_of")
    return {}


def rung_results(study: optuna.Study, rung: int, *, exclude: int | None = None) -> list[tuple[int, float, float]]:
    """(trial, score, energy) of every finished result on ``rung``: completed trials, plus running
    ones that finished that rung (their promotion is under way), one per candidate."""
    out, seen = [], set()
    states = (COMPLETE, optuna.trial.TrialState.RUNNING)
    for t in study.get_trials(deepcopy=False, states=states):
        entry = (t.user_attrs.get("rungs") or {}).get(str(rung))
        if t.number == exclude or entry is None or "duplicate_of" in t.user_attrs:
            continue
        origin = t.user_attrs.get("retry_of", t.number)
        if origin in seen:
            continue
        seen.add(origin)
        out.append((t.number, float(entry["score"]), float(entry["energy"])))
    return out


def pareto_ranks(points: list[tuple[float, float]]) -> list[int]:
    """Non-dominated sorting of (score up, energy down): 0 for the front, 1 for the next, ..."""
    ranks, left, level = [0] * len(points), set(range(len(points))), 0
    while left:
        front = {i for i in left if not any(_dominates(points[j], points[i]) for j in left if j != i)}
        for i in front:
            ranks[i] = level
        left -= front
        level += 1
    return ranks


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def promotable(others: list[tuple[int, float, float]], score: float, energy: float, eta: int) -> bool:
    """Whether (score, energy) is among the best max(1, n // eta) of the n results on its rung
    (``others`` plus itself), ordered by Pareto rank, then score."""
    points = [(s, e) for _, s, e in others] + [(score, energy)]
    ranks = pareto_ranks(points)
    order = sorted(range(len(points)), key=lambda i: (ranks[i], -points[i][0], points[i][1], i != len(points) - 1))
    keep = max(1, len(points) // eta)
    return (len(points) - 1) in order[:keep]


def first_rung_scale(study: optuna.Study, rung: int, score: float, own_first: float | None,
                     *, exclude: int | None = None) -> float:
    """``score`` measured on ``rung`` expressed on rung 0's scale (see the module docstring)."""
    if rung == 0:
        return score
    pairs = []
    for t in study.get_trials(deepcopy=False, states=(COMPLETE,)):
        rungs = t.user_attrs.get("rungs") or {}
        if t.number != exclude and "0" in rungs and str(rung) in rungs and "duplicate_of" not in t.user_attrs:
            pairs.append((float(rungs[str(rung)]["score"]), float(rungs["0"]["score"])))
    if own_first is not None:
        pairs.append((score, own_first))
    pairs = [(x, y) for x, y in pairs if math.isfinite(x) and math.isfinite(y)]
    if not pairs:
        return score
    n = len(pairs)
    mx, my = sum(x for x, _ in pairs) / n, sum(y for _, y in pairs) / n
    vx = sum((x - mx) ** 2 for x, _ in pairs)
    slope = sum((x - mx) * (y - my) for x, y in pairs) / vx if n >= 3 and vx > 0 else 0.0
    if slope <= 0:  # too few pairs or no positive relation: shift by the mean difference
        return score + (my - mx)
    return my + slope * (score - mx)
