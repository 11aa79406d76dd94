"""How close the memory check's estimate (snnas.nas.models.footprint) is to what training really takes.

Run:  python benchmarks/footprint.py [--steps 2]

For a few architectures and batch sizes, a fresh process trains the network for a few AdamW steps
and reports how much its peak resident memory grew (``ru_maxrss``); the estimate for the same
training (``Footprint.need_bytes(training=True)``) is printed beside it, with their ratio. An
estimate above 1 refuses a little early; one below 1 would let a run through that the machine
cannot hold. Results go to results/benchmarks/footprint.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "benchmarks"

CASES = [  # (label, ArchConfig fields, batch sizes)
    ("2 stages ssa/dssa, 32 px, T=4", dict(img_size=32, num_classes=10, time_steps=4, depths=(2, 2), dims=(128, 256),
                                          heads=(4, 8), attention=("ssa", "dssa"), patch_sizes=(1, 1),
                                          downsample="spool"), (8, 32)),
    ("1 stage ssa, 32 px, T=2", dict(img_size=32, num_classes=10, time_steps=2, depths=(2,), dims=(128,),
                                     heads=(4,)), (16, 64)),
]

_CHILD = """
import json, resource, sys, torch
from spikingjelly.activation_based.functional import reset_net
from snnas.nas.models import build_model
from snnas.nas.models.arch import ArchConfig
from snnas.nas.models.footprint import footprint
fields, batch, steps = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
arch = ArchConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
estimate = footprint(arch).need_bytes(batch_size=batch, training=True)
torch.manual_seed(0)
model = build_model(arch)
optimiser = torch.optim.AdamW(model.parameters())
x, y = torch.rand(batch, 3, arch.img_size, arch.img_size), torch.randint(0, arch.num_classes, (batch,))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
for _ in range(steps):
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimiser.step(); optimiser.zero_grad(); reset_net(model)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(json.dumps({"estimate_bytes": estimate, "measured_bytes": grown}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for label, fields, batches in CASES:
        for batch in batches:
            done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(fields), str(batch), str(args.steps)],
                                  capture_output=True, text=True, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row.update(case=label, batch=batch, ratio=row["estimate_bytes"] / row["measured_bytes"])
            rows.append(row)
            print(f"{label:34} batch {batch:3}: estimate {row['estimate_bytes'] / 2**20:8.0f} MiB, measured "
                  f"{row['measured_bytes'] / 2**20:8.0f} MiB, ratio {row['ratio']:.2f}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "footprint.json").write_text(json.dumps({"steps": args.steps, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
