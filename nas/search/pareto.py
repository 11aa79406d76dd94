"""Pareto fronts and 2-D hypervolume for (accuracy up, energy down)."""

from __future__ import annotations

from typing import Sequence


def pareto_mask(accuracy: Sequence[float], energy: Sequence[float]) -> list[bool]:
    """True for points no other point dominates (higher-or-equal accuracy and lower-or-equal
    energy, strictly better in one). Duplicated points are all on the front."""
    points = list(zip(accuracy, energy))
    mask = []
    for i, (a, e) in enumerate(points):
        dominated = any((a2 >= a and e2 <= e) and (a2 > a or e2 < e) for j, (a2, e2) in enumerate(points) if j != i)
        mask.append(not dominated)
    return mask


def hypervolume(accuracy: Sequence[float], energy: Sequence[float], *, ref_accuracy: float,
                ref_energy: float) -> float:
    """Area dominated by the points and bounded by the reference point (ref_accuracy, ref_energy).

    Points with accuracy <= ref_accuracy or energy >= ref_energy add nothing. A sweep over the
    front sorted by energy: each point adds the rectangle between its energy, the next front
    point's energy (or the reference), and its accuracy above the reference.
    """
    pts = [(e, a) for a, e in zip(accuracy, energy) if a > ref_accuracy and e < ref_energy]
    if not pts:
        return 0.0
    front = [p for p, keep in zip(pts, pareto_mask([a for _, a in pts], [e for e, _ in pts])) if keep]
    front = sorted(set(front))  # energy ascending; on a front accuracy then ascends too
    volume = 0.0
    for i, (e, a) in enumerate(front):
        next_e = front[i + 1][0] if i + 1 < len(front) else ref_energy
        volume += (next_e - e) * (a - ref_accuracy)
    return volume
