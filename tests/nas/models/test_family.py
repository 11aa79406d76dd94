"""Every registered part builds, trains one step and is deterministic after reset_net."""

import itertools

import pytest
import torch
from spikingjelly.activation_based import functional

from snnas.nas.models import ATTENTION, DOWNSAMPLE, MLPS, NEURONS, STEMS, build_model
from tests.conftest import tiny_arch


def _forward_backward_twice(arch):
    model = build_model(arch)
    x = torch.rand(2, arch.in_channels, arch.img_size, arch.img_size)
    logits = model(x)
    assert logits.shape == (2, arch.num_classes)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        functional.reset_net(model)
        first = model(x)
        functional.reset_net(model)
        second = model(x)
    assert torch.equal(first, second)


@pytest.mark.parametrize("attention, neuron, stem", list(itertools.product(ATTENTION, NEURONS, STEMS)))
def test_every_attention_neuron_stem_combination_trains_and_is_reproducible(attention, neuron, stem):
    _forward_backward_twice(tiny_arch(attention=(attention, attention), neuron=neuron, stem=stem))


@pytest.mark.parametrize("residual", ["spike", "membrane"])
@pytest.mark.parametrize("downsample", DOWNSAMPLE.names())
@pytest.mark.parametrize("mlp", MLPS.names())
def test_every_downsampling_mlp_and_residual_style_trains(residual, downsample, mlp):
    _forward_backward_twice(tiny_arch(residual=residual, downsample=downsample, mlp=mlp,
                                      attention=("dssa", "ls_ssa")))


@pytest.mark.parametrize("stem_pool", ["maxpool", "spool"])
@pytest.mark.parametrize("stem_downsample", [0, 1, 2])
def test_sps_scs_sdt_and_spikingformer_stems_reduce_by_the_configured_factor(stem_pool, stem_downsample):
    for stem in ("sps", "scs", "sdt", "spikingformer"):
        arch = tiny_arch(stem=stem, stem_pool=stem_pool, stem_downsample=stem_downsample, depths=(1,),
                         dims=(16,), heads=(2,), attention=("ssa",), patch_sizes=(1,))
        out = build_model(arch).stem(torch.rand(2, 1, 3, 16, 16))
        assert out.shape == (2, 1, 16, 16 >> stem_downsample, 16 >> stem_downsample)


@pytest.mark.parametrize("order", ["qk_first", "kv_first"])
def test_both_matmul_orders_give_the_same_attention(order):
    arch = tiny_arch(attn_order="qk_first")
    reference = build_model(arch).eval()
    other = build_model(arch.replace(attn_order=order)).eval()
    other.load_state_dict(reference.state_dict())
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(reference(x), other(x), atol=1e-5)


def test_event_frames_with_their_own_time_axis_are_accepted():
    arch = tiny_arch(in_channels=2)
    logits = build_model(arch)(torch.rand(5, 3, 2, 16, 16))  # [T=5, B=3, C, H, W]
    assert logits.shape == (3, arch.num_classes)


@pytest.mark.parametrize("shape", [(3, 16, 16), (2, 1, 16, 16), (2, 3, 8, 8)])
def test_wrong_input_shapes_are_refused_with_the_shape(shape):
    with pytest.raises(ValueError, match=r"got shape"):
        build_model(tiny_arch())(torch.rand(*shape))


def _outputs_by_kind(model, x):
    seen = []

    def hook(module, _inputs, output):
        seen.append((type(module).OUTPUT_KIND, output.detach()))

    handles = [m.register_forward_hook(hook) for m in model.modules() if hasattr(type(m), "OUTPUT_KIND")]
    model(x)
    for h in handles:
        h.remove()
    return seen


@pytest.mark.parametrize("attention", ATTENTION.names())
def test_spike_tensors_are_binary_or_ternary_where_the_paper_says(attention):
    model = build_model(tiny_arch(attention=(attention, attention)))
    seen = _outputs_by_kind(model, torch.rand(2, 3, 16, 16) * 4)
    kinds = {k for k, _ in seen}
    for kind, out in seen:
        if kind == "binary":
            assert set(out.unique().tolist()) <= {0.0, 1.0}
        elif kind == "ternary":
            assert set(out.unique().tolist()) <= {-1.0, 0.0, 1.0}
            assert (out == -1).any() or (out == 1).any()
        else:
            assert (out >= 0).all()
    assert ("ternary" in kinds) == (attention == "a2os2a")
    assert ("real" in kinds) == (attention == "a2os2a")  # A2OS2A's ReLU keys


def test_a2os2a_uses_binary_queries_relu_keys_and_ternary_values():
    attn = build_model(tiny_arch(attention=("a2os2a", "a2os2a"))).stages[0].block0.attn
    assert [type(attn.q_neuron).OUTPUT_KIND, type(attn.k_neuron).OUTPUT_KIND, type(attn.v_neuron).OUTPUT_KIND] \
        == ["binary", "real", "ternary"]


def test_spike_shortcut_makes_integer_valued_block_inputs():
    model = build_model(tiny_arch(residual="spike"))
    stem_out = model.stem(model.frames(torch.rand(4, 3, 16, 16) * 4))
    values = set(stem_out.unique().tolist())
    assert values <= {0.0, 1.0, 2.0} and 2.0 in values  # spike + spike from the SPS position embedding


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_models_run_on_cuda():
    for attention in ATTENTION:
        model = build_model(tiny_arch(attention=(attention, attention))).cuda()
        logits = model(torch.rand(2, 3, 16, 16, device="cuda"))
        logits.sum().backward()
        assert logits.is_cuda and torch.isfinite(logits).all()
