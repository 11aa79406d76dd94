"""``snnas zoo``: the published variants, with our parameter count beside the paper's;
``snnas zoo show NAME``: one entry whole (its layers, sources and published figures)."""

from __future__ import annotations

import csv
import json
import sys

from typing import Optional

import typer
from rich import box
from rich.table import Table

from snnas.cli.common import CliError, OutputFormat, console


def _row(entry) -> dict:
    return {
        "name": entry.name,
        "params_m": round(entry.params_m(), 4),
        "published_params_m": entry.published_params_m,
        "convention": entry.convention,
        "params_m_all": round(entry.params_m("all"), 4),
        "params_m_no_bn": round(entry.params_m("no_bn"), 4),
        "paper": entry.paper,
        "published": dict(entry.published),
        "interpretation": entry.interpretation,
        "source": entry.source,
        "cited": entry.cited,
        "img_size": entry.arch.img_size,
        "train_img_size": entry.train_img_size,
    }


def _rows() -> list[dict]:
    from snnas.nas.models.zoo import ZOO

    return [_row(entry) for entry in ZOO.values()]


def zoo(
    action: Optional[str] = typer.Argument(None, metavar="show", show_default=False,
                                           help="'show NAME' prints one entry whole; without it, the list."),
    name: Optional[str] = typer.Argument(None, metavar="NAME", show_default=False, help="A zoo name, after show."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table, json or csv."),
) -> None:
    """List the published variants with our parameter counts beside the published ones, and
    where each one's layers and figures come from; `snnas zoo show NAME` prints one entry whole.

    The convention column says how each paper counts: 'all' includes BatchNorm affine
    parameters, 'no_bn' excludes them (as if folded). Both counts are always shown.
    """
    if action is not None:
        if action != "show" or name is None:
            raise CliError("usage: snnas zoo (the list) or snnas zoo show NAME (one entry)")
        _show(name, fmt)
        return
    rows = _rows()
    if fmt is OutputFormat.json:
        print(json.dumps(rows, indent=2))
        return
    if fmt is OutputFormat.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=[k for k in rows[0] if k != "published"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: v for k, v in row.items() if k != "published"})
        return
    table = Table(title="snnas zoo (parameters in millions)", box=box.SIMPLE_HEAD,
                  caption="paper: green = ours within 0.01 M under the paper's convention (conv.: all, or\n"
                          "no_bn = BatchNorm excluded); other: ours under the other convention;\n"
                          "* = partly snnas's interpretation of the paper; source: where the layers come\n"
                          "from (official code, paper, third-party description, snnas's reading);\n"
                          "`snnas zoo show NAME` prints one entry whole, with the source of each figure")
    table.add_column("name", no_wrap=True)
    for col in ("ours", "paper", "conv.", "other", "top-1 %", "mJ", "source"):
        table.add_column(col, justify="left" if col in ("conv.", "source") else "right", no_wrap=True)
    for row in rows:
        pub = row["published_params_m"]
        colour = "green" if pub is not None and abs(row["params_m"] - pub) <= 0.01 else "red"
        other = row["params_m_no_bn"] if row["convention"] == "all" else row["params_m_all"]
        figures = row["published"]
        top1 = next((f"{v:.2f} {_DATASETS[k]}" for k, v in figures.items() if k in _DATASETS), "-")
        energy = f"{figures['energy_mj']:.2f}" if "energy_mj" in figures else "-"
        table.add_row(row["name"] + ("*" if row["interpretation"] else ""), f"{row['params_m']:.3f}",
                      "-" if pub is None else f"[{colour}]{pub:.2f}[/]", row["convention"], f"{other:.3f}",
                      top1, energy, row["source"])
    console.print(table)


_DATASETS = {"imagenet_top1": "IN", "cifar10_top1": "C10", "cifar100_top1": "C100", "cifar10dvs_top1": "C10-DVS",
             "gesture_top1": "Gest."}
_FIGURES = {"imagenet_top1": "ImageNet top-1 %", "cifar10_top1": "CIFAR-10 top-1 %", "cifar100_top1": "CIFAR-100 top-1 %",
            "cifar10dvs_top1": "CIFAR10-DVS top-1 %", "gesture_top1": "DVS128 Gesture top-1 %", "energy_mj": "energy mJ"}


def _show(name: str, fmt: OutputFormat) -> None:
    """One entry whole: what it is, where its layers and figures come from, and every field."""
    from snnas.nas.models.zoo import ZOO
    from snnas.nas.report.archref import to_yaml

    if name not in ZOO:
        raise CliError(f"{name}: not a zoo model (see `snnas zoo`)")
    entry = ZOO[name]
    row = _row(entry)
    if fmt is OutputFormat.json:
        print(json.dumps({**row, "arch": entry.arch.to_dict()}, indent=2))
        return
    if fmt is OutputFormat.csv:
        raise CliError("--format csv: one entry is shown as text (default) or json")
    print("\n".join(_describe(row) + _stages(entry.arch)))
    print("layers (every field; `snnas arch show NAME -o arch.yaml` writes them for snnas train):")
    print(to_yaml(entry.arch), end="")


def _stages(arch) -> list[str]:
    """One line per stage: blocks, width, heads, attention and the token grid it works on."""
    from snnas.nas.models.arch import SCALED_ATTENTION

    lines = [f"  network:      stem {arch.stem}, {arch.residual} shortcut, {arch.mlp} x{arch.mlp_ratio}, "
             f"{arch.neuron} neurons, {arch.img_size} px, T={arch.time_steps}, {arch.num_classes} classes"]
    for i, (depth, dim, heads, kind) in enumerate(zip(arch.depths, arch.dims, arch.heads, arch.attention)):
        side = arch.stage_resolution(i)
        scale = f" (scale {arch.attn_scale:g}{', learned' if arch.attn_scale_learnable else ''})" \
            if kind in SCALED_ATTENTION else ""
        lines.append(f"  stage {i}:      {depth} block{'s' if depth > 1 else ''}, width {dim}, {heads} heads, "
                     f"{kind} attention{scale}, {side}x{side} tokens")
    return lines


def _describe(row: dict) -> list[str]:
    pub = row["published_params_m"]
    params = f"{row['params_m']:.4f} M ours ({row['convention']} convention)" + \
        (f", {pub:.2f} M published" if pub is not None else ", none published")
    other = "no_bn" if row["convention"] == "all" else "all"
    lines = [f"{row['name']}: {row['paper']}",
             f"  layers from:  {row['source']}",
             f"  parameters:   {params}; {row[f'params_m_{other}']:.4f} M under {other}"]
    for key, value in row["published"].items():
        lines.append(f"  published:    {_FIGURES.get(key, key)} {value:g}")
    if row["cited"]:
        lines.append(f"  cited:        {row['cited']}")
    if row["train_img_size"] is not None:
        lines.append(f"  resolution:   built and counted at {row['img_size']} px (the published figures'); "
                     f"trained at {row['train_img_size']} px")
    if row["interpretation"]:
        lines.append(f"  snnas reads:  {row['interpretation']}")
    return lines
