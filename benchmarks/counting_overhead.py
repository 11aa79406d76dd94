"""Counting cost beside spikingjelly's op_counter, on the same models and batch, in one run.

Run:  python benchmarks/counting_overhead.py [--batch 64] [--repeats 3] [--loop-repeats 1]
      [--models qkformer-small,spikformer-4-256]

For each model, on real embedded digits, these are timed side by side, in interleaved repeats
(each repeat runs every one once, in turn, so machine noise affects them alike; medians are
reported): a plain forward pass of the batch; snnas's ``count_ops`` as ``snnas energy`` runs it
(per-sample operand classes from one batched forward); the same counts from the per-sample loop
it replaced (one forward per sample, ``per_sample_loop=True``, for reference; it takes the longest,
so it runs in the first ``--loop-repeats`` repeats only); the pass with
classes decided per batch tensor (``per_sample=False``); and spikingjelly 2.0's
DispatchCounterMode with its SynOp, AC and MAC counters. The headline is snnas / spikingjelly.
``qkformer-small`` is QKFormer's architecture (the qkformer stem and downsampling, Q-K token
attention, then SSA) at 32x32 with dims 64/128/256 and depths 1/1/2. BatchNorm statistics are set
so that the random network fires (as a trained one does): counting work grows with the number
of events. Writes results/benchmarks/counting_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from spikingjelly.activation_based import functional
from spikingjelly.activation_based.op_counter import ACCounter, DispatchCounterMode, MACCounter, SynOpCounter

from snnas.energy.counting import count_ops
from snnas.nas.data import sample_digits
from snnas.nas.models import build_model
from snnas.nas.models.attention.dssa import calibrate_rates
from snnas.nas.models.zoo import get

OUT = Path(__file__).resolve().parent.parent / "results" / "benchmarks" / "counting_overhead.json"
SMALL = {"qkformer-small": ("qkformer-10-384", dict(img_size=32, num_classes=10, dims=(64, 128, 256),
                                                      depths=(1, 1, 2), heads=(4, 4, 4)))}


def _arch(name: str):
    if name in SMALL:
        base, changes = SMALL[name]
        return get(base).arch.replace(**changes)
    return get(name).arch


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _firing(model: torch.nn.Module) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_var.copy_(0.01 + 0.05 * torch.rand(module.running_var.shape, generator=generator))
            module.running_mean.copy_(-0.1 * torch.rand(module.running_mean.shape, generator=generator))
    return model.eval()


def _runs(model: torch.nn.Module, x: torch.Tensor, loop: bool) -> dict:
    def plain():
        functional.reset_net(model)
        with torch.no_grad():
            model(x)

    def spikingjelly_count():
        functional.reset_net(model)
        with torch.no_grad(), DispatchCounterMode([SynOpCounter(), ACCounter(), MACCounter()]):
            model(x)

    runs = {"forward": plain,
            "snnas count_ops (per-sample classes, one batched forward)": lambda: count_ops(model, x),
            "spikingjelly op_counter": spikingjelly_count,
            "snnas count_ops, classes per batch (per_sample=False)": lambda: count_ops(model, x, per_sample=False)}
    if loop:
        runs["snnas count_ops, per-sample loop (before)"] = lambda: count_ops(model, x, per_sample_loop=True)
    return runs


def measure(name: str, batch: int, repeats: int, loop_repeats: int) -> dict:
    torch.manual_seed(0)
    arch = _arch(name)
    model = _firing(build_model(arch))
    x = sample_digits(batch, channels=arch.in_channels, size=arch.img_size)
    calibrate_rates(model, x)
    counts = count_ops(model, x)
    assert counts.per_sample_loop == "", counts.per_sample_loop  # the batched path is what is timed
    runs = _runs(model, x, loop_repeats > 0)
    times: dict[str, list[float]] = {key: [] for key in runs}
    runs["forward"]()  # warm-up
    for repeat in range(repeats):
        for key, fn in runs.items():
            if "loop" not in key or repeat < loop_repeats:  # the slow reference runs in the first repeats only
                times[key].append(_timed(fn))
    medians = {key: statistics.median(values) for key, values in times.items()}
    sj = medians["spikingjelly op_counter"]
    firing = counts.total("spikes") / max(counts.total("neuron_updates"), 1)
    return {"model": name, "img_size": arch.img_size, "time_steps": arch.time_steps, "batch": batch,
            "firing_rate": firing, "repeats": {key: len(values) for key, values in times.items()}, "times_s": times, "median_s": medians,
            "ratio_to_forward": {k: v / medians["forward"] for k, v in medians.items()},
            "ratio_to_spikingjelly": {k: v / sj for k, v in medians.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="qkformer-small,spikformer-4-256")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loop-repeats", type=int, default=1,
                        help="repeats that also time the per-sample loop (slow; 0 skips it)")
    args = parser.parse_args()
    summary = {"threads": torch.get_num_threads(), "batch": args.batch, "repeats": args.repeats,
               "loop_repeats": args.loop_repeats, "models": []}
    for name in args.models.split(","):
        result = measure(name, args.batch, args.repeats, args.loop_repeats)
        summary["models"].append(result)
        print(f"{name}, batch {args.batch}, T={result['time_steps']}, {summary['threads']} threads, "
              f"firing rate {result['firing_rate']:.3f}, medians of interleaved repeats (the loop: {args.loop_repeats})")
        for key, median in result["median_s"].items():
            print(f"  {key:58s} {median:7.2f} s  {result['ratio_to_forward'][key]:5.2f}x forward  "
                  f"{result['ratio_to_spikingjelly'][key]:5.2f}x spikingjelly")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
