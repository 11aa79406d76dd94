"""``snnas zoo``: the published variants, with our parameter count beside the paper's."""

from __future__ import annotations

import csv
import json
import sys

import typer
from rich import box
from rich.table import Table

from snnas.cli.common import OutputFormat, console


def _rows() -> list[dict]:
    from snnas.nas.models.zoo import ZOO

    rows = []
    for entry in ZOO.values():
        ours = entry.params_m()
        rows.append({
            "name": entry.name,
            "params_m": round(ours, 4),
            "published_params_m": entry.published_params_m,
            "convention": entry.convention,
            "params_m_all": round(entry.params_m("all"), 4),
            "params_m_no_bn": round(entry.params_m("no_bn"), 4),
            "paper": entry.paper,
            "published": dict(entry.published),
            "interpretation": entry.interpretation,
            "source": entry.source,
            "cited": entry.cited,
        })
    return rows


def zoo(
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table, json or csv."),
) -> None:
    """List the published variants with our parameter counts beside the published ones, and
    where each one's layers and figures come from.

    The convention column says how each paper counts: 'all' includes BatchNorm affine
    parameters, 'no_bn' excludes them (as if folded). Both counts are always shown.
    """
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
                          "`snnas zoo -f json` cites the table each published figure comes from")
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


_DATASETS = {"imagenet_top1": "IN", "cifar10_top1": "C10", "cifar10dvs_top1": "C10-DVS", "gesture_top1": "Gest."}
