"""The Python API: what the ``snnas`` command does, from a training script or a notebook.

Every function takes keyword arguments after its first, and returns a typed dataclass whose
field names carry their units (``total_mj``, ``energy_mj``). The CLI is built on the same
functions' modules; nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import torch
from torch import nn

from snnas.energy.counting import count_ops
from snnas.energy.counts import OpCounts
from snnas.energy.estimate import EnergyEstimate, estimate
from snnas.energy.profile import load_profile
from snnas.nas.models import build_model
from snnas.nas.models.arch import ArchConfig
from snnas.nas.models.checkpoint import load_model_file
from snnas.nas.models.checkpoint import save_model as _save_model
from snnas.nas.models.zoo import ZOO


def count(model: nn.Module, *, inputs: torch.Tensor | Iterable[torch.Tensor], batch_dim: int | None = 0,
          per_sample: bool = True, effective: bool = False) -> OpCounts:
    """Count ``model``'s operations on ``inputs``, per sample and per layer: MACs, synaptic ACs
    (spike inputs), neuron updates and the rest, each by the class of its operands.

    ``inputs`` is one tensor (or a tuple of them) with the batch on axis ``batch_dim`` (1 for
    ``[T, B, C, H, W]`` event frames; None for one sample without a batch axis). ``per_sample``
    decides each sample's operand classes on its own. ``effective`` also counts NeuroBench's
    effective synaptic operations. The model runs in eval mode without gradients; its spiking
    state is reset before every pass and after the last. ``OpCounts.complete`` is False when some
    arithmetic could not be counted: every total is then a lower bound.
    """
    return count_ops(model, inputs, batch_dim=batch_dim, per_sample=per_sample, effective=effective)


def price(counts: OpCounts, *, profile: str | Path = "45nm-fp32", convention: str = "snnas",
          memory: bool = False, rates: str | Path | Mapping | None = None,
          model: nn.Module | None = None) -> EnergyEstimate:
    """Energy per sample of ``counts`` on a hardware profile (a built-in name from ``profiles()``
    or a YAML file) under a counting convention (``snnas``, ``spikformer``, ``spikingjelly``, ...).

    The result's ``total_mj`` is millijoules per sample, ``by_layer_mj`` and ``by_term_mj`` split
    it; ``complete`` is False (and ``missing`` says why) when a term the profile needs is unknown
    or an operation was not counted. ``memory`` prices Lemaire et al.'s memory-aware model, which
    needs the layers' geometry: pass the counted ``model`` too (without it the estimate is marked
    incomplete, memory missing).
    ``rates`` prices the counts at given firing rates instead of the measured ones: a rate table
    (YAML or CSV path), ``"published:<zoo name>"`` for a table shipped with snnas, or a mapping
    ``{layer: rate}`` (see Reproducing papers); a bad table raises ``RatesError``.
    """
    if rates is not None:
        from snnas.energy.rates import apply

        counts = apply(counts, rates)
    geometry = None
    if memory and model is not None:
        from snnas.energy.memory import read_geometry

        geometry = read_geometry(model)
    return estimate(counts, load_profile(profile), convention=convention, memory=memory, geometry=geometry)


def profiles() -> list[str]:
    """The names of the built-in hardware profiles (45 nm CMOS at several precisions, chips)."""
    from snnas.energy.profile import builtin_profile_names

    return builtin_profile_names()


def zoo_names() -> list[str]:
    """The published architectures ``zoo_model`` and ``zoo_arch`` know (``snnas zoo`` lists them)."""
    return list(ZOO)


def zoo_arch(name: str) -> ArchConfig:
    """The ``ArchConfig`` of a published architecture, as its paper's official code builds it."""
    try:
        return ZOO[name].arch
    except KeyError:
        raise KeyError(f"{name!r} is not in the zoo; see snnas.zoo_names()") from None


def zoo_model(name: str, *, seed: int = 0, time_steps: int | None = None) -> nn.Module:
    """A published architecture with random weights (seeded): its firing rates, and so its ACs,
    are not those of the trained network. ``time_steps`` overrides T."""
    arch = zoo_arch(name)
    torch.manual_seed(seed)
    return build_model(arch if time_steps is None else arch.replace(time_steps=time_steps))


