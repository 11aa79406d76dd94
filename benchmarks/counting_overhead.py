"""Counting cost as a ratio to a plain forward pass of the same batch, beside spikingjelly's op_counter.

Run:  python benchmarks/counting_overhead.py [--model spikformer-4-256] [--batch 16] [--repeats 5]

All three are timed side by side in one run (medians of interleaved repeats) on real embedded
digits, so machine noise affects them alike. Target (issue #3): snnas counting <= 2x a forward.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from spikingjelly.activation_based import functional
from spikingjelly.activation_based.op_counter import ACCounter, DispatchCounterMode, MACCounter, SynOpCounter

from energy.counting import count_ops
from nas.data import sample_digits
from nas.models import build_model
from nas.models.zoo import get


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="spikformer-4-256")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    arch = get(args.model).arch
    model = build_model(arch).eval()
    x = sample_digits(args.batch, channels=arch.in_channels, size=arch.img_size)

    def plain():
        functional.reset_net(model)
        with torch.no_grad():
            model(x)

    def snnas_count():
        count_ops(model, x)

    def spikingjelly_count():
        functional.reset_net(model)
        with torch.no_grad(), DispatchCounterMode([SynOpCounter(), ACCounter(), MACCounter()]):
            model(x)

    runs = {"forward": [], "snnas count_ops": [], "spikingjelly op_counter": []}
    plain()  # warm-up
    for _ in range(args.repeats):
        runs["forward"].append(_timed(plain))
        runs["snnas count_ops"].append(_timed(snnas_count))
        runs["spikingjelly op_counter"].append(_timed(spikingjelly_count))
    base = statistics.median(runs["forward"])
    print(f"{args.model}, batch {args.batch}, T={arch.time_steps}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    for name, times in runs.items():
        median = statistics.median(times)
        print(f"  {name:26s} {median * 1000:8.1f} ms   {median / base:5.2f}x forward")


if __name__ == "__main__":
    main()
