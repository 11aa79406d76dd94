"""snnas train on several processes (gloo, on the CPU): the same numbers as one process with the
same global batch, and a killed distributed run resumes exactly."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from snnas.nas.train.distributed import Dist, from_env
from tests.cli.test_cli import snnas
from tests.conftest import tiny_arch

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--epochs", "3", "--batch-size", "32", "--warmup-epochs", "0", "--energy-samples", "8", "--device", "cpu",
        "--threads", "1", "--resolution", "16"]


def test_each_rank_takes_a_contiguous_near_equal_slice_of_the_global_batch():
    for n, world in ((32, 2), (33, 2), (10, 3), (7, 7)):
        parts = [Dist(r, world, r).share(n) for r in range(world)]
        assert [p.start for p in parts] == [0] + [p.stop for p in parts[:-1]] and parts[-1].stop == n
        assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1


def test_the_distributed_environment_is_read_from_torchruns_variables():
    assert from_env({}) is None
    assert from_env({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"}) == Dist(2, 4, 0)
    with pytest.raises(ValueError, match="RANK=4 with WORLD_SIZE=4"):
        from_env({"WORLD_SIZE": "4", "RANK": "4"})


def test_a_batch_the_ranks_cannot_share_is_refused_in_one_line():
    from snnas.nas.train.training import Recipe, TrainError, _check_shares

    _check_shares(64, Recipe(batch_size=32), Dist(0, 2, 0))
    _check_shares(65, Recipe(batch_size=32), None)  # one process takes any batch
    with pytest.raises(TrainError, match=r"a batch of 1 images \(65 training images\) cannot be shared by 2"):
        _check_shares(65, Recipe(batch_size=32), Dist(0, 2, 0))


def _synced_bn_worker(rank: int, world: int, init: str, x: torch.Tensor, out: str) -> None:
    import torch.distributed as td

    from snnas.nas.train.distributed import Dist, SyncedBatchNorm, sync_batchnorm

    torch.set_num_threads(1)
    td.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    keys = list(model.state_dict())
    sync_batchnorm(model)
    assert isinstance(model[1], SyncedBatchNorm) and list(model.state_dict()) == keys
    part = x[Dist(rank, world, rank).share(len(x))].clone().requires_grad_(True)
    y = model(part)
    w = torch.randn(len(x), 4, 4, 4, generator=torch.Generator().manual_seed(2))[Dist(rank, world, rank).share(len(x))]
    ((y * w).sum() / len(x) * world).backward()  # each rank's share of the global mean, as training weighs it
    for p in model.parameters():
        td.all_reduce(p.grad)
        p.grad /= world  # what DistributedDataParallel does
    torch.save({"y": y.detach(), "x_grad": part.grad, "grads": [p.grad for p in model.parameters()],
                "buffers": dict(model.named_buffers())}, f"{out}.{rank}")
    td.destroy_process_group()


def test_synced_batch_norm_on_two_gloo_processes_is_batch_norm_over_the_global_batch(tmp_path):
    """torch's SyncBatchNorm refuses CPU tensors; snnas's gives, on 2 gloo ranks, the outputs, input
    gradients, weight gradients and running statistics of one BatchNorm2d over the whole batch."""
    x = torch.randn(7, 3, 6, 6, generator=torch.Generator().manual_seed(1))  # 7: unequal shares (4 + 3)
    out = str(tmp_path / "r")
    torch.multiprocessing.spawn(_synced_bn_worker, args=(2, f"file://{tmp_path / 'store'}", x, out), nprocs=2)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    whole = x.clone().requires_grad_(True)
    y = model(whole)
    w = torch.randn(len(x), 4, 4, 4, generator=torch.Generator().manual_seed(2))
    ((y * w).sum() / len(x)).backward()
    ranks = [torch.load(f"{out}.{r}", weights_only=True) for r in range(2)]
    assert torch.allclose(torch.cat([r["y"] for r in ranks]), y.detach(), atol=1e-5)
    # a rank's loss is world x its share of the global one (DDP then averages the weights' gradients)
    assert torch.allclose(torch.cat([r["x_grad"] for r in ranks]) / 2, whole.grad, atol=1e-7)
    for rank in ranks:
        for got, want in zip(rank["grads"], model.parameters()):
            assert torch.allclose(got, want.grad, atol=1e-6, rtol=1e-5)
        for name, buffer in model.named_buffers():
            assert torch.allclose(rank["buffers"][name].float(), buffer.float(), atol=1e-6)


# --- the command, on 2 processes -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """160 real digits (the embedded MNIST sample) as a user's .npz, and a tiny architecture file."""
    from snnas.nas.data import load_digits

    folder = tmp_path_factory.mktemp("dist")
    data = load_digits()
    pick = torch.randperm(len(data.labels), generator=torch.Generator().manual_seed(1))[:160]
    np.savez(folder / "d.npz", x=(data.images[pick, 0] * 255).round().to(torch.uint8).numpy(),
             y=data.labels[pick].numpy())
    (folder / "tiny.yaml").write_text(yaml.safe_dump(tiny_arch(in_channels=1, num_classes=10).to_dict()))
    return folder


