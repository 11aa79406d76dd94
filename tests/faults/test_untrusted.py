"""Files from elsewhere never run code: crafted pickles are built here and must not run, whatever the entry point."""

import io
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.cli.test_cli import snnas

ROOT = Path(__file__).resolve().parents[2]


def _short_string(text: str) -> bytes:
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data  # SHORT_BINUNICODE


def numpy_route_payload(marker: Path) -> bytes:
    """A protocol-4 pickle that calls os.system through an attribute path inside numpy's multiarray
    module (``overrides.inspect.os.system``): what a restricted unpickler that trusts a module lets through."""
    return (b"\x80\x04" + _short_string("numpy._core.multiarray") + _short_string("overrides.inspect.os.system")
            + b"\x93" + _short_string(f"touch {marker}") + b"\x85R.")  # STACK_GLOBAL, TUPLE1, REDUCE, STOP


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def torch_save_payload(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"x": _RunsCode(marker)}, buffer)
    return buffer.getvalue()


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("snnas: ")]


def _crafted_cifar(folder: Path, marker: Path) -> Path:
    folder.mkdir()
    for name in ("data_batch_1", "test_batch"):
        (folder / name).write_bytes(numpy_route_payload(marker))
    return folder


def test_the_payloads_do_run_code_when_unpickled_freely(tmp_path):
    """The test's payloads are real: plain pickle would run them (in a child process)."""
    marker = tmp_path / "ran"
    blob = tmp_path / "blob"
    blob.write_bytes(numpy_route_payload(marker))
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.loads(open({str(blob)!r}, 'rb').read())"],
                   capture_output=True)
    assert marker.exists()


@pytest.mark.parametrize("command", [["search", "--budget", "1", "--steps", "1"], ["energy", "spikformer-2-384"]])
def test_a_crafted_cifar_folder_is_refused_without_running_code(tmp_path, command):
    marker = tmp_path / "pwned"
    folder = _crafted_cifar(tmp_path / "cifar", marker)
    out = snnas(*command, "--data", f"cifar10:{folder}", *(["--out", str(tmp_path / "r")] if command[0] == "search"
                                                           else []))
    assert out.returncode == 2 and not marker.exists()
    assert "overrides.inspect.os.system" in out.stderr and "refused" in out.stderr
    assert len(_error_lines(out.stderr)) == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("study.journal"))


def test_a_torch_export_archive_with_crafted_sample_inputs_is_refused_without_running_code(tmp_path):
    program = torch.export.export(nn.Sequential(nn.Linear(4, 3)), (torch.rand(1, 4),))
    clean = tmp_path / "clean.pt2"
    torch.export.save(program, str(clean))
    marker = tmp_path / "pwned"
    crafted = tmp_path / "crafted.pt2"
    with zipfile.ZipFile(clean) as source, zipfile.ZipFile(crafted, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.endswith("sample_inputs/model.pt"):
                data = torch_save_payload(marker)
            target.writestr(item, data)
    for entry in (["energy", str(crafted)], ["energy", str(crafted), "--shape", "1,4"]):
        out = snnas(*entry)
        assert out.returncode == 2 and not marker.exists(), out.stderr
        assert "refused" in out.stderr or "corrupt" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
    assert snnas("energy", str(clean)).returncode == 0  # the clean archive still loads


def test_a_pickled_input_tensor_file_and_an_object_npy_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    bad_pt = tmp_path / "input.pt"
    bad_pt.write_bytes(torch_save_payload(marker))
    out = snnas("energy", "spikformer-2-384", "--input", str(bad_pt))
    assert out.returncode == 2 and "refused" in out.stderr and not marker.exists()
    import numpy as np

    np.save(tmp_path / "objects.npy", np.array([_RunsCode(marker)], dtype=object), allow_pickle=True)
    out = snnas("energy", "spikformer-2-384", "--input", str(tmp_path / "objects.npy"))
    assert out.returncode == 2 and "pickled" in out.stderr and not marker.exists()


def test_a_truncated_cifar_download_is_one_clear_line(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    import pickle

    import numpy as np

    batch = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 0, 1]}
    for name in ("data_batch_1", "test_batch"):
        (source / name).write_bytes(pickle.dumps(batch, protocol=2))
    folder = tmp_path / "cifar"
    folder.mkdir()
    archive = folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("data_batch_1", "test_batch"):
            tar.add(source / name, arcname=f"cifar-10-batches-py/{name}")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    out = snnas("energy", "spikformer-2-384", "--data", f"cifar10:{folder}")
    assert out.returncode == 2 and "truncated or corrupt" in out.stderr and str(archive) in out.stderr
    assert "Aborted" not in out.stderr and len(_error_lines(out.stderr)) == 1


def test_every_deserialisation_goes_through_one_module():
    """torch.load, pickle and numpy.load appear in energy/untrusted.py and nowhere else in snnas."""
    pattern = re.compile(r"torch\.load\(|pickle\.loads?\(|np\.load\(|numpy\.load\(|Unpickler|weights_only=False")
    offenders = [str(p.relative_to(ROOT)) for folder in ("nas", "energy", "cli") for p in (ROOT / folder).rglob("*.py")
                 if pattern.search(p.read_text()) and p.name != "untrusted.py"]
    assert offenders == []


@pytest.mark.parametrize("content, why", [(b"", "(it is empty)"), (b"PK\x03\x04 torn", "(")])
def test_an_empty_or_torn_torch_file_says_why_in_one_line(tmp_path, content, why):
    from snnas.energy.untrusted import RefusedFile, read_torch_save

    path = tmp_path / "state.pt"
    path.write_bytes(content)
    with pytest.raises(RefusedFile) as info:
        read_torch_save(path, origin=str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: not a readable torch file ") and why in message and "()" not in message


def test_a_cifar_pickle_declaring_a_huge_array_is_one_refusal(tmp_path):
    """numpy's _reconstruct (allowed: ndarrays are what CIFAR batches hold) allocates the shape the
    pickle declares; a shape beyond memory is refused in one line, not a MemoryError traceback."""
    import pickle

    import numpy as np
    from numpy._core.multiarray import _reconstruct

    from snnas.energy.untrusted import RefusedFile, unpickle_restricted
    from snnas.nas.data.images import CIFAR_PICKLE_GLOBALS

    class _Bomb:
        def __reduce__(self):
            return _reconstruct, (np.ndarray, (10**13,), b"b")

    blob = pickle.dumps({b"data": _Bomb(), b"labels": [0, 1]}, protocol=2)
    with pytest.raises(RefusedFile, match="more data than fits in memory"):
        unpickle_restricted(blob, allowed=CIFAR_PICKLE_GLOBALS, origin="data_batch_1")
