"""Firing rates given as input: rate tables (YAML or CSV) and the tables the papers publish.

A rate table maps snnas layer names (as ``snnas energy`` prints them) to firing rates, each a
fraction in [0, 1]:

* ``LAYER: 0.176``: the input rate of every synaptic op of the layer (a conv, a linear);
* ``ATTENTION: {q: .., k: .., v: ..}``: the output rates of an attention's Q, K and V, priced on
  its two matmuls as Spikingformer's counter does (Q(K^T V): (k, v) then (q, 1); (Q K^T) V:
  (q, k) then (1, v): the product of the first matmul is taken as dense, rate 1, as its
  formula T*H*N*d^2*(min(fr_K, fr_V) + fr_Q) does);
* ``LAYER: [[left, right], ...]``: one pair per op in execution order (``null`` keeps the measured
  rate), as ``conventions.with_rates`` takes it.

A YAML file holds either that mapping alone or, as the shipped tables do, under ``rates:`` beside
its metadata (``source`` is required there). A CSV file has a header with ``layer`` and either
``rate`` or ``q``, ``k``, ``v`` columns, one layer a row. Layers not named keep their measured
rates. The tables shipped here (``<zoo name>.yaml``) are the rates the papers' authors published,
each with its source; ``published(name)`` reads one.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from snnas.energy.counts import OpCounts
from snnas.energy.textfiles import TextFileError, load_structured, read_small_text

MAX_RATES_BYTES = 1 << 20  # a table of every layer of a large model is a few tens of kB
META_KEYS = ("model", "source", "dataset", "resolution", "time_steps", "convention", "published_mj", "log_mj",
             "log_macs_g", "log_acs_g", "notes")
QKV = ("q", "k", "v")


class RatesError(ValueError):
    """A rate table that cannot be used; the message says why, in one line."""


@dataclass
class RateTable:
    rates: dict[str, Any]  # layer -> rate | {q, k, v} | [[left, right], ...]
    origin: str  # the file, or "published: <name>"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str | None:
        return self.meta.get("source")


def shipped() -> list[str]:
    """Zoo names that have a published rate table."""
    folder = resources.files("snnas.energy") / "rates"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def published(name: str) -> RateTable:
    """The rate table the papers publish for zoo entry ``name``."""
    names = shipped()
    if name not in names:
        raise RatesError(f"--rates published: no published rate table for {name!r}; tables ship for "
                         f"{', '.join(names)} (give your own with --rates FILE)")
    resource = resources.files("snnas.energy") / "rates" / f"{name}.yaml"
    with resources.as_file(resource) as path:
        table = read_table(path)
    return RateTable(table.rates, f"published: {name}", table.meta)


def read_table(path: str | Path) -> RateTable:
    """A rate table from a YAML (.yaml, .yml, .json) or CSV (.csv) file, values checked."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".csv":
            rates, meta = _read_csv(path), {}
        else:
            rates, meta = _split(load_structured(path, limit_bytes=MAX_RATES_BYTES, what="rate table"), path)
    except TextFileError as exc:
        raise RatesError(str(exc)) from None
    for layer, value in rates.items():
        _check_value(path, str(layer), value)
    return RateTable({str(k): v for k, v in rates.items()}, str(path), meta)


def _split(data: Any, path: Path) -> tuple[dict, dict]:
    if not isinstance(data, dict) or not data:
        raise RatesError(f"{path}: a rate table is a mapping of layer names to firing rates")
    if "rates" not in data:
        return data, {}
    unknown = [k for k in data if k != "rates" and k not in META_KEYS]
    if unknown:
        raise RatesError(f"{path}: unknown key {unknown[0]!r} beside 'rates' (allowed: {', '.join(META_KEYS)})")
    if not isinstance(data["rates"], dict) or not data["rates"]:
        raise RatesError(f"{path}: 'rates' must map layer names to firing rates")
    if not isinstance(data.get("source"), str) or not data["source"].strip():
        raise RatesError(f"{path}: a table with metadata names its 'source' (paper table, log file)")
    return data["rates"], {k: v for k, v in data.items() if k != "rates"}


def _read_csv(path: Path) -> dict[str, Any]:
    text = read_small_text(path, limit_bytes=MAX_RATES_BYTES, what="rate table")
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    if "layer" not in columns or not ({"rate"} <= set(columns) or set(QKV) <= set(columns)):
        raise RatesError(f"{path}: a CSV rate table has a header with 'layer' and 'rate' (or 'q', 'k', 'v') columns")
    rates: dict[str, Any] = {}
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        layer = row.get("layer", "")
        if not layer:
            raise RatesError(f"{path}: line {line} names no layer")
        if row.get("rate"):
            rates[layer] = _number(path, layer, row["rate"])
        elif all(row.get(c) for c in QKV):
            rates[layer] = {c: _number(path, f"{layer}.{c}", row[c]) for c in QKV}
        else:
            raise RatesError(f"{path}: line {line} ({layer}) gives neither a rate nor q, k and v")
    if not rates:
        raise RatesError(f"{path}: no rows")
    return rates