def _train(setup, out: str, *extra, env=None):
    args = ["train", str(setup / "tiny.yaml"), "--data", str(setup / "d.npz"), "--out", str(setup / out), *FAST,
            *extra]
    return subprocess.run([sys.executable, "-m", "snnas", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def _metrics(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "metrics.csv").drop(columns=["time_s"])


def _train_mode_logits(path: Path) -> torch.Tensor:
    """The model's logits on 64 digits with batch statistics (train mode, no update kept): a
    comparison of what it computes, blind to the conv biases a batch norm cancels (their gradient is
    zero but for rounding, which AdamW turns into steps of +-lr)."""
    from spikingjelly.activation_based import functional

    from snnas.nas.data import load_digits, model_input
    from snnas.nas.models.checkpoint import load_model_file

    model = load_model_file(path)[0].train()
    x = torch.nn.functional.interpolate(load_digits().images[:64], size=16)
    functional.reset_net(model)
    with torch.no_grad():
        return model(model_input(x))


@pytest.fixture(scope="module")
def runs(setup):
    """An unbroken run on one process and one on two (same global batch 32: 16 per process)."""
    one = _train(setup, "one")
    two = _train(setup, "two", "--nproc-per-node", "2")
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    return one, two


@pytest.mark.slow
def test_two_gloo_processes_give_the_numbers_of_one_with_the_same_global_batch(setup, runs):
    _, two = runs
    assert "on 2 processes (cpu, gloo)" in two.stderr and "Traceback" not in two.stderr
    assert two.stderr.count("epoch 3/3") == 1  # rank 0 alone reports
    one_m, two_m = _metrics(setup / "one"), _metrics(setup / "two")
    pd.testing.assert_frame_equal(one_m, two_m, atol=1e-5, rtol=0)  # 12 steps
    diff = (_train_mode_logits(setup / "one" / "last.pt") - _train_mode_logits(setup / "two" / "last.pt")).abs()
    assert float(diff.max()) < 1e-4, float(diff.max())
    for name in ("best.pt", "last.pt", "metrics.csv", "evaluation.json", "firing_rates.png"):
        assert (setup / "two" / name).is_file()
    from snnas.nas.models.checkpoint import load_model_file

    obj = load_model_file(setup / "two" / "last.pt")[2]
    assert obj["meta"]["processes"] == 2 and obj["meta"]["recipe"]["sync_bn"] is True


@pytest.mark.slow
@pytest.mark.parametrize("failpoint", ["epoch.rank1:2", "epoch:2"])  # rank 1 killed, or every rank
def test_a_killed_distributed_run_resumes_with_the_numbers_of_an_unbroken_one(setup, runs, failpoint):
    out = f"killed-{failpoint.split(':')[0]}"
    killed = _train(setup, out, "--nproc-per-node", "2", env={"SNNAS_FAILPOINT": failpoint})
    assert killed.returncode == 2, killed.stderr
    errors = [line for line in killed.stderr.splitlines() if line.startswith("snnas: ")]
    assert len(errors) == 1 and "was killed by SIGKILL" in errors[0] and "rerun the same command" in errors[0]
    assert "Traceback" not in killed.stderr
    assert len(_metrics(setup / out)) == 2
    resumed = _train(setup, out, "--nproc-per-node", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 2" in resumed.stderr and "note: resuming a run saved" not in resumed.stderr
    pd.testing.assert_frame_equal(_metrics(setup / out), _metrics(setup / "two"))  # exact
    a, b = (torch.load(setup / f / "last.pt", weights_only=True)["state_dict"] for f in (out, "two"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_run_resumes_on_another_number_of_processes_keeping_the_global_batch(setup, runs):
    killed = _train(setup, "moved", "--nproc-per-node", "2", env={"SNNAS_FAILPOINT": "epoch:1"})
    assert killed.returncode == 2, killed.stderr
    resumed = _train(setup, "moved")  # one process now
    assert resumed.returncode == 0, resumed.stderr
    note = [line for line in resumed.stderr.splitlines() if line.startswith("note: resuming a run saved")]
    assert note and "from 2 processes on 1" in note[0] and "global batch stays 32 images" in note[0]
    pd.testing.assert_frame_equal(_metrics(setup / "moved"), _metrics(setup / "one"), atol=1e-5, rtol=0)


def test_nproc_per_node_under_torchrun_is_refused_in_one_line(setup):
    out = _train(setup, "x", "--nproc-per-node", "2", env={"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"})
    assert out.returncode == 2 and "already runs under torchrun" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


# --- the example scripts of docs/scale.md ---------------------------------------------------------------


EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.sh"))


def _snnas_commands(script: Path) -> list[list[str]]:
    """The snnas command lines of a script (continuation lines joined), as argument lists from the subcommand on."""
    text = re.sub(r"\\\n\s*", " ", script.read_text())
    found = []
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        words = shlex.split(line, comments=True) if line and not line.startswith("#") else []
        for i, w in enumerate(words):
            if w == "snnas" and i + 1 < len(words) and words[i + 1] in ("train", "search", "report"):
                found.append(words[i + 1:])
            elif w == "-m" and i + 2 < len(words) and words[i + 1] == "snnas":
                found.append(words[i + 2:])
    return found


def test_the_example_scripts_are_valid_bash_and_their_snnas_options_exist():
    assert {p.name for p in EXAMPLES} >= {"slurm-train.sh", "slurm-search.sh", "gpus-search.sh"}
    helps = {}
    for script in EXAMPLES:
        check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert check.returncode == 0, (script, check.stderr)
        commands = _snnas_commands(script)
        assert commands, script
        for words in commands:
            if words[0] not in helps:
                helps[words[0]] = subprocess.run([sys.executable, "-m", "snnas", words[0], "--help"],
                                                 capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}).stdout
            options = {w.split("=")[0] for w in words if w.startswith("--")}
            missing = [o for o in options if o not in helps[words[0]]]
            assert not missing, (script.name, words[0], missing)
