"""Property: on random small graphs of conv / linear / matmul / pool with random binary, ternary,
multi-level and real inputs, snnas's per-sample counts equal a brute-force reference that
enumerates every multiply of every op in plain Python, for batches of 1 and 3, in every file format.

The reference classifies each operand of each sample by the documented rule (``energy.operands``)
and walks every output position and every kernel tap or contracted index.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from snnas.energy.counting import count_ops
from tests.energy.formats import save_every_way

KEYS = ("macs", "ac", "ac_signed", "ac_multi", "ac_coincidence", "dense", "pool")
CHARGE = {"binary": "ac", "ternary": "ac_signed", "multilevel": "ac_multi"}


# ----------------------------------------------------------------------------- the reference
def _whole(values, multiplier):
    return all(abs(v * multiplier - round(v * multiplier)) <= 1e-5 * max(1.0, v * multiplier) for v in values)


def ref_classify(values: list[float]) -> tuple[str, list[float] | None]:
    """The documented rule, element by element: (class, level of each value or None for real)."""
    nonzero = [abs(v) for v in values if v != 0]
    if all(v in (0.0, 1.0) for v in values):
        return "binary", [abs(v) for v in values]
    if all(v in (0.0, 1.0, -1.0) for v in values):
        return "ternary", [abs(v) for v in values]
    if any(math.isnan(v) or math.isinf(v) for v in nonzero):
        return "real", None
    if _whole(nonzero, 1.0):
        quantum = 1.0
    else:  # the largest quantum dividing every value: the smallest value over k
        quantum = next((min(nonzero) / k for k in range(1, 65)
                        if max(nonzero) * k / min(nonzero) <= 64.5 and _whole(nonzero, k / min(nonzero))), None)
    if quantum is None or max(nonzero) / quantum > 64.5:
        return "real", None
    return "multilevel", [round(abs(v) / quantum) for v in values]


def _add(counts, kind, level_or_none):
    if kind == "real":
        counts["macs"] += 1
    elif level_or_none:
        counts[CHARGE[kind]] += level_or_none


def ref_conv(x: torch.Tensor, conv: nn.Conv2d | nn.ConvTranspose2d, counts) -> None:
    """One sample ``x [C, H, W]``: every (output, tap) pair of the conv, or of the transposed conv."""
    kind, levels = ref_classify(x.flatten().tolist())
    level = (lambda c, i, j: levels[(c * x.shape[1] + i) * x.shape[2] + j]) if levels else (lambda *a: None)
    (sy, sx), (py, px), (dy, dx), groups = conv.stride, conv.padding, conv.dilation, conv.groups
    transposed = isinstance(conv, nn.ConvTranspose2d)
    c_in, height, width = x.shape
    kh, kw = conv.kernel_size
    out_per_group = conv.out_channels // groups
    in_per_group = c_in // groups
    out_h, out_w = conv(x.unsqueeze(0)).shape[-2:]
    if transposed:  # every input element meets every tap; it lands in the output or is cropped
        for c in range(c_in):
            for i in range(height):
                for j in range(width):
                    for _ in range(out_per_group):
                        for ky in range(kh):
                            for kx in range(kw):
                                counts["dense"] += 1
                                oy, ox = i * sy - py + ky * dy, j * sx - px + kx * dx
                                inside = 0 <= oy < out_h and 0 <= ox < out_w
                                _add(counts, kind, level(c, i, j) if inside else 0) if kind != "real" else \
                                    _add(counts, kind, None)
        return
    for o in range(conv.out_channels):
        group = o // out_per_group
        for oy in range(out_h):
            for ox in range(out_w):
                for c in range(group * in_per_group, (group + 1) * in_per_group):
                    for ky in range(kh):
                        for kx in range(kw):
                            counts["dense"] += 1
                            i, j = oy * sy - py + ky * dy, ox * sx - px + kx * dx
                            inside = 0 <= i < height and 0 <= j < width
                            _add(counts, kind, (level(c, i, j) if inside else 0) if kind != "real" else None)


def ref_linear(x: torch.Tensor, out_features: int, counts) -> None:
    kind, levels = ref_classify(x.flatten().tolist())
    for index in range(x.numel()):
        for _ in range(out_features):
            counts["dense"] += 1
            _add(counts, kind, levels[index] if levels else None)


def ref_matmul(a: torch.Tensor, counts) -> None:
    """``a [..., n, k] @ a^T``: both operands are the same sample's data."""
    kind, levels = ref_classify(a.flatten().tolist())
    rows = a.reshape(-1, a.shape[-2], a.shape[-1])
    level_rows = torch.tensor(levels).reshape(rows.shape).tolist() if levels else None
    for b in range(rows.shape[0]):
        for i in range(rows.shape[1]):
            for j in range(rows.shape[1]):
                for k in range(rows.shape[2]):
                    counts["dense"] += 1
                    if kind == "real":
                        counts["macs"] += 1
                    else:
                        counts["ac_coincidence"] += level_rows[b][i][k] * level_rows[b][j][k]


