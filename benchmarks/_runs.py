"""A cache of measured proxy runs for the benchmarks, keyed by architecture and settings.

A long training of one candidate takes minutes on a laptop CPU; the benchmarks reuse a run
only when the architecture, the proxy settings, the data split and the device kind are all the
same, so a cached number is one this code measured, never an estimate. Pass ``--no-cache`` to
the scripts to measure everything again. One JSON object per line, appended as runs finish
(an interrupted benchmark keeps what it measured; several benchmark processes may share the file).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from energy.estimate import estimate
from energy.profile import load_profile
from nas.arch import ArchConfig
from nas.data import ProxySplit
from nas.proxy import ProxyResult, ProxySettings, train_proxy

ENERGY_PROFILE, ENERGY_CONVENTION = "45nm-fp32", "snnas"  # the search's default energy objective


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
        return json.dumps({"arch": arch.to_dict(), "settings": asdict(settings), "data": split.fingerprint,
                           "device": device.type}, sort_keys=True)

    def run(self, arch: ArchConfig, settings: ProxySettings, split: ProxySplit, device: torch.device, *,
            energy: bool = False) -> dict:
        """``{"accuracy", "train_time_s", "energy_mj", "cached"}`` of a training run, measured now or
        earlier; ``energy=True`` needs the energy (default profile and convention) recorded too."""
        key = self.key(arch, settings, split, device)
        if key not in self.rows:
            self._reload()
        if key in self.rows and (not energy or self.rows[key]["result"].get("energy_mj") is not None):
            return {**self.rows[key]["result"], "cached": True}
        result: ProxyResult = train_proxy(arch, split, settings, device=device, zero_cost=False)
        mj = estimate(result.counts, load_profile(ENERGY_PROFILE), convention=ENERGY_CONVENTION).total_mj
        out = {"accuracy": result.accuracy, "train_time_s": result.train_time_s, "energy_mj": mj}
        self.rows[key] = {"key": key, "result": out}
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(self.rows[key]) + "\n")
        return {**out, "cached": False}


def setup(threads: int | None):
    """The benchmarks' common start: torch threads, quiet Optuna, and the search's default split
    (embedded digits) and space. Returns (split, space, shape)."""
    import optuna

    from nas.data import load_dataset
    from nas.space import DataShape, SearchSpace
    from nas.study import SearchSettings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if threads:
        torch.set_num_threads(threads)
    d = SearchSettings()
    split = ProxySplit.make(load_dataset("digits"), train_size=d.train_size, val_size=d.val_size,
                            resolution=d.resolution, seed=d.seed)
    space = SearchSpace.from_yaml("space.yaml")
    return split, space, DataShape(split.resolution, split.channels, split.num_classes)
