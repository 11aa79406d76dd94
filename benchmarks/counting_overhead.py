"""Counting cost as a ratio to a plain forward pass of the same batch, beside spikingjelly's op_counter.

Run:  python benchmarks/counting_overhead.py [--model spikformer-4-256] [--batch 16] [--repeats 5]

Five things are timed side by side in one run (medians of interleaved repeats) on real embedded
digits, so machine noise affects them alike: a plain forward pass of the batch, the same forward
one sample at a time, snnas's ``count_ops`` as ``snnas energy`` runs it (each sample on its own,
so that operand classes are per sample), the batched pass the search uses
(``per_sample=False``), and spikingjelly 2.0's DispatchCounterMode with its SynOp, AC and MAC
counters. BatchNorm statistics are set so that the random network
fires (as a trained one does): counting work grows with the number of events.
Writes results/benchmarks/counting_overhead.json.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="spikformer-4-256")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    torch.manual_seed(0)
    arch = get(args.model).arch
    model = _firing(build_model(arch))
    x = sample_digits(args.batch, channels=arch.in_channels, size=arch.img_size)
    calibrate_rates(model, x)

    def plain():
        functional.reset_net(model)
        with torch.no_grad():
            model(x)

    def spikingjelly_count():
        functional.reset_net(model)
        with torch.no_grad(), DispatchCounterMode([SynOpCounter(), ACCounter(), MACCounter()]):
            model(x)

    def one_at_a_time():
        for i in range(len(x)):
            functional.reset_net(model)
            with torch.no_grad():
                model(x[i:i + 1])

    runs = {"forward": plain, "forward, one sample at a time": one_at_a_time,
            "snnas count_ops, per sample": lambda: count_ops(model, x),
            "snnas count_ops, batched": lambda: count_ops(model, x, per_sample=False),
            "spikingjelly op_counter": spikingjelly_count}
    times: dict[str, list[float]] = {name: [] for name in runs}
    plain()  # warm-up
    for _ in range(args.repeats):
        for name, fn in runs.items():
            times[name].append(_timed(fn))
    base = statistics.median(times["forward"])
    rate = count_ops(model, x, per_sample=False)
    firing = rate.total("spikes") / max(rate.total("neuron_updates"), 1)
    header = (f"{args.model}, batch {args.batch}, T={arch.time_steps}, {torch.get_num_threads()} threads, "
              f"firing rate {firing:.3f}, median of {args.repeats}")
    print(header)
    summary = {"model": args.model, "batch": args.batch, "threads": torch.get_num_threads(), "firing_rate": firing,
               "repeats": args.repeats, "median_s": {}, "ratio_to_forward": {}}
    for name, measured in times.items():
        median = statistics.median(measured)
        summary["median_s"][name] = median
        summary["ratio_to_forward"][name] = median / base
        print(f"  {name:30s} {median * 1000:8.1f} ms   {median / base:5.2f}x forward")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