def _number(path: Path, key: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise RatesError(f"{path}: {key}: {text[:40]!r} is not a number") from None


def _check_value(path: Path, key: str, value: Any) -> None:
    if isinstance(value, dict):
        if sorted(value) != sorted(QKV):
            raise RatesError(f"{path}: {key}: an attention's rates are {{q, k, v}}, got {sorted(map(str, value))}")
        for c in QKV:
            _check_rate(path, f"{key}.{c}", value[c])
    elif isinstance(value, list):
        for i, pair in enumerate(value):
            if not isinstance(pair, list) or not 1 <= len(pair) <= 2:
                raise RatesError(f"{path}: {key}[{i}]: expected [left, right] rates (null keeps the measured one)")
            for j, r in enumerate(pair):
                if r is not None:
                    _check_rate(path, f"{key}[{i}][{j}]", r)
    else:
        _check_rate(path, key, value)


def _check_rate(path: Path, key: str, value: Any) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1
    if not ok:
        raise RatesError(f"{path}: {key}: {value!r} is not a firing rate (a finite number from 0 to 1; "
                         "percentages divided by 100)")


def resolve(table: RateTable, counts: OpCounts) -> dict[str, Any]:
    """The table in ``with_rates``'s form for these counts: names checked, {q, k, v} mapped to the matmuls."""
    by_name = {layer.name: layer for layer in counts.layers}
    unknown = [name for name in table.rates if name not in by_name or not by_name[name].records]
    if unknown:
        valid = [layer.name for layer in counts.synaptic_layers()]
        hint = ", ".join(valid[:4]) + (f", ... ({len(valid)} in all; `snnas energy MODEL -f csv` lists them)"
                                       if len(valid) > 4 else "")
        what = "has no synaptic op" if unknown[0] in by_name else "is not a layer of this model"
        raise RatesError(f"{table.origin}: {unknown[0]!r} {what}; layers with synaptic ops: {hint}")
    out: dict[str, Any] = {}
    for name, value in table.rates.items():
        if isinstance(value, dict):
            out[name] = _attention_pairs(table.origin, name, by_name[name].records, value)
        elif isinstance(value, list):
            if len(value) != len(by_name[name].records):
                raise RatesError(f"{table.origin}: {name}: {len(value)} rate pairs for {len(by_name[name].records)} ops")
            out[name] = [tuple(p) for p in value]
        else:
            out[name] = float(value)
    return out


def _attention_pairs(origin: str, name: str, records, qkv: dict) -> list[tuple]:
    """{q, k, v} on an attention's two matmuls: which product comes first is read from the operand sizes."""
    if len(records) != 2 or any(r.op != "matmul" for r in records):
        raise RatesError(f"{origin}: {name}: q/k/v rates need an attention of two matmuls (Q, K, V products); "
                         "give per-op pairs [[left, right], ...] instead")
    first, second = records
    q, k, v = (float(qkv[c]) for c in QKV)
    kv_first = second.numel[0] == first.numel[0]  # Q(K^T V): Q and K^T have one size; (Q K^T) V: the map differs
    qk_first = second.numel[1] == first.numel[0]  # (Q K^T) V: V and Q have one size
    if kv_first == qk_first:
        raise RatesError(f"{origin}: {name}: cannot tell the order of Q, K and V from the operand sizes; "
                         "give per-op pairs [[left, right], ...] instead")
    return [(k, v), (q, 1.0)] if kv_first else [(q, k), (1.0, v)]


def apply(counts: OpCounts, rates: "str | Path | dict[str, Any] | RateTable") -> OpCounts:
    """``counts`` at given firing rates: a rate-table file, ``"published:<zoo name>"``, a mapping or a table.

    Every value is checked as a file's would be; a ``RatesError`` says what is wrong in one line.
    """
    from snnas.energy.conventions import with_rates

    if isinstance(rates, RateTable):
        table = rates
    elif isinstance(rates, dict):
        for layer, value in rates.items():
            _check_value(Path("rates"), str(layer), value)
        table = RateTable({str(k): v for k, v in rates.items()}, "rates")
    elif str(rates).startswith("published:"):
        table = published(str(rates)[len("published:"):])
    else:
        table = read_table(rates)
    return with_rates(counts, resolve(table, counts))
