"""Hostile input at the command line's edges: special files, bombs, closed output, numbers beyond
the machine. Each is one error line and a non-zero exit, in seconds, and leaves nothing behind."""

import os
import subprocess
import sys

import pytest
import torch

from snnas.nas.models.arch import ArchConfig
from snnas.nas.models import build_model
from snnas.nas.models.footprint import ModelTooLarge, check_fits, footprint, memory_limit_bytes
from snnas.nas.models.zoo import ZOO
from tests.cli.test_cli import snnas

HUGE = ArchConfig(img_size=224, num_classes=1000, time_steps=4, depths=(64,), dims=(16384,), heads=(16,), mlp_ratio=8)


def _one_line(out: subprocess.CompletedProcess, *needles: str) -> str:
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip() and not line.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("snnas: error: ") and "Traceback" not in out.stderr, out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("name", ["spikformer-4-384", "spikingresformer-ti", "qkformer-10-384", "sdt-8-384"])
def test_the_footprint_counts_the_parameters_of_the_built_network_without_building_it(name):
    arch = ZOO[name].arch
    assert footprint(arch).parameters == sum(p.numel() for p in build_model(arch).parameters())


def test_the_footprint_of_a_small_network_is_close_to_what_its_forward_pass_allocates():
    arch = ArchConfig(img_size=16, num_classes=4, time_steps=2, depths=(1,), dims=(32,), heads=(2,))
    found = footprint(arch)
    x = torch.rand(1, 3, 16, 16)
    largest = max(t.numel() * 4 for t in _outputs(build_model(arch).eval(), x))
    assert largest <= found.peak_activation_bytes_per_sample <= found.total_activation_bytes_per_sample
    assert found.need_bytes(batch_size=8, training=True) > found.need_bytes(batch_size=8, training=False)


def _outputs(model, x):
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o) if isinstance(o, torch.Tensor) else None)
             for m in model.modules()]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return seen


def test_a_network_beyond_the_memory_limit_is_refused_before_it_is_built(monkeypatch):
    with pytest.raises(ModelTooLarge, match=r"347,653,032,936 parameters.*SNNAS_MAX_MEMORY"):
        check_fits(HUGE, what="huge")
    small = ZOO["spikformer-2-384"].arch
    monkeypatch.setenv("SNNAS_MAX_MEMORY", "1M")
    assert memory_limit_bytes() == 1 << 20
    with pytest.raises(ModelTooLarge, match="1 MiB"):
        check_fits(small, what="small")
    monkeypatch.setenv("SNNAS_MAX_MEMORY", "lots")
    with pytest.raises(ModelTooLarge, match="not a size"):
        memory_limit_bytes()


@pytest.mark.parametrize("command", [["energy"], ["evaluate"], ["train", "--epochs", "1"]])
def test_a_tiny_model_file_describing_a_huge_network_is_refused_without_building_it(tmp_path, command):
    bomb = tmp_path / "bomb.pt"
    torch.save({"format": "snnas-model", "version": 1, "arch": HUGE.to_dict(), "state_dict": {}}, bomb)
    assert bomb.stat().st_size < 4096
    _one_line(snnas(command[0], str(bomb), *command[1:], "--out" if command[0] == "train" else "--samples",
                    str(tmp_path / "out") if command[0] == "train" else "1", timeout=120),
              str(bomb), "parameters", "available")
    assert not (tmp_path / "out").exists()


def test_training_at_a_time_step_count_beyond_memory_is_refused(tmp_path):
    _one_line(snnas("train", "spikformer-2-384", "-T", "1024", "--epochs", "1", "--out", str(tmp_path / "o"),
                    timeout=120), "T=1024", "training with batches of 128")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("kind", ["fifo", "device", "deep", "folder"])
@pytest.mark.parametrize("command", [["space", "validate"], ["energy", "spikformer-2-384", "--samples", "1", "-p"],
                                     ["arch", "show"]])
def test_special_and_deep_files_as_a_space_profile_or_architecture_are_one_line(tmp_path, kind, command):
    path = {"fifo": tmp_path / "pipe.yaml", "device": "/dev/zero", "deep": tmp_path / "deep.yaml",
            "folder": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # opening it would wait for a writer forever
    if kind == "deep":
        path.write_text("[" * 5000 + "]" * 5000)
    if command == ["arch", "show"] and kind == "device":
        pytest.skip("arch show takes names, files by their .yaml/.json suffix, and trial references")
    why = {"fifo": "not a regular file", "device": "not a regular file", "deep": "nested too deeply",
           "folder": "folder"}[kind]
    out = snnas(*command, str(path), timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert why in out.stderr, out.stderr


@pytest.mark.parametrize("command", [["zoo"], ["profiles"], ["space", "show"]])
def test_a_closed_standard_output_is_one_line(command):
    out = subprocess.run(["bash", "-c", f'exec "$0" -m snnas {" ".join(command)} >&-', sys.executable],
                         capture_output=False, stderr=subprocess.PIPE, text=True, timeout=60)
    assert out.returncode == 2 and "standard output is closed" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("flags, needle", [(["--threads", "1000000"], "CPU core"),
                                           (["--workers", "100000"], "CPU core"),
                                           (["--seed", "-1"], "--seed"),
                                           (["--budget", "100000000000000000000000"], "--budget"),
                                           (["--budget", "1e23"], "--budget"),
                                           (["--heartbeat", "100000000000000000000"], "--heartbeat"),
                                           (["--resolution", "5000"], "--resolution")])
def test_numbers_beyond_the_machine_are_refused_before_a_study_exists(tmp_path, flags, needle):
    _one_line(snnas("search", *flags, "--out", str(tmp_path / "r"), timeout=60), needle)
    assert not (tmp_path / "r").exists()


def test_a_resolution_whose_images_do_not_fit_in_memory_is_refused(tmp_path):
    env = {**os.environ, "SNNAS_MAX_MEMORY": "64M"}
    out = subprocess.run([sys.executable, "-m", "snnas", "search", "--resolution", "200", "--out",
                          str(tmp_path / "r")], capture_output=True, text=True, timeout=120, env=env)
    _one_line(out, "--resolution 200", "GiB as float32")
    assert not (tmp_path / "r").exists()


def test_usage_errors_are_one_line_too():
    _one_line(snnas("search", "--resolution", "1"), "--resolution")
    _one_line(snnas("nosuch"), "No such command")
    _one_line(snnas("energy"), "Missing argument")


def test_a_full_disk_names_the_file_and_says_what_to_do(capsys):
    import errno

    from snnas.cli.common import report_error

    assert report_error(OSError(errno.ENOSPC, "No space left on device", "/data/r/study.journal")) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("snnas: error: /data/r/study.journal: no space left on device; free some space")
    assert "[Errno" not in line
    report_error(OSError(errno.ENOSPC, "No space left on device"))
    assert "the output folder: no space left on device" in capsys.readouterr().err
