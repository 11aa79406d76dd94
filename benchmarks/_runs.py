"""A cache of measured proxy runs for the benchmarks, keyed by architecture and settings.

A long training of one candidate takes minutes on a laptop CPU; the benchmarks reuse a run
only when the architecture, the proxy settings, the data split and the device kind are all the
same, so a cached number is one this code measured, never an estimate. When the training code
changed, the key carries the change (``TRAINER``) for the architectures it touches: the fused
neurons train bit for bit as before and keep their runs, while LS-SSA's shifted training form
changes gradients at the rounding level, so LS-SSA candidates are measured again. Pass ``--no-cache`` to
the scripts to measure everything again. One JSON object per line, appended as runs finish
(an interrupted benchmark keeps what it measured; several benchmark processes may share the file).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import torch

from snnas.energy.estimate import estimate
from snnas.energy.profile import load_profile
from snnas.nas.models.arch import ADDED_LATER as ARCH_ADDED_LATER, ArchConfig
from snnas.nas.data import ProxySplit
from snnas.nas.search.proxy import ADDED_LATER, ProxyResult, ProxySettings, train_proxy

# The space the benchmarks draw from: the default space as it was when the README's figures were
# measured, kept so they stay reproducible after the default space gained SDSA, Q-K attention and
# neuron parameters.
BENCHMARK_SPACE = Path(__file__).with_name("space_measured.yaml")
ENERGY_PROFILE, ENERGY_CONVENTION = "45nm-fp32", "snnas"  # the search's default energy objective
# Changes to the training code that move results at the rounding level, and which architectures they touch.
TRAINER = {"ls_ssa shifted training form": lambda arch: "ls_ssa" in arch.attention}


class RunCache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.rows: dict[str, dict] = {}
        self._read_size = -1
        self._reload()

    def _reload(self) -> None:
        """Read the file again if it grew (another benchmark process may be appending to it)."""
        if self.path is None or not self.path.exists() or self.path.stat().st_size == self._read_size:
            return
        text = self.path.read_text()
        self._read_size = len(text.encode())
        for line in text.splitlines():
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line another process is still writing
                    continue
                self.rows[row["key"]] = row

    @staticmethod
    def key(arch: ArchConfig, settings: ProxySettings, split: ProxySplit, device: torch.device) -> str:
        arch_key = {k: v for k, v in arch.to_dict().items() if ARCH_ADDED_LATER.get(k, ...) != v}
        key = {"arch": arch_key, "settings": settings.identity(), "data": split.fingerprint, "device": device.type}
        changed = [change for change, touches in TRAINER.items() if touches(arch)]
        if changed:
            key["trainer"] = changed
        return json.dumps(key, sort_keys=True)

    def run(self, arch: ArchConfig, settings: ProxySettings, split: ProxySplit, device: torch.device, *,
            energy: bool = False, scores: bool = False, measure: bool = True) -> dict | None:
        """``{"accuracy", "train_time_s", "energy_mj", "cached"}`` of a training run, measured now or
        earlier; ``energy=True`` needs the energy (default profile and convention) recorded too,
        ``scores=True`` the held-out loss and soft accuracy (``val_loss``, ``soft_accuracy``).
        ``measure=False``: None instead of training what the cache does not hold."""
        if settings.runs > 1:  # the proxy's runs are single runs with seeds seed, seed + 1, ... (nas.proxy)
            return self._several(arch, settings, split, device, energy=energy, scores=scores, measure=measure)
        settings = replace(settings, score=ADDED_LATER["score"])  # the objective does not change the training
        key = self.key(arch, settings, split, device)
        if key not in self.rows:
            self._reload()
        row = self.rows.get(key, {}).get("result")
        if row is not None and (not energy or row.get("energy_mj") is not None) and \
                (not scores or row.get("val_loss") is not None):
            return _with_likelihood({**row, "cached": True})
        if not measure:
            return None
        result: ProxyResult = train_proxy(arch, split, settings, device=device, zero_cost=False)
        mj = estimate(result.counts, load_profile(ENERGY_PROFILE), convention=ENERGY_CONVENTION).total_mj
        out = {"accuracy": result.accuracy, "train_time_s": result.train_time_s, "energy_mj": mj,
               "val_loss": result.val_loss, "soft_accuracy": result.soft_accuracy,
               "threads": torch.get_num_threads()}
        self.rows[key] = {"key": key, "result": out}
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(self.rows[key]) + "\n")
        return _with_likelihood({**out, "cached": False})

    def _several(self, arch, settings, split, device, **needs) -> dict:
        runs = [self.run(arch, replace(settings, runs=1, seed=settings.seed + r), split, device, **needs)
                for r in range(settings.runs)]
        if None in runs:  # measure=False and a run is missing
            return None
        mean = lambda name: sum(r[name] for r in runs) / len(runs)  # noqa: E731
        out = {"accuracy": mean("accuracy"), "train_time_s": sum(r["train_time_s"] for r in runs),
               "energy_mj": runs[0]["energy_mj"], "cached": all(r["cached"] for r in runs)}
        if all(r.get("val_loss") is not None for r in runs):
            out.update(val_loss=mean("val_loss"), soft_accuracy=mean("soft_accuracy"),
                       likelihood=math.exp(-mean("val_loss")))
        return out


def _with_likelihood(row: dict) -> dict:
    loss = row.get("val_loss")
    return {**row, "likelihood": math.exp(-loss)} if loss is not None and math.isfinite(loss) else row


def setup(threads: int | None):
    """The benchmarks' common start: torch threads, quiet Optuna, and the search's default split
    (embedded digits) and the space the README's figures were measured on (``BENCHMARK_SPACE``;
    the default space has grown since). Returns (split, space, shape)."""
    import optuna

    from snnas.nas.data import load_dataset
    from snnas.nas.search.space import DataShape, SearchSpace
    from snnas.nas.search.study import SearchSettings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if threads:
        torch.set_num_threads(threads)
    d = SearchSettings()
    split = ProxySplit.make(load_dataset("digits"), train_size=d.train_size, val_size=d.val_size,
                            resolution=d.resolution, seed=d.seed)
    space = SearchSpace.from_yaml(BENCHMARK_SPACE)
    return split, space, DataShape(split.resolution, split.channels, split.num_classes, split.time_steps)


def draw_archs(space, shape, draw: int, n: int) -> list[ArchConfig]:
    """``n`` architectures sampled uniformly from ``space`` (Optuna's RandomSampler seeded ``draw``)."""
    import optuna

    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=draw))
    archs = []
    for _ in range(n):
        trial = sampler.ask()
        archs.append(space.suggest(trial, shape))
        sampler.tell(trial, 0.0)
    return archs
