"""Saved programs that would reach the machine are refused before torch loads them.

Each crafted file is first shown to work on torch's own loader (in a child process, which writes a
marker file), then refused by ``snnas energy`` in one line, with no marker left."""

import json
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Tuple

import pytest
import torch
from torch import nn

from snnas.energy.loading import ModelFileError, load_module_file
from snnas.energy.programs import check_export_archive, check_torchscript_archive, op_refusal
from snnas.energy.untrusted import RefusedFile
from tests.cli.test_cli import snnas


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = torch.zeros(4, dtype=torch.uint8)
        y.copy_(torch.tensor([80, 87, 78, 10], dtype=torch.uint8))
        return self.fc(x) + y.sum()


def _rewrite(source: Path, target: Path, change) -> Path:
    """A copy of a zip archive with ``change(name, data) -> data | None`` applied (None drops a member)."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as out:
        for item in src.infolist():
            data = change(item.filename, src.read(item.filename))
            if data is not None:
                out.writestr(item.filename, data)
    return target


def _clean_export(folder: Path) -> Path:
    path = folder / "clean.pt2"
    torch.export.save(torch.export.export(_Tiny(), (torch.rand(2, 4),)), str(path))
    return path


def _export_with_from_file(folder: Path, victim: Path) -> Path:
    """The graph's ``zeros`` node turned into ``from_file(victim, shared=True)``: the following copy_
    then writes four chosen bytes into the victim file."""
    def change(name, data):
        if not name.endswith("models/model.json"):
            return data
        program = json.loads(data)
        for node in program["graph_module"]["graph"]["nodes"]:
            if node["target"] == "torch.ops.aten.zeros.default":
                node["target"] = "torch.ops.aten.from_file.default"
                node["inputs"] = [{"name": "filename", "arg": {"as_string": str(victim)}, "kind": 1},
                                  {"name": "shared", "arg": {"as_bool": True}, "kind": 1},
                                  {"name": "size", "arg": {"as_int": 4}, "kind": 1},
                                  {"name": "dtype", "arg": {"as_scalar_type": 1}, "kind": 2}]
        return json.dumps(program).encode()
    return _rewrite(_clean_export(folder), folder / "from_file.pt2", change)


class _Opaque:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


def _export_with_opaque(folder: Path, marker: Path, member: str) -> Path:
    """An opaque constant (plain pickle, unpickled by torch's loader) stored as ``member`` under data/constants/."""
    def change(name, data):
        if name.endswith("_constants_config.json"):
            config = json.loads(data)
            config["config"]["evil"] = {"path_name": member, "is_param": False, "use_pickle": True, "tensor_meta": None}
            return json.dumps(config).encode()
        return data
    path = _rewrite(_clean_export(folder), folder / "opaque.pt2", change)
    with zipfile.ZipFile(path, "a") as archive:
        top = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{top}/data/constants/{member}", pickle.dumps(_Opaque(marker)))
    return path


def _export_with_target(folder: Path, target: str) -> Path:
    def change(name, data):
        if name.endswith("models/model.json"):
            program = json.loads(data)
            program["graph_module"]["graph"]["nodes"][-1]["target"] = target
            return json.dumps(program).encode()
        return data
    return _rewrite(_clean_export(folder), folder / "target.pt2", change)


class _Scripted(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x) * 2.0


def _script_with(folder: Path, old: str, new: str, name: str) -> Path:
    clean = folder / "clean.ts"
    torch.jit.script(_Scripted()).save(str(clean))

    def change(member, data):
        if member.endswith("test_programs.py"):  # the class's code: code/__torch__/tests/faults/test_programs.py
            text = data.decode()
            assert old in text, text
            owner = re.search(r"def forward\(self: ([\w.]+),", text).group(1)
            return text.replace(old, new.replace("OWNER", owner)).encode()
        return None if member.endswith("test_programs.py.debug_pkl") else data
    return _rewrite(clean, folder / name, change)


def _torch_loads(path: Path, *, run: bool, kind: str) -> subprocess.CompletedProcess:
    load = "torch.export.load(p).module()" if kind == "export" else "torch.jit.load(p)"
    code = (f"import torch; p = {str(path)!r}\nm = {load}\n"
            + ("m(torch.rand(2, 4))\n" if run else ""))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def _refused_in_one_line(path: Path, *markers: Path) -> str:
    out = snnas("energy", str(path), "--shape", "2,4")
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "refused" in lines[0] and str(path) in lines[0]
    for marker in markers:
        assert not marker.exists() or marker.read_bytes() == b"\0" * 4
    return lines[0]


def test_an_export_graph_calling_from_file_writes_through_torch_and_is_refused_by_snnas(tmp_path):
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"\0" * 4)
    crafted = _export_with_from_file(tmp_path, victim)
    _torch_loads(crafted, run=True, kind="export")
    assert victim.read_bytes() == b"PWN\n"  # the payload is real: torch's own loader writes the file
    victim.write_bytes(b"\0" * 4)
    line = _refused_in_one_line(crafted, victim)
    assert "aten::from_file" in line and "--trust-code" in line


@pytest.mark.parametrize("member", ["opaque_obj_0", "sub/opaque_obj_0", "sub/tensor_9"])
def test_an_export_archive_with_an_opaque_pickled_constant_is_refused_wherever_it_sits(tmp_path, member):
    marker = tmp_path / "pwned"
    crafted = _export_with_opaque(tmp_path, marker, member)
    if member == "opaque_obj_0":
        _torch_loads(crafted, run=False, kind="export")
        assert marker.exists()  # torch's loader unpickles it
        marker.unlink()
    _refused_in_one_line(crafted, marker)


