"""snnas beside two peers on the same models and inputs: spikingjelly 2.0's op counters and NeuroBench 2.3.

Run:  python benchmarks/peers.py

For spikingjelly's own Spike-driven Transformer, Spikformer, MS-ResNet and QKFormer (small
configurations) and three snnas models, counted on one real digit batch with BatchNorm
statistics that make the random networks fire: snnas's exact counts, the peers' own counts, and
snnas's counts priced under each peer's rules (``--convention spikingjelly`` / ``neurobench``),
which must equal the peer's. Writes results/benchmarks/peers.json and prints the README table
(operations per sample, in thousands).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from snnas.energy.counting import count_ops  # noqa: E402
from snnas.energy.estimate import estimate  # noqa: E402
from snnas.energy.profile import load_profile  # noqa: E402
from snnas.nas.data import sample_digits  # noqa: E402
from tests.energy.test_peers import MODELS, _model_and_input, _neurobench_layers, spikingjelly_counts  # noqa: E402

OUT = ROOT / "results" / "benchmarks" / "peers.json"
FP32 = load_profile("45nm-fp32")


def _spikingjelly(model, x) -> dict:
    synops, by_op = spikingjelly_counts(model, x)
    bn = by_op.pop("aten.native_batch_norm.default", 0)
    return {"synops": synops, "macs": sum(by_op.values()), "bn_macs": bn}


def _priced(counts, convention: str) -> dict:
    terms = estimate(counts, FP32, convention=convention).by_term_mj
    return {"acs": terms.get("ac_pj", 0.0) / 0.9e-9, "macs": terms.get("mac_pj", 0.0) / 4.6e-9}


def measure(name: str) -> dict:
    model, x, batch_dim = _model_and_input(name)
    if batch_dim == 0 and x.shape[1] in (1, 3):  # real digits at the model's input
        x = sample_digits(x.shape[0], channels=x.shape[1], size=x.shape[-1])
    batch = x.shape[batch_dim]
    counts = count_ops(model, x, batch_dim=batch_dim, effective=True)
    sj = {k: v / batch for k, v in _spikingjelly(model, x).items()}
    nb_layers = _neurobench_layers(model, x)
    nb = {"acs": sum(float(o) for calls in nb_layers.values() for o, s in calls if s) / batch,
          "macs": sum(float(o) for calls in nb_layers.values() for o, s in calls if not s) / batch}
    ours = {k: counts.total(k) for k in ("macs", "ac", "ac_signed", "ac_multi", "ac_coincidence", "bn")}
    return {"model": name, "snnas": ours, "spikingjelly": sj, "snnas_as_spikingjelly": _priced(counts, "spikingjelly"),
            "neurobench": nb, "snnas_as_neurobench": _priced(counts, "neurobench")}


def main() -> None:
    rows = [measure(name) for name in MODELS]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=2))
    k = 1e3
    print("| model | snnas MACs | snnas ACs: binary / signed / multi-level / coincidence | spikingjelly SynOps "
          "| spikingjelly MACs (+ BatchNorm) | snnas as spikingjelly: ACs, MACs | NeuroBench ACs, MACs "
          "| snnas as NeuroBench |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        o, sj, osj, nb, onb = r["snnas"], r["spikingjelly"], r["snnas_as_spikingjelly"], r["neurobench"], \
            r["snnas_as_neurobench"]
        print(f"| {r['model']} | {o['macs'] / k:.1f} | {o['ac'] / k:.1f} / {o['ac_signed'] / k:.1f} / "
              f"{o['ac_multi'] / k:.1f} / {o['ac_coincidence'] / k:.2f} | {sj['synops'] / k:.1f} | "
              f"{sj['macs'] / k:.1f} (+ {sj['bn_macs'] / k:.1f}) | {osj['acs'] / k:.1f}, {osj['macs'] / k:.1f} | "
              f"{nb['acs'] / k:.1f}, {nb['macs'] / k:.1f} | {onb['acs'] / k:.1f}, {onb['macs'] / k:.1f} |")


if __name__ == "__main__":
    main()
