"""The proxy's training recipe and its single evaluation pass."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional
from torch import nn

from snnas.energy.counting import count_ops, is_neuron
from snnas.nas.data import ProxySplit, load_dataset
from snnas.nas.search.proxy import ProxySettings, _lr, accuracy, build_candidate, evaluate, scale_batch_norms, train, train_proxy
from tests.conftest import tiny_arch

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def split():
    return ProxySplit.make(load_dataset("digits"), train_size=96, val_size=40, resolution=16)


def _arch(split):
    return tiny_arch(in_channels=split.channels, num_classes=split.num_classes)


def test_learning_rate_warms_up_over_its_share_of_steps_then_decays_to_zero():
    s = ProxySettings(steps=200, lr=0.01, warmup_fraction=0.1)
    assert _lr(0, s) == pytest.approx(0.01 / 20)
    assert _lr(19, s) == pytest.approx(0.01)  # 20 warm-up steps
    assert _lr(20, s) == pytest.approx(0.01)  # cosine starts at the peak
    assert _lr(110, s) == pytest.approx(0.005)  # half way through the decay
    assert _lr(199, s) < 0.01 * 1e-3
    assert _lr(0, ProxySettings(steps=4, warmup_fraction=0.1)) == pytest.approx(0.01)  # no warm-up left


def test_batch_norm_gain_sets_every_scale_and_raises_early_firing(split):
    arch = _arch(split)
    model = build_candidate(arch, seed=0, device=CPU)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(torch.all(m.weight == 1) for m in norms)

    def firing(m):  # in training mode, as the first steps see it (batch statistics)
        from spikingjelly.activation_based import functional

        spikes, total = [], []

        def hook(module, args, out):  # returns None: the output is left as it is
            spikes.append(float((out != 0).sum()))
            total.append(out.numel())

        hooks = [n.register_forward_hook(hook) for n in m.modules() if is_neuron(n)]
        m.train()
        with torch.no_grad():
            m(split.val_x[:16])
        functional.reset_net(m)
        for h in hooks:
            h.remove()
        return sum(spikes) / sum(total)

    before = firing(model)
    scale_batch_norms(model, 2.0)
    assert all(torch.all(m.weight == 2) for m in norms)
    assert firing(model) > 1.5 * before  # the point of the gain: more neurons above threshold at the start


def test_one_pass_evaluation_gives_the_accuracy_and_counts_of_separate_passes(split):
    settings = ProxySettings(steps=3, batch_size=16, energy_samples=12, eval_batch=16)
    model = build_candidate(_arch(split), seed=0, device=CPU)
    train(model, split, settings, CPU)
    calls = []
    handle = model.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    scores, counts, count_s = evaluate(model, split, settings, CPU)
    handle.remove()
    assert calls == [12, 16, 12]  # 40 held-out images: 12 counted, then 16 + 12, none run twice
    assert scores["accuracy"] == accuracy(model, split.val_x, split.val_y, batch=16, device=CPU)
    model.eval()
    functional.reset_net(model)
    with torch.no_grad():
        logits = model(split.val_x)
    functional.reset_net(model)
    assert scores["val_loss"] == pytest.approx(float(F.cross_entropy(logits, split.val_y)), rel=1e-5)
    right = F.softmax(logits, dim=1).gather(1, split.val_y[:, None]).mean()
    assert scores["soft_accuracy"] == pytest.approx(float(right), rel=1e-5)
    separate = count_ops(model, split.val_x[:12])
    assert counts.total("acs") == pytest.approx(separate.total("acs"))
    assert counts.total("macs") == pytest.approx(separate.total("macs"))
    assert count_s > 0


def test_train_proxy_reports_time_per_part_and_zero_cost_on_pytorch_init(split):
    settings = ProxySettings(steps=2, batch_size=16, energy_samples=8, zero_cost_batch=8)
    result = train_proxy(_arch(split), split, settings, device=CPU)
    assert min(result.train_time_s, result.eval_time_s, result.count_time_s, result.score_time_s) > 0
    # the zero-cost score is taken before the gain, so it matches SNASNet's setting whatever the gain
    other = train_proxy(_arch(split), split, ProxySettings(**{**settings.__dict__, "bn_init_gain": 1.0}), device=CPU)
    assert result.zero_cost == pytest.approx(other.zero_cost)


def test_cli_defaults_are_the_proxy_defaults():
    from snnas.cli.search import search

    params = inspect.signature(search).parameters
    d = ProxySettings()
    assert (params["steps"].default.default, params["batch_size"].default.default, params["lr"].default.default,
            params["bn_gain"].default.default, params["runs"].default.default, params["score"].default.default) == \
        (d.steps, d.batch_size, d.lr, d.bn_init_gain, d.runs, d.score)


def test_several_runs_average_independent_single_runs(split):
    """Run r of a candidate is the single run with seed + r: the cache of the benchmarks and a rerun
    of a trial can rebuild the mean from single runs."""
    import math
    from dataclasses import replace

    two = ProxySettings(steps=3, batch_size=16, energy_samples=8, zero_cost_batch=8, runs=2)
    steps = []
    both = train_proxy(_arch(split), split, two, device=CPU, on_step=lambda d, n: steps.append((d, n)))
    assert steps == [(i, 6) for i in range(1, 7)]
    single = [train_proxy(_arch(split), split, replace(two, runs=1, seed=s), device=CPU, zero_cost=False)
              for s in (0, 1)]
    assert both.runs == 2
    assert both.accuracy == pytest.approx((single[0].accuracy + single[1].accuracy) / 2)
    assert both.val_loss == pytest.approx((single[0].val_loss + single[1].val_loss) / 2)
    assert both.likelihood == pytest.approx(math.exp(-both.val_loss))
    assert both.objective("likelihood") == both.likelihood and both.objective("accuracy") == both.accuracy
    assert both.counts.total("spikes") == single[0].counts.total("spikes")  # energy: the first run's network
    assert {"runs", "score"}.isdisjoint(replace(two, runs=1, score="accuracy").identity())  # older studies match


def test_weight_average_ends_in_the_model_and_is_left_out_of_old_identities(split):
    from snnas.nas.models import build_model

    assert "ema" not in ProxySettings().identity()  # studies made before the field still resume
    assert ProxySettings(ema=0.9).identity()["ema"] == 0.9
    settings = ProxySettings(steps=6, batch_size=16, lr=0.05)
    plain, averaged = (build_model(_arch(split)) for _ in range(2))
    averaged.load_state_dict(plain.state_dict())
    start = [p.detach().clone() for p in plain.parameters()]
    train(plain, split, settings, CPU)
    steps = []
    train(averaged, split, ProxySettings(**{**settings.__dict__, "ema": 0.5}), CPU, on_step=lambda d, n: steps.append((d, n)))
    assert steps == [(i, 6) for i in range(1, 7)]
    for s, p, a in zip(start, plain.parameters(), averaged.parameters()):
        if not torch.equal(s, p):  # a trained weight: the model ends on the average, not the last step
            assert not torch.equal(a, p)
            break
    else:
        pytest.fail("no weight moved")
