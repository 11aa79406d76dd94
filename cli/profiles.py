"""``snnas profiles``: the hardware profiles and their sourced figures."""

from __future__ import annotations

import json

import typer
from rich import box
from rich.table import Table

from snnas.cli.common import OutputFormat, console


def profiles(
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table or json."),
    show: str = typer.Option(None, "--show", help="Print one profile's terms with sources and evidence."),
) -> None:
    """List the hardware profiles (45 nm CMOS regimes and neuromorphic chips). Unknown figures are null."""
    from snnas.energy.profile import builtin_profile_names, load_profile

    names = [show] if show else builtin_profile_names()
    loaded = [load_profile(n) for n in names]
    if fmt is OutputFormat.json:
        print(json.dumps([{"name": p.name, "title": p.title, "kind": p.kind, "regime": p.regime,
                           "terms": {k: _term_json(t) for k, t in p.terms.items()}, "memory": p.memory is not None,
                           **({"memory_range": _memory_range_json(p.memory)} if p.memory and p.memory.has_range
                              else {})} for p in loaded], indent=2))
        return
    if show:
        p = loaded[0]
        table = Table(title=f"{p.name}: {p.title} ({p.regime})", box=box.SIMPLE_HEAD)
        for col in ("term", "pJ", "evidence", "source"):
            table.add_column(col)
        for k, t in p.terms.items():
            table.add_row(k, "null" if t.value is None else f"{t.value:g}", t.evidence, t.source)
            for end in ("low", "high") if t.has_range else ():
                table.add_row(f"  {end}", f"{t.at(end):g}", "", getattr(t, f"{end}_source") or t.source)
        if p.memory is not None:
            _memory_rows(table, p.memory)
        console.print(table)
        return
    table = Table(title=r"hardware profiles (pJ; null = not published; \[low-high] where sources disagree)",
                  box=box.SIMPLE_HEAD)
    for col in ("name", "regime", "MAC", "AC", "neuron", "add", "memory"):
        table.add_column(col, justify="left" if col in ("name", "regime") else "right", no_wrap=True)

    def cell(p, key: str) -> str:
        t = p.terms.get(key)
        if t is None or t.value is None:
            return "null"
        return f"{t.value:g} [{t.at('low'):g}-{t.at('high'):g}]" if t.has_range else f"{t.value:g}"

    for p in loaded:
        memory = "-" if p.memory is None else "yes, ranged" if p.memory.has_range else "yes"
        table.add_row(p.name, p.regime, *(cell(p, k) for k in ("mac_pj", "ac_pj", "neuron_update_pj", "add_pj")),
                      memory)
    console.print(table)


def _points(points) -> str:
    return ", ".join(f"{b:.0f} B: {e:g}" for b, e in points)


def _memory_rows(table: Table, memory) -> None:
    table.add_row("memory (pJ/byte)", _points(memory.points) or "linear fit per word access", "", memory.source)
    for end in ("low", "high") if memory.has_range else ():
        at = memory.at(end)
        table.add_row(f"  {end}", _points(at.points), "", getattr(memory, f"{end}_source") or memory.source)


def _term_json(t) -> dict:
    out = {"value": t.value, "source": t.source, "evidence": t.evidence}
    if t.has_range:
        out["range"] = {end: {"value": t.at(end), "source": getattr(t, f"{end}_source") or t.source}
                        for end in ("low", "high")}
    return out


def _memory_range_json(memory) -> dict:
    return {end: {"pj_per_byte": [list(p) for p in memory.at(end).points],
                  "source": getattr(memory, f"{end}_source") or memory.source} for end in ("low", "high")}
