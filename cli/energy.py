"""``snnas energy MODEL``: per-layer operation counts and energy per hardware profile."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from snnas.cli.common import CliError, err_console, load_data, resolve_device, tenths, write_text_atomic


MAX_INPUT_ELEMENTS = 1 << 28  # 1 GiB of float32: a larger random input is a typo, not a workload


class EnergyModel(str, Enum):
    arithmetic = "arithmetic"
    lemaire = "lemaire"


class BatchNorm(str, Enum):
    folded = "folded"
    priced = "priced"


@dataclass
class _Model:
    module: object
    arch: object = None  # ArchConfig for snnas models and zoo names
    example: tuple | None = None  # torch.export example inputs
    module_types: dict | None = None
    kind: str = "snnas"
    data_spec: str | None = None  # snnas model files from snnas train: the data they were trained on


def _resolve(spec: str, *, trust_pickle: bool, time_steps: Optional[int], seed: int, rated: bool = False,
             official: bool = False) -> _Model:
    """A zoo name (random weights, seeded, unless ``official`` weights follow) or a model file of any supported kind."""
    import torch

    from snnas.energy.loading import load_module_file, read_torch_save, sniff
    from snnas.nas.models.checkpoint import is_snnas_file, model_from_file_data
    from snnas.nas.models import build_model
    from snnas.nas.models.footprint import check_fits
    from snnas.nas.models.zoo import ZOO

    if spec in ZOO:
        rest = " (layers the rate table does not name keep these rates)" if rated else ""
        if not official:
            err_console.print(f"note: {spec} is built with random weights (seed {seed}, --seed): firing rates, and "
                              f"so ACs, are not those of the trained network{rest}", markup=False, highlight=False)
        arch = ZOO[spec].arch if time_steps is None else ZOO[spec].arch.replace(time_steps=time_steps)
        check_fits(arch, what=f"{spec} at T={arch.time_steps}")
        torch.manual_seed(seed)
        return _Model(build_model(arch), ZOO[spec].arch, kind="zoo")
    path = Path(spec)
    if not path.exists():
        raise CliError(f"{spec}: no such file, and not a zoo model (see `snnas zoo`)")
    if sniff(path) == "torch-save" and not trust_pickle:
        obj = read_torch_save(path)
        if not is_snnas_file(obj):
            raise CliError(f"{path}: holds tensors but no architecture (a state dict?); save with "
                           "snnas.save_model, TorchScript or torch.export")
        model, arch = model_from_file_data(obj, origin=str(path))
        if time_steps is not None:
            state = model.state_dict()
            arch = arch.replace(time_steps=time_steps)
            check_fits(arch, what=f"{path} at T={time_steps}")
            model = build_model(arch)
            model.load_state_dict(state)
        return _Model(model, arch, data_spec=((obj.get("meta") or {}).get("data") or {}).get("spec"))
    loaded = load_module_file(path, trust_pickle=trust_pickle)
    for note in loaded.notes:
        err_console.print(f"note: {path}: {note}", markup=False, highlight=False)
    if time_steps is not None:
        raise CliError(f"--time-steps applies to snnas models and zoo names; {path} is a {loaded.kind} file "
                       "whose time steps are fixed by its inputs")
    return _Model(loaded.module, None, loaded.example_inputs, loaded.module_types, loaded.kind)


def _official_weights(m: _Model, spec: str, weights: Optional[Path]) -> None:
    """Load an official checkpoint (--weights) into a zoo network or an snnas model."""
    if weights is None:
        return
    if m.arch is None:
        raise CliError(f"--weights loads official checkpoints into zoo names and snnas models; {spec} is a "
                       f"{m.kind} file")
    from snnas.nas.models.weights import WeightsError, load_official

    try:
        info = load_official(m.module, weights)
    except WeightsError as exc:
        raise CliError(str(exc)) from None
    err_console.print(f"note: {spec} runs with the weights of {weights} ({info.tensors} tensors of the official "
                      f"{info.family} checkpoint)", markup=False, highlight=False)


def _read_input(path: Path):
    import torch

    from snnas.energy.loading import not_a_file
    from snnas.energy.untrusted import read_array, read_torch_save

    if not path.is_file():
        raise CliError(f"--input {not_a_file(path)}")
    value = torch.from_numpy(read_array(path)) if path.suffix == ".npy" else read_torch_save(path, origin=str(path))
    if not isinstance(value, torch.Tensor):
        raise CliError(f"{path}: holds a {type(value).__name__}, expected one tensor")
    if value.is_complex():
        raise CliError(f"{path}: holds a complex tensor")
    return value.float()


def _random_input(shape: str, seed: int):
    import torch

    try:
        dims = [int(v) for v in shape.split(",")]
        if not dims or min(dims) < 1:
            raise ValueError
    except ValueError:
        raise CliError(f"--shape {shape!r}: expected positive integers separated by commas, e.g. 8,3,32,32") from None
    if math.prod(dims) > MAX_INPUT_ELEMENTS:
        raise CliError(f"--shape {shape!r}: {math.prod(dims):,} elements, more than the {MAX_INPUT_ELEMENTS:,} "
                       "snnas allocates for an input")
    err_console.print("warning: random inputs give unrepresentative firing rates; use real data (default for snnas "
                      "models), --data or --input", markup=False, highlight=False)
    return torch.rand(*dims, generator=torch.Generator().manual_seed(seed)), f"random {dims} (seed {seed})"


def _inputs(m: _Model, *, input_file, shape, samples, data, seed):
    """(tensor, description)."""
    from snnas.nas.data import held_out_part, load_dataset, model_input, sample_digits, sample_images

    arch = m.arch
    if data is None and input_file is None and shape is None and m.data_spec:
        data = m.data_spec
        err_console.print(f"note: counting on held-out images of {data}, the data this model was trained on "
                          "(--data to change)", markup=False, highlight=False)
    if data is not None:
        dataset = load_data(data)
        if m.data_spec:  # a model snnas train made: the images it was not trained on (as snnas evaluate does)
            dataset, what = held_out_part(dataset), "held-out images"
        else:
            what = "images"
        images = sample_images(dataset, samples, channels=arch.in_channels if arch else None,
                               size=arch.img_size if arch else None)
        if images.dim() == 5:  # event frames [N, T, C, H, W] -> the models' [T, B, C, H, W]
            return model_input(images), f"{len(images)} event samples ({images.shape[1]} frames) of {data}"
        return images, f"{len(images)} {what} of {data}"
    if input_file is not None:
        return _read_input(input_file), f"file {input_file}"
    if shape is not None:
        return _random_input(shape, seed)
    if arch is not None and arch.in_channels == 2:  # an event-camera model: simulated events of the digits
        frames = sample_images(load_dataset(f"digits-dvs@{arch.time_steps}"), samples, channels=2, size=arch.img_size)
        return model_input(frames), (f"{len(frames)} simulated event samples of the embedded digits (digits-dvs, "
                                     f"{arch.time_steps} frames) fitted to {arch.img_size}x{arch.img_size}")
    if arch is not None:
        digits = sample_digits(samples, channels=arch.in_channels, size=arch.img_size)
        return digits, f"{len(digits)} embedded MNIST digits resized to {arch.img_size}x{arch.img_size}"
    if m.example:
        return m.example[0], "example inputs stored in the export file"
    raise CliError("this model file has no input description: pass --data SPEC, --input FILE or --shape B,C,H,W")


def _batch_axis(m: _Model, x, given: Optional[int], data: Optional[str]) -> int:
    """--batch-dim, or the axis the model's inputs hold their batch on: 1 for the [T, B, ...] frames of
    snnas models and event data and for spikingjelly multi-step modules, else 0 (said when a 5-axis
    input may hold time first: splitting time into samples would count 1/T of the work)."""
    if given is not None:
        return given
    if (m.arch is not None or data is not None) and x.dim() == 5:
        return 1  # snnas models and event data take frames as [T, B, C, H, W]
    multi_step = any(getattr(module, "step_mode", None) == "m" for module in m.module.modules())
    if x.dim() in (3, 5) and multi_step:  # [T, B, F] or [T, B, C, H, W]; a 4-axis input is taken as images
        err_console.print(f"note: spikingjelly multi-step modules take [T, B, ...]: axis 1 of the input "
                          f"{list(x.shape)} is the batch (--batch-dim 0 to count axis 0 as samples)",
                          markup=False, highlight=False)
        return 1
    if x.dim() == 5:
        err_console.print(f"note: the input {list(x.shape)} has 5 axes; axis 0 is taken as the batch. If it is "
                          "time ([T, B, C, H, W]), pass --batch-dim 1: each step counted as a sample would be 1/T "
                          "of the work", markup=False, highlight=False)
    return 0


def _count(m: _Model, x, *, batch_dim: int, effective: bool, bn_folded: bool, desc: str):
    from snnas.energy.counting import count_ops

    if batch_dim >= x.dim():
        raise CliError(f"--batch-dim {batch_dim}: the input has only {x.dim()} axes")
    if m.arch is not None:
        from snnas.nas.models.attention.dssa import calibrate_rates

        if calibrate_rates(m.module, x):
            err_console.print("note: DSSA firing-rate scales were never trained; calibrated on this input as a "
                              "first training step would", markup=False, highlight=False)
    try:
        counts = count_ops(m.module, x, batch_dim=batch_dim, effective=effective, bn_folded=bn_folded,
                           module_types=m.module_types,
                           progress=tenths(lambda done, total: f"counting: {done} of {total} samples", after_s=5.0))
        if counts.per_sample_loop:
            err_console.print(f"note: counted one sample at a time ({counts.per_sample_loop})",
                              markup=False, highlight=False)
        if counts.behavioural_neurons:
            err_console.print("note: counted as spiking neurons for what they do (a threshold reached again "
                              f"through its reset), not their class: {', '.join(counts.behavioural_neurons)}",
                              markup=False, highlight=False)
        return counts
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise CliError(f"the model does not run on this input ({desc}, shape {tuple(x.shape)}): "
                       f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__}") \
            from None


def energy(
    model: str = typer.Argument(..., help="A saved snnas model, a TorchScript or torch.export file, a zoo name, "
                                          "or a pickled module (with --trust-code)."),
    profile: list[str] = typer.Option(["45nm-fp32"], "--profile", "-p",
                                      help="Hardware profile name (see `snnas profiles`) or YAML file; repeatable."),
    convention: str = typer.Option("snnas", "--convention", "-c",
                                   help="snnas (exact), spikformer, spikingresformer, spikingformer, neurobench."),
    memory: bool = typer.Option(False, "--memory", help="The same as --energy-model lemaire."),
    energy_model: EnergyModel = typer.Option(EnergyModel.arithmetic, "--energy-model", help="arithmetic: the "
                                             "convention's operations only; lemaire: Lemaire et al.'s model "
                                             "(ICONIP 2022) for Linear, Conv and IF/LIF layers: operations, "
                                             "addressing and memory traffic, the memory apart per layer."),
    bn: BatchNorm = typer.Option(BatchNorm.folded, "--bn", help="folded: BatchNorm folded into the neighbouring "
                                 "synapse (counted, not priced); priced: run as is, each element priced."),
    input_file: Optional[Path] = typer.Option(None, "--input", help="A saved tensor (.pt) or .npy array to count on."),
    shape: Optional[str] = typer.Option(None, "--shape", help="Random input of this shape, e.g. 8,3,32,32."),
    data: Optional[str] = typer.Option(None, "--data", help="Count on images of a dataset (same specs as snnas "
                                                            "search; for checkpoints of snnas train, its held-out "
                                                            "images) (default for snnas models: the data a "
                                                            "checkpoint was trained on, else embedded digits)."),
    samples: int = typer.Option(16, "--samples", min=1, max=100_000, help="Images to count on (--data or digits)."),
    batch_dim: Optional[int] = typer.Option(None, "--batch-dim", min=0, show_default=False,
                                            help="Axis of the batch in the input (1 for [T, B, ...]); default 0, or 1 "
                                                 "for snnas models, event data and spikingjelly multi-step models."),
    time_steps: Optional[int] = typer.Option(None, "--time-steps", "-T", min=1, max=10_000,
                                             help="Override T (snnas models)."),
    seed: int = typer.Option(0, "--seed", help="Seed of zoo models' random weights and of --shape inputs."),
    trust_pickle: bool = typer.Option(False, "--trust-code", "--trust-pickle",
                                      help="Trust the file's author: unpickle a full module and load TorchScript "
                                           "or torch.export programs unchecked (either can run code)."),
    strict: bool = typer.Option(False, "--strict", help="Exit with code 3 when any figure is incomplete (an op "
                                                       "not counted, or a profile term unknown)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    fmt: EnergyFormat = typer.Option(None, "--format", "-f", show_default=False,
                                     help="table, json, csv or latex (the energies beside the fair baseline, a "
                                          "booktabs table; default: table, or as --output's suffix)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the json/csv/latex report to this "
                                                                      "file."),
    rates: Optional[str] = typer.Option(None, "--rates", help="Price at these firing rates: a YAML or CSV rate "
                                        "table (per layer, or q/k/v per attention), or 'published' for the "
                                        "table shipped with a zoo entry (see docs: reproducing papers)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="An official checkpoint (Spikformer, "
                                           "Spikingformer, Spike-driven Transformer, QKFormer, SpikingResformer) "
                                           "loaded into MODEL, a zoo name or snnas model of that family; read as "
                                           "tensors only."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Print beside the SNN the same network "
                                  "as a ceil(log2(T+1))-bit and an INT8 ANN on the same profile and energy model, "
                                  "the SNN/ANN ratios and the break-even firing rate (Yan et al., arXiv "
                                  "2409.08290; see docs: energy model)."),
) -> None:
    """Count MACs, ACs and other operations per layer, and price them on hardware profiles."""
    from snnas.energy.conventions import get_convention
    from snnas.energy.estimate import estimate
    from snnas.energy.profile import load_profile

    conv = get_convention(convention)
    profiles = [load_profile(p) for p in profile]
    fmt = _output_format(fmt, output)
    table = _rate_table(rates, model)
    m = _resolve(model, trust_pickle=trust_pickle, time_steps=time_steps, seed=seed, rated=table is not None,
                 official=weights is not None)
    _official_weights(m, model, weights)
    x, desc = _inputs(m, input_file=input_file, shape=shape, samples=samples, data=data, seed=seed)
    if not bool(x.isfinite().all()):
        err_console.print(f"warning: the input ({desc}) holds NaN or infinite values; the model's output and its "
                          "firing are then not meaningful", markup=False, highlight=False)
    dev = resolve_device(device)
    m.module, x = m.module.to(dev), x.to(dev)
    batch_dim = _batch_axis(m, x, batch_dim, data)
    counts = _count(m, x, batch_dim=batch_dim, effective=conv.needs_effective, bn_folded=bn is BatchNorm.folded,
                    desc=desc)
    counts, rates_info = _given_rates(table, counts, convention)
    memory = memory or energy_model is EnergyModel.lemaire
    geometry, sizing = _memory_sizing(m, x, batch_dim) if memory else (None, None)
    estimates = [estimate(counts, p, convention=convention, memory=memory, geometry=geometry, sizing=sizing)
                 for p in profiles]
    baselines = _baselines(counts, estimates, profiles, _time_steps(m, x, batch_dim), memory, geometry, sizing) \
        if baseline else None
    _emit(model, m, counts, estimates, x, desc, bn=bn.value, seed=seed, fmt=fmt, output=output, rates=rates_info,
          baselines=baselines)
    _check_complete(counts, estimates, strict)


def _time_steps(m: _Model, x, batch_dim: int) -> int:
    """T: the architecture's, or a model's own ``T`` (spikingjelly's models), or axis 0 of a
    time-first input (batch axis 1), else 1."""
    steps = getattr(m.arch, "time_steps", None) or getattr(m.module, "T", None)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        steps = int(x.shape[0]) if batch_dim == 1 else 1
    return steps


def _baselines(counts, estimates, profiles, steps: int, memory: bool, geometry, sizing):
    """The fair baseline of every estimate: its ANN twins on the same profile and energy model."""
    from snnas.energy.baseline import fair_baseline

    return [fair_baseline(counts, e, p, time_steps=steps, memory=memory, geometry=geometry, sizing=sizing)
            for e, p in zip(estimates, profiles)]


def _memory_sizing(m: _Model, x, batch_dim: int):
    """The layers Lemaire's model prices, and its memories sized for one sample and one time step
    (T as ``_time_steps`` finds it)."""
    from snnas.energy.memory import Sizing, read_geometry

    steps = _time_steps(m, x, batch_dim)
    err_console.print(f"note: memory sized for one sample and one of T={steps} time steps (Lemaire et al. 2022; "
                      "see docs: energy model)", markup=False, highlight=False)
    return read_geometry(m.module), Sizing(time_steps=steps)


def _rate_table(rates: Optional[str], model: str):
    """The rate table of --rates, read (and its values checked) before the model is built."""
    from snnas.energy.rates import RatesError, published, read_table

    if rates is None:
        return None
    try:
        return published(model) if rates == "published" else read_table(rates)
    except RatesError as exc:
        raise CliError(str(exc)) from None


def _given_rates(table, counts, convention: str):
    """Counts at the table's rates, and what the report says of them (None without --rates)."""
    from snnas.energy.conventions import with_rates
    from snnas.energy.rates import RatesError, resolve

    if table is None:
        return counts, None
    try:
        resolved = resolve(table, counts)
    except RatesError as exc:
        raise CliError(str(exc)) from None
    info = {"given": table.origin, "layers": sorted(resolved), "source": table.source,
            **{k: table.meta[k] for k in ("dataset", "resolution", "time_steps", "convention", "published_mj")
               if k in table.meta}}
    paper = table.meta.get("convention")
    if paper and paper != convention:
        err_console.print(f"note: {table.origin} is priced by its paper under the {paper} convention "
                          f"(-c {paper}); this report uses {convention}", markup=False, highlight=False)
    return with_rates(counts, resolved), info


class EnergyFormat(str, enum.Enum):
    table = "table"
    json = "json"
    csv = "csv"
    latex = "latex"


def _output_format(fmt, output: Optional[Path]):
    if fmt is not None:
        return fmt
    if output is None:
        return EnergyFormat.table
    suffix = output.suffix.lower()
    return EnergyFormat.csv if suffix == ".csv" else EnergyFormat.latex if suffix == ".tex" else EnergyFormat.json


def _emit(spec, m: _Model, counts, estimates, x, desc, *, bn: str, seed: int, fmt, output, rates=None,
          baselines=None) -> None:
    from snnas.cli.energy_report import (baseline_report, build_report, print_baseline, print_tables, render_csv,
                                         render_latex)

    input_info = {"source": desc, "shape": list(x.shape), "samples": counts.batch_size,
                  "per_sample": counts.per_sample, "per_sample_loop": counts.per_sample_loop,
                  "behavioural_neurons": list(counts.behavioural_neurons)}
    extra = {"file_kind": m.kind, "bn": bn, **({"seed": seed} if m.kind == "zoo" else {}), "rates": rates}
    if baselines is not None:
        extra["baseline"] = baseline_report(baselines)
    report = build_report(spec, counts, estimates, input_info, extra)
    if fmt is EnergyFormat.table:
        if output is not None:
            raise CliError("--format table prints to the terminal; use --format json, csv or latex with --output")
        print_tables(report, estimates)
        if baselines:
            print_baseline(report["baseline"])
        return
    text = json.dumps(report, indent=2) if fmt is EnergyFormat.json else \
        render_latex(report) if fmt is EnergyFormat.latex else render_csv(report)
    if output is None:
        print(text)
        return
    write_text_atomic(output, text)
    err_console.print(f"wrote {output}", markup=False, highlight=False)


def _check_complete(counts, estimates, strict: bool) -> None:
    if counts.unsupported:
        err_console.print(f"warning: ops not counted (totals are lower bounds): {', '.join(sorted(counts.unsupported))}",
                          markup=False, highlight=False)
    incomplete = [e.profile for e in estimates if not e.complete]
    if strict and incomplete:
        err_console.print(f"snnas: incomplete (--strict): {', '.join(incomplete)} "
                          f"missing {', '.join(sorted({g for e in estimates for g in e.missing}))}",
                          markup=False, highlight=False)
        raise typer.Exit(3)

