"""DSSA's firing-rate scaling buffers: set by the first training batch, EMA in training, fixed in eval."""

import math

import torch

from snnas.nas.models import build_model
from snnas.nas.models.attention.dssa import RATE_MOMENTUM
from tests.conftest import tiny_arch


def _dssa():
    model = build_model(tiny_arch(attention=("dssa", "dssa"), heads=(2, 4), patch_sizes=(2, 1)))
    return model.stages[0].block0.attn  # 16 channels, 2 heads of 8, 8x8 map, patch 2


def _spikes(rate):
    return (torch.rand(2, 3, 16, 8, 8) < rate).float()


def _head_rates(s):
    return s.reshape(2, 3, 2, 8, 64).mean(dim=(0, 1, 3, 4))


def test_first_training_batch_initialises_the_rate_of_s():
    attn = _dssa().train()
    s = _spikes(0.3)
    attn.body(s)
    assert bool(attn.rates_initialised)
    assert torch.allclose(attn.rate_s, _head_rates(s))
    assert (attn.rate_a > 0).all()


def test_later_training_batches_update_an_exponential_moving_average():
    attn = _dssa().train()
    s1, s2 = _spikes(0.3), _spikes(0.6)
    attn.body(s1)
    attn.body(s2)
    want = RATE_MOMENTUM * _head_rates(s1) + (1 - RATE_MOMENTUM) * _head_rates(s2)
    assert torch.allclose(attn.rate_s, want)


def test_eval_leaves_the_buffers_fixed():
    attn = _dssa().train()
    attn.body(_spikes(0.3))
    frozen = (attn.rate_s.clone(), attn.rate_a.clone())
    attn.eval()
    with torch.no_grad():
        attn.body(_spikes(0.9))
    assert torch.equal(attn.rate_s, frozen[0]) and torch.equal(attn.rate_a, frozen[1])


def test_untrained_model_in_eval_uses_batch_rates_and_stores_nothing():
    attn = _dssa().eval()
    with torch.no_grad():
        out = attn.body(_spikes(0.3))
    assert torch.isfinite(out).all()
    assert not bool(attn.rates_initialised) and attn.rate_s.abs().sum() == 0


def test_attention_map_is_scaled_by_inverse_sqrt_of_rate_times_head_width():
    attn = _dssa().train()
    seen = {}
    attn.attn_neuron.register_forward_hook(lambda m, i, o: seen.setdefault("pre", i[0].detach()))
    s = _spikes(0.3)
    attn.body(s)
    y = attn.w(s).reshape(2, 3, 2, 16, 16)[:, :, :, :8]  # Y1 per head: [T, B, h, d, N']
    raw = y.transpose(-1, -2) @ s.reshape(2, 3, 2, 8, 64)
    scale = 1 / torch.sqrt(_head_rates(s) * 8)
    assert torch.allclose(seen["pre"], raw * scale.view(1, 1, 2, 1, 1), atol=1e-5)
    assert math.isclose(scale[0].item(), (attn.rate_s[0].item() * 8) ** -0.5, rel_tol=1e-5)


def test_stored_rates_survive_saving_and_loading_and_evaluation_takes_one_fixed_path():
    model = build_model(tiny_arch(attention=("dssa", "dssa")))
    model.train()(torch.rand(2, 3, 16, 16))
    fresh = build_model(tiny_arch(attention=("dssa", "dssa")))
    fresh.load_state_dict(model.state_dict())
    assert fresh.stages[0].block0.attn._initialised  # the Python flag follows the loaded buffer
    program = torch.export.export(fresh.eval(), (torch.rand(2, 3, 16, 16),))  # no branch on a tensor's value
    assert program.module()(torch.rand(2, 3, 16, 16)).shape == (2, 4)


def test_calibration_stores_rates_as_a_first_training_step_and_leaves_batchnorm_alone():
    from snnas.nas.models.attention.dssa import calibrate_rates

    model = build_model(tiny_arch(attention=("dssa", "dssa"))).eval()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    assert calibrate_rates(model, torch.rand(4, 3, 16, 16)) == 2
    attn = model.stages[0].block0.attn
    assert attn._initialised and bool(attn.rates_initialised) and torch.isfinite(attn.rate_s).all()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert not model.training and calibrate_rates(model, torch.rand(4, 3, 16, 16)) == 0
