"""LS-SSA attends only inside its dilated window (hand-built cases and a brute-force reference)."""

import pytest
import torch
from torch import nn

from snnas.nas.models import build_model
from snnas.nas.models.attention.ls_ssa import local_window_attention
from snnas.nas.models.attention.ssa import SSA_SCALE
from tests.conftest import tiny_arch


def _masked_global_attention(q, k, v, *, heads, window, dilation):
    """Reference: full N x N attention with everything outside the dilated window masked out."""
    m, c, height, width = q.shape
    d = c // heads
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    dr, dc = rows[None, :] - rows[:, None], cols[None, :] - cols[:, None]  # key - query offsets
    reach = dilation * (window // 2)
    mask = (dr % dilation == 0) & (dc % dilation == 0) & (dr.abs() <= reach) & (dc.abs() <= reach)
    qt, kt, vt = (x.reshape(m, heads, d, height * width).transpose(-1, -2) for x in (q, k, v))
    scores = (qt @ kt.transpose(-1, -2)) * mask  # [M, h, N, N]
    return (scores @ vt).transpose(-1, -2).reshape(m, c, height, width)


def test_centre_query_sums_values_of_exactly_its_dilated_neighbours():
    q = torch.zeros(1, 1, 7, 7)
    q[0, 0, 3, 3] = 1.0
    k = torch.ones(1, 1, 7, 7)
    v = torch.arange(49.0).reshape(1, 1, 7, 7)
    out = local_window_attention(q, k, v, heads=1, window=3, dilation=2)
    # keys at rows/cols {1, 3, 5}: values 7r + c
    expected = sum(7 * r + c for r in (1, 3, 5) for c in (1, 3, 5))
    assert out[0, 0, 3, 3].item() == expected
    assert out.abs().sum().item() == expected  # every other query is silent


def test_a_key_outside_the_window_has_no_influence_and_one_inside_does():
    q = torch.zeros(1, 1, 7, 7)
    q[0, 0, 3, 3] = 1.0
    v = torch.ones(1, 1, 7, 7)
    base = local_window_attention(q, torch.zeros(1, 1, 7, 7), v, heads=1, window=3, dilation=2)
    outside = torch.zeros(1, 1, 7, 7)
    outside[0, 0, 2, 2] = 1.0  # adjacent to the query, but skipped by dilation 2
    inside = torch.zeros(1, 1, 7, 7)
    inside[0, 0, 1, 5] = 1.0  # offset (-2, +2): in the dilated window
    assert torch.equal(local_window_attention(q, outside, v, heads=1, window=3, dilation=2), base)
    assert local_window_attention(q, inside, v, heads=1, window=3, dilation=2)[0, 0, 3, 3].item() == 1.0


@pytest.mark.parametrize("window, dilation", [(1, 1), (3, 1), (3, 2), (5, 1), (3, 3)])
def test_window_attention_equals_masked_global_attention_on_random_spikes(window, dilation):
    q, k, v = ((torch.rand(2, 8, 6, 5) < 0.4).float() for _ in range(3))
    got = local_window_attention(q, k, v, heads=2, window=window, dilation=dilation)
    want = _masked_global_attention(q, k, v, heads=2, window=window, dilation=dilation)
    assert torch.equal(got, want)


def test_heads_are_split_across_dilation_rates():
    model = build_model(tiny_arch(attention=("ls_ssa", "ls_ssa"), heads=(2, 4), dilations=(1, 2)))
    attn = model.stages[0].block0.attn  # 16 channels, 2 heads: head 0 -> rate 1, head 1 -> rate 2
    q, k, v = ((torch.rand(1, 1, 16, 8, 8) < 0.5).float() for _ in range(3))
    attn.qkv = lambda s: (q, k, v)
    attn.attn_neuron, attn.proj = nn.Identity(), nn.Identity()
    got = attn.body(torch.zeros(1, 1, 16, 8, 8))[0]
    head0 = local_window_attention(q[0, :, :8], k[0, :, :8], v[0, :, :8], heads=1, window=3, dilation=1)
    head1 = local_window_attention(q[0, :, 8:], k[0, :, 8:], v[0, :, 8:], heads=1, window=3, dilation=2)
    assert torch.equal(got, torch.cat([head0, head1], dim=1) * SSA_SCALE)


@pytest.mark.parametrize("window, dilation, heads", [(3, 1, 2), (5, 2, 4), (3, 3, 1)])
def test_the_training_form_gives_the_counted_forms_numbers(window, dilation, heads):
    torch.manual_seed(0)
    q, k, v = ((torch.rand(6, 8, 7, 5) < 0.3).float() for _ in range(3))
    with torch.no_grad():
        counted = local_window_attention(q, k, v, heads=heads, window=window, dilation=dilation)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    trained = local_window_attention(*leaves, heads=heads, window=window, dilation=dilation, training=True)
    assert torch.equal(trained, counted)  # whole-number sums: exact in any order
    grad = torch.randn_like(trained)
    trained.backward(grad)
    unfolded = [t.clone().requires_grad_() for t in (q, k, v)]
    from snnas.nas.models.attention import ls_ssa

    with torch.enable_grad():
        m, c, h, w = q.shape
        d = c // heads
        q_tok = unfolded[0].reshape(m, heads, d, h * w).transpose(-1, -2).unsqueeze(-2)
        scores = q_tok @ ls_ssa._windows(unfolded[1], heads, window, dilation).transpose(-1, -2)
        ref = (scores @ ls_ssa._windows(unfolded[2], heads, window, dilation)).squeeze(-2).transpose(-1, -2)
        ref.reshape(m, c, h, w).backward(grad)
    for a, b in zip(leaves, unfolded):
        assert torch.allclose(a.grad, b.grad, atol=1e-5)


def test_only_a_module_in_training_mode_uses_the_training_form(monkeypatch):
    """Tracers (fvcore, torch.jit.trace) run with gradients on but the model in eval mode: they must
    see the counted form, two products over windows."""
    from snnas.nas.models import build_model
    from snnas.nas.models.attention import ls_ssa
    from tests.conftest import tiny_arch

    calls = []
    original = ls_ssa._shifted
    monkeypatch.setattr(ls_ssa, "_shifted", lambda *a, **k: calls.append(1) or original(*a, **k))
    model = build_model(tiny_arch(attention=("ls_ssa", "ls_ssa")))
    x = torch.rand(2, 3, 16, 16)
    model.eval()
    model(x)
    assert not calls
    model.train()
    model(x).sum().backward()
    assert calls