# ----------------------------------------------------------------------------- random graphs
class Quantise(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        if self.kind == "binary":
            return (x > 0.1).float()
        if self.kind == "ternary":
            return torch.clamp(torch.round(x * 2.0), -1.0, 1.0)
        return torch.clamp(torch.round(x.abs() * 3.0), 0.0, 3.0)


class MatMul(nn.Module):
    def forward(self, x):
        return x @ x.transpose(-1, -2)


class Pool(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        return F.max_pool2d(x, 2) if self.kind == "max" else F.avg_pool2d(x, 2)


@st.composite
def graphs(draw):
    channels, size = draw(st.integers(1, 3)), draw(st.integers(3, 5))
    steps, shape = [], (channels, size, size)
    for _ in range(draw(st.integers(1, 3))):
        c, h, w = shape
        choice = draw(st.sampled_from(["conv", "conv_t", "linear", "matmul", "pool", "quantise"]))
        if choice in ("conv", "conv_t"):
            groups = draw(st.sampled_from([g for g in (1, 2, 3) if c % g == 0]))
            out = groups * draw(st.integers(1, 2))
            kernel, stride, padding = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 1))
            dilation = draw(st.integers(1, 2))
            cls = nn.Conv2d if choice == "conv" else nn.ConvTranspose2d
            layer = cls(c, out, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                        bias=draw(st.booleans()))
        elif choice == "linear":
            layer = nn.Linear(w, draw(st.integers(1, 3)))
        elif choice == "matmul":
            layer = MatMul()
        elif choice == "pool":
            if h < 2 or w < 2:
                continue
            layer = Pool(draw(st.sampled_from(["max", "avg"])))
        else:
            layer = Quantise(draw(st.sampled_from(["binary", "ternary", "multilevel"])))
        try:
            out_shape = tuple(layer(torch.zeros(1, *shape)).shape[1:])
        except RuntimeError:  # a kernel larger than the map, say: draw the next step
            continue
        if len(out_shape) != 3 or min(out_shape) < 1 or math.prod(out_shape) > 400:
            continue
        shape = out_shape
        steps.append(layer)
    if not steps:
        return None
    batch = draw(st.sampled_from([1, 3]))
    classes = [draw(st.sampled_from(["binary", "ternary", "multilevel", "real"])) for _ in range(batch)]
    seed = draw(st.integers(0, 2 ** 16))
    return steps, (channels, size, size), classes, seed


def _input(shape, classes, seed):
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for kind in classes:
        u = torch.rand(shape, generator=generator)
        samples.append({"binary": (u < 0.4).float(), "ternary": torch.round(u * 2 - 1),
                        "multilevel": torch.floor(u * 4), "real": u + 0.05}[kind])
    return torch.stack(samples)


def reference(model: nn.Sequential, x: torch.Tensor) -> dict[str, dict[str, float]]:
    per_layer: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for sample in x:
        h = sample.unsqueeze(0)
        for name, layer in model.named_children():
            counts = per_layer[name]
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                ref_conv(h[0], layer, counts)
            elif isinstance(layer, nn.Linear):
                ref_linear(h[0], layer.out_features, counts)
            elif isinstance(layer, MatMul):
                ref_matmul(h[0], counts)
            with torch.no_grad():
                out = layer(h)
            if isinstance(layer, Pool):
                counts["pool"] += out.numel() * 4
            h = out
    return {name: {k: v / len(x) for k, v in counts.items()} for name, counts in per_layer.items()}


def _ours(module, x, module_types=None):
    counts = count_ops(module, x, module_types=module_types)
    assert counts.unsupported == {}
    return {layer.name: {k: layer.total(k) for k in KEYS} for layer in counts.layers}


def _agree(ours, expected):
    for name, counts in expected.items():
        for key in KEYS:
            assert ours.get(name, {}).get(key, 0.0) == pytest.approx(counts.get(key, 0.0), rel=1e-9, abs=1e-9), \
                (name, key)


def _check(graph, formats_folder: Path | None = None) -> None:
    if graph is None:
        return
    steps, shape, classes, seed = graph
    model = nn.Sequential(*steps).eval()
    x = _input(shape, classes, seed)
    expected = reference(model, x)
    _agree(_ours(model, x), expected)
    if formats_folder is not None:
        example = _input(shape, ["real"] * 3, seed)  # the files are saved with another batch than counted
        for module, module_types in save_every_way(model, example, formats_folder).values():
            _agree(_ours(module, x, module_types), expected)


FAST = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
LONG = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])


@FAST
@given(graph=graphs())
def test_counts_equal_a_brute_force_enumeration_in_every_file_format(tmp_path_factory, graph):
    _check(graph, Path(tmp_path_factory.mktemp("formats")))


@pytest.mark.slow
@LONG
@given(graph=graphs())
def test_counts_equal_a_brute_force_enumeration_on_many_more_graphs(tmp_path_factory, graph):
    _check(graph, Path(tmp_path_factory.mktemp("formats")))