@dataclass(frozen=True)
class SnnasModel:
    """An snnas model file's contents: the network (weights loaded), its architecture, and what
    the file says of its training (data, recipe, metrics)."""

    model: nn.Module
    arch: ArchConfig
    meta: Mapping = field(default_factory=dict)


def load_model(path: str | Path) -> SnnasModel:
    """Read an snnas model file (``save_model``, ``snnas train``): tensors and plain data only, no
    code runs. The architecture is checked against this machine's memory before it is built."""
    model, arch, obj = load_model_file(path)
    return SnnasModel(model, arch, obj.get("meta") or {})


def save_model(model: nn.Module, *, arch: ArchConfig, path: str | Path, meta: Mapping | None = None) -> Path:
    """Write ``model``'s weights with its architecture as data (read back by ``load_model``,
    ``snnas energy`` and ``snnas evaluate`` without unpickling code). Returns the path."""
    _save_model(model, arch, path, meta=dict(meta) if meta is not None else None)
    return Path(path)


@dataclass(frozen=True)
class FrontMember:
    """One architecture on the search's Pareto front (``snnas arch show STUDY#TRIAL`` shows it)."""

    trial: int
    objective: float  # the proxy's score (likelihood or accuracy in [0, 1], or the SAHD score)
    energy_mj: float  # per sample, on the first profile


@dataclass(frozen=True)
class SearchResult:
    """What ``search`` leaves: the study folder, how many trials count toward the budget, the
    front's hypervolume (as in ``summary.json``) and the front, lowest energy first."""

    study_dir: Path  # trials.csv, pareto.csv, pareto.png/.pdf/.svg, summary.json, study.journal
    evaluated: int  # trials that count toward the budget (complete or failed)
    hypervolume: float
    front: list[FrontMember]


def search(*, budget: int, data: str = "digits", out: str | Path = "results", study: str = "snnas",
           space: str | Path | None = None, sampler: str = "tpe", seed: int = 0, profiles: tuple[str, ...] = ("45nm-fp32",),
           convention: str = "snnas", steps: int = 100, runs: int = 2, resolution: int = 16, train_size: int = 2000,
           val_size: int = 500, max_params: int | None = None, device: str = "auto",
           rungs: tuple[int, ...] | None = None, eta: int = 3, energy_model: str = "arithmetic") -> SearchResult:
    """``snnas search`` in this process (one worker): propose, proxy-train, count and price
    candidates until the study holds ``budget`` evaluated trials, then write its reports into
    ``out/study``. A second call with the same arguments resumes the study. ``rungs`` (steps per
    rung, e.g. ``(100, 300, 900)``) and ``eta`` make it multi-fidelity, as ``--rungs`` / ``--eta``;
    ``energy_model`` (``arithmetic`` or ``lemaire``) is the energy objective, as ``--energy-model``."""
    from snnas.nas.data import ProxySplit, load_dataset
    from snnas.nas.report.tables import trials_frame, write_reports
    from snnas.nas.search.proxy import ProxySettings
    from snnas.nas.search.space import SearchSpace, default_space_path
    from snnas.nas.search.study import SearchSettings, open_study, run_search
    from snnas.nas.search.workers import evaluated_count

    settings = SearchSettings(study=study, out_dir=Path(out), budget=budget, sampler=sampler, seed=seed,
                              profiles=tuple(profiles), convention=convention, max_params=max_params,
                              train_size=train_size, val_size=val_size, resolution=resolution, workers=1,
                              proxy_settings=ProxySettings(steps=steps, seed=seed, runs=runs),
                              rungs=tuple(rungs) if rungs else None, eta=eta, energy_model=energy_model)
    chosen = SearchSpace.from_yaml(space or default_space_path())
    split = ProxySplit.make(load_dataset(data), train_size=train_size, val_size=val_size, resolution=resolution,
                            seed=seed)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    result = run_search(settings, chosen, split, device=dev, study=open_study(settings, chosen, split))
    summary = write_reports(result, settings.study_dir, data=data)
    frame = trials_frame(result)
    front = frame[frame["pareto"]].sort_values("energy_mj") if not frame.empty else frame
    return SearchResult(settings.study_dir, evaluated_count(result), summary.hypervolume,
                        [FrontMember(int(r["trial"]), float(r["objective"]), float(r["energy_mj"]))
                         for _, r in front.iterrows()])
