"""``snnas energy MODEL``: per-layer operation counts and energy per hardware profile."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.table import Table

from cli.common import CliError, OutputFormat, console, err_console, resolve_device

LAYER_KEYS = ("macs", "acs", "ac", "ac_signed", "ac_multi", "ac_coincidence", "dense", "rate_dense", "bias",
              "neuron_updates", "spikes", "residual_adds", "masks", "reductions", "scalings", "bn", "pool",
              "activations")


def _resolve(spec: str, *, trust_pickle: bool, time_steps: Optional[int]):
    """(module, arch or None, example inputs or None) for a zoo name or a model file."""
    from energy.loading import load_module_file, read_torch_save, sniff
    from nas.checkpoint import is_snnas_file, model_from_file_data
    from nas.models import build_model
    from nas.models.zoo import ZOO

    if spec in ZOO:
        err_console.print(f"[yellow]note:[/] {spec} is built with random weights: firing rates, and so ACs, are "
                          "not those of the trained network")
        arch = ZOO[spec].arch
        model = build_model(arch if time_steps is None else arch.replace(time_steps=time_steps))
        return model, model.arch, None
    path = Path(spec)
    if not path.exists():
        raise CliError(f"{spec}: no such file, and not a zoo model (see `snnas zoo`)")
    if sniff(path) == "torch-save" and not trust_pickle:
        obj = read_torch_save(path)
        if not is_snnas_file(obj):
            raise CliError(f"{path}: holds tensors but no architecture (a state dict?); save with "
                           "nas.checkpoint.save_model, TorchScript or torch.export")
        model, arch = model_from_file_data(obj, origin=str(path))
        if time_steps is not None:
            state = model.state_dict()
            model = build_model(arch.replace(time_steps=time_steps))
            model.load_state_dict(state)
        return model, model.arch, None
    loaded = load_module_file(path, trust_pickle=trust_pickle)
    if time_steps is not None:
        raise CliError(f"--time-steps applies to snnas models and zoo names; {path} is a {loaded.kind} file "
                       "whose time steps are fixed by its inputs")
    return loaded.module, None, loaded.example_inputs


def _read_input(path: Path):
    import numpy as np
    import torch

    if not path.is_file():
        raise CliError(f"{path}: no such input file")
    try:
        if path.suffix == ".npy":
            return torch.from_numpy(np.load(path, allow_pickle=False)).float()
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # numpy and torch raise many kinds on corrupt files
        raise CliError(f"{path}: cannot read a tensor ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") \
            from None
    if not isinstance(value, torch.Tensor):
        raise CliError(f"{path}: holds a {type(value).__name__}, expected one tensor")
    return value.float()


def _inputs(arch, example, *, input_file, shape, samples, data):
    """(tensor, description)."""
    import torch

    from nas.data import load_dataset, sample_digits, sample_images

    if data is not None:
        images = sample_images(load_dataset(data), samples, channels=arch.in_channels if arch else None,
                               size=arch.img_size if arch else None)
        return images, f"{len(images)} images of {data}"
    if input_file is not None:
        return _read_input(input_file), f"file {input_file}"
    if shape is not None:
        try:
            dims = [int(v) for v in shape.split(",")]
            if not dims or min(dims) < 1:
                raise ValueError
        except ValueError:
            raise CliError(f"--shape {shape!r}: expected positive integers separated by commas, e.g. 8,3,32,32") \
                from None
        err_console.print("[yellow]warning:[/] random inputs give unrepresentative firing rates; "
                          "use real data (default for snnas models) or --input")
        return torch.rand(*dims), f"random {dims}"
    if arch is not None:
        return sample_digits(samples, channels=arch.in_channels, size=arch.img_size), \
            f"{samples} embedded MNIST digits resized to {arch.img_size}x{arch.img_size}"
    if example:
        return example[0], "example inputs stored in the export file"
    raise CliError("this model file has no input description: pass --input FILE or --shape B,C,H,W")


def _report(spec, counts, estimates, input_desc):
    layers = []
    for layer in counts.layers:
        row = {"name": layer.name, "type": layer.type, "operand": layer.operand, "in_rate": layer.in_rate,
               "params": layer.params}
        row.update({k: layer.total(k) for k in LAYER_KEYS})
        row["energy_mj"] = estimates[0].by_layer_mj.get(layer.name, 0.0) if estimates else None
        if any(row[k] for k in LAYER_KEYS):
            layers.append(row)
    return {
        "model": spec, "params": counts.params, "input": {"source": input_desc, "batch_size": counts.batch_size},
        "per": "sample (all time steps)",
        "totals": {k: counts.total(k) for k in LAYER_KEYS},
        "layers": layers,
        "energy": [e.to_dict() for e in estimates],
        "unsupported": counts.unsupported,
    }


def _render_csv(report) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(report["layers"][0]) if report["layers"] else ["name"])
    writer.writeheader()
    writer.writerows(report["layers"])
    return buffer.getvalue()


def _print_tables(report, estimates) -> None:
    table = Table(title=f"{report['model']}: counts per sample (all time steps)", box=box.SIMPLE_HEAD)
    table.add_column("layer", min_width=20, overflow="fold")
    for col in ("in", "rate", "MACs", "ACs", "dense", "rate*dense", "mJ"):
        table.add_column(col, justify="left" if col == "in" else "right", no_wrap=True)
    for row in report["layers"]:
        if not (row["macs"] or row["acs"]):
            continue
        rate = "-" if row["in_rate"] is None else f"{row['in_rate']:.3f}"
        table.add_row(row["name"], row["operand"] or "-", rate, f"{row['macs']:.3g}", f"{row['acs']:.3g}",
                      f"{row['dense']:.3g}", f"{row['rate_dense']:.3g}", f"{row['energy_mj'] or 0:.3g}")
    console.print(table)
    t = report["totals"]
    console.print(f"params {report['params']:,}  MACs {t['macs']:.4g}  ACs {t['acs']:.4g}  dense {t['dense']:.4g}  "
                  f"neuron updates {t['neuron_updates']:.4g}  residual adds {t['residual_adds']:.4g}  "
                  f"BatchNorm {t['bn']:.4g} (folded)")
    energy = Table(title="energy per sample", box=box.SIMPLE_HEAD)
    for col in ("profile", "regime", "convention", "mJ", "complete"):
        energy.add_column(col, justify="right" if col == "mJ" else "left")
    for e in estimates:
        status = "yes" if e.complete else f"[red]no[/]: missing {', '.join(e.missing)}"
        energy.add_row(e.profile, e.regime, e.convention + (" + memory" if e.memory else ""),
                       f"{e.total_mj:.4g}" + ("" if e.complete else " (lower bound)"), status)
    console.print(energy)


def energy(
    model: str = typer.Argument(..., help="A saved snnas model, a TorchScript or torch.export file, a zoo name, "
                                          "or a pickled module (with --trust-pickle)."),
    profile: list[str] = typer.Option(["45nm-fp32"], "--profile", "-p",
                                      help="Hardware profile name (see `snnas profiles`) or YAML file; repeatable."),
    convention: str = typer.Option("snnas", "--convention", "-c",
                                   help="snnas (exact), spikformer, spikingresformer, spikingformer, neurobench."),
    memory: bool = typer.Option(False, "--memory", help="Add memory traffic (Lemaire et al. 2022)."),
    input_file: Optional[Path] = typer.Option(None, "--input", help="A saved tensor (.pt) or .npy array to count on."),
    shape: Optional[str] = typer.Option(None, "--shape", help="Random input of this shape, e.g. 8,3,32,32."),
    data: Optional[str] = typer.Option(None, "--data", help="Count on images of a dataset (same specs as snnas "
                                                            "search; default for snnas models: embedded digits)."),
    samples: int = typer.Option(16, "--samples", min=1, help="Images to count on (--data or embedded digits)."),
    batch_dim: int = typer.Option(0, "--batch-dim", min=0, help="Axis of the batch in the input (1 for [T, B, ...])."),
    time_steps: Optional[int] = typer.Option(None, "--time-steps", "-T", min=1, help="Override T (snnas models)."),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help="Allow unpickling a full module (runs code)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table, json or csv (per layer)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the json/csv report to this file."),
) -> None:
    """Count MACs, ACs and other operations per layer, and price them on hardware profiles."""
    from energy.conventions import get_convention
    from energy.counting import count_ops
    from energy.estimate import estimate
    from energy.profile import load_profile

    conv = get_convention(convention)
    profiles = [load_profile(p) for p in profile]
    module, arch, example = _resolve(model, trust_pickle=trust_pickle, time_steps=time_steps)
    x, desc = _inputs(arch, example, input_file=input_file, shape=shape, samples=samples, data=data)
    dev = resolve_device(device)
    module, x = module.to(dev), x.to(dev)
    if arch is not None and x.dim() == 5 and batch_dim == 0:
        batch_dim = 1  # snnas event frames are [T, B, C, H, W]
    if batch_dim >= x.dim():
        raise CliError(f"--batch-dim {batch_dim}: the input has only {x.dim()} axes")
    try:
        counts = count_ops(module, x, batch_size=int(x.shape[batch_dim]), effective=conv.needs_effective)
    except (RuntimeError, ValueError) as exc:
        raise CliError(f"the model does not run on this input ({desc}, shape {tuple(x.shape)}): "
                       f"{str(exc).splitlines()[0][:200]}") from None
    estimates = [estimate(counts, p, convention=convention, memory=memory) for p in profiles]
    report = _report(model, counts, estimates, desc)
    if counts.unsupported:
        err_console.print(f"[yellow]warning:[/] ops not counted: {', '.join(sorted(counts.unsupported))}")
    if output is not None and fmt is OutputFormat.table:
        fmt = OutputFormat.csv if output.suffix == ".csv" else OutputFormat.json
    if fmt is OutputFormat.table:
        _print_tables(report, estimates)
        return
    text = json.dumps(report, indent=2) if fmt is OutputFormat.json else _render_csv(report)
    if output is None:
        print(text)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(f".{output.name}.{os.getpid()}.partial")
        tmp.write_text(text)
        tmp.replace(output)  # never leave a half-written report under the final name
    except OSError as exc:
        raise CliError(f"{output}: cannot write ({exc.strerror or exc})") from None
    err_console.print(f"wrote {output}")