@pytest.mark.parametrize("target", ["torch.serialization.os.system", "builtins.exec", "#custom:op",
                                    "torch.ops.c10d.barrier.default", "torch.ops.aten.save.default"])
def test_an_export_node_target_outside_tensor_ops_is_refused(tmp_path, target):
    with pytest.raises(RefusedFile, match="refused"):
        check_export_archive(_export_with_target(tmp_path, target))


def test_a_member_torch_export_does_not_write_is_refused(tmp_path):
    path = _clean_export(tmp_path)
    with zipfile.ZipFile(path, "a") as archive:
        top = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{top}/data/aotinductor/model/model.so", b"\x7fELF")
    with pytest.raises(RefusedFile, match="aotinductor"):
        check_export_archive(path)


class _WithState(nn.Module):
    """A module whose __setstate__ (run by torch.jit.load) writes a file named by its saved state."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def forward(self, x):
        return x * 2.0

    @torch.jit.export
    def __getstate__(self) -> Tuple[bool, str]:
        return (self.training, self.path)

    @torch.jit.export
    def __setstate__(self, state: Tuple[bool, str]) -> None:
        self.training = state[0]
        self.path = state[1]
        torch.save(torch.ones(1), state[1])


def test_torchscript_code_that_writes_a_file_while_loading_runs_in_torch_and_is_refused_by_snnas(tmp_path):
    marker = tmp_path / "written.bin"
    crafted = tmp_path / "state.ts"
    torch.jit.script(_WithState(str(marker))).save(str(crafted))
    marker.unlink(missing_ok=True)
    _torch_loads(crafted, run=False, kind="torchscript")
    assert marker.exists()  # torch.jit.load itself calls __setstate__
    marker.unlink()
    assert "__setstate__" in _refused_in_one_line(crafted, marker)


def test_torchscript_forward_that_writes_a_file_runs_in_torch_and_is_refused_by_snnas(tmp_path):
    marker = tmp_path / "written.bin"
    call = f'torch.save(torch.ones([1]), "{marker}")'
    crafted = _script_with(tmp_path, "return torch.mul(", f"_w = {call}\n    return torch.mul(", "fwd.ts")
    _torch_loads(crafted, run=True, kind="torchscript")
    assert marker.exists()  # torch runs it at the first forward
    marker.unlink()
    assert "aten::save" in _refused_in_one_line(crafted, marker)


def test_torchscript_code_using_a_custom_cpp_class_is_refused(tmp_path):
    crafted = _script_with(tmp_path, "return torch.mul(",
                           '_s = __torch__.torch.classes.c10d.FileStore("/tmp/x", 1)\n    return torch.mul(', "c.ts")
    with pytest.raises(RefusedFile, match="torch.classes"):
        check_torchscript_archive(crafted)


def test_a_setstate_that_only_stores_its_state_is_accepted(tmp_path):
    setstate = ("  def __setstate__(self: OWNER, state: Tuple[bool, int]) -> NoneType:\n"
                "    self.training = (state)[0]\n    return None\n")
    path = _script_with(tmp_path, "  def forward(", setstate + "  def forward(", "ok.ts")
    check_torchscript_archive(path)


def test_trusting_the_author_loads_a_refused_file(tmp_path):
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"\0" * 4)
    crafted = _export_with_from_file(tmp_path, victim)
    with pytest.raises(ModelFileError, match="from_file"):
        load_module_file(crafted)
    assert load_module_file(crafted, trust_code=True).kind == "export"


def test_scripted_and_traced_spiking_models_pass_the_checks(tmp_path):
    from snnas.nas.models.arch import ArchConfig
    from snnas.nas.models import build_model

    arch = ArchConfig(img_size=16, num_classes=4, time_steps=2, depths=(1,), dims=(32,), heads=(2,))
    model = build_model(arch).eval()
    x = torch.rand(1, 3, 16, 16)
    torch.jit.trace(model, (x,), check_trace=False).save(str(tmp_path / "m.ts"))
    check_torchscript_archive(tmp_path / "m.ts")
    torch.jit.script(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())).save(str(tmp_path / "s.ts"))
    check_torchscript_archive(tmp_path / "s.ts")


@pytest.mark.parametrize("namespace, name, refused", [("aten", "conv2d", False), ("sj_lif", "forward", False),
                                                      ("aten", "from_file", True), ("profiler", "_record", True),
                                                      ("symm_mem", "nvshmem_put", True)])
def test_the_op_policy(namespace, name, refused):
    assert (op_refusal(namespace, name) is not None) == refused


def test_an_export_file_saved_from_a_gpu_loads_on_the_cpu(tmp_path):
    """An archive whose tensors and device arguments say CUDA (as torch.export.save writes one from a
    GPU) loads and runs here, where torch has no CUDA: it was 'corrupt export file' after torch's log."""
    def to_cuda(name, data):
        return data.replace(b'"type": "cpu"', b'"type": "cuda"') if name.endswith(".json") else data
    crafted = _rewrite(_clean_export(tmp_path), tmp_path / "cuda.pt2", to_cuda)
    assert b'"cuda"' in zipfile.ZipFile(crafted).read(next(n for n in zipfile.ZipFile(crafted).namelist()
                                                            if n.endswith("models/model.json")))
    module = load_module_file(crafted).module
    assert module(torch.rand(2, 4)).shape == (2, 4)
    out = snnas("energy", str(crafted), "--shape", "2,4", "-f", "json")
    assert out.returncode == 0, out.stderr
