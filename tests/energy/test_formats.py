"""One model, four file formats, the same counts: names, classes, every count, every convention's energy."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from spikingjelly.activation_based import neuron, surrogate
from spikingjelly.activation_based.functional import set_step_mode
from spikingjelly.activation_based.model import (ms_resnet, parametric_lif_net, qkformer, spike_driven_transformer,
                                                 spikformer)

from snnas.energy.conventions import CONVENTIONS
from snnas.energy.counting import count_ops
from snnas.energy.estimate import estimate
from snnas.energy.profile import load_profile
from snnas.nas.models import ATTENTION, DOWNSAMPLE, MLPS, NEURONS, STEMS, build_model
from tests.cli.test_cli import snnas
from tests.conftest import tiny_arch
from tests.energy.formats import FORMATS, awake, save_every_way

KEYS = ("macs", "ac", "ac_signed", "ac_multi", "ac_coincidence", "dense", "rate_dense", "bias", "neuron_updates",
        "spikes", "residual_adds", "masks", "products", "reductions", "pool", "activations", "nonlinear", "norm",
        "bn", "scalings")


def _table(counts):
    return {layer.name: (layer.type, layer.operand, {k: round(layer.total(k), 6) for k in KEYS})
            for layer in counts.layers}


def _energies(counts):
    fp32 = load_profile("45nm-fp32")
    return {name: round(estimate(counts, fp32, convention=name).total_mj, 15) for name in CONVENTIONS}


def _assert_same_in_every_format(model, x, tmp_path, *, batch_dim=0):
    loaded = save_every_way(awake(model), x, tmp_path, batch_dim=batch_dim)
    assert set(loaded) == set(FORMATS)
    results = {}
    for fmt, (module, module_types) in loaded.items():
        counts = count_ops(module, x, batch_dim=batch_dim, effective=True, module_types=module_types)
        assert counts.unsupported == {}, (fmt, counts.unsupported)
        results[fmt] = (_table(counts), _energies(counts), counts.per_sample)
    reference = results["eager"]
    totals = {k: sum(v[k] for _, _, v in reference[0].values()) for k in ("spikes", "neuron_updates", "dense")}
    assert totals["dense"] > 0 and (totals["spikes"] > 0 or totals["neuron_updates"] == 0)  # spiking models fire
    for fmt, result in results.items():
        assert result[0] == reference[0], fmt
        assert result[1] == reference[1], fmt
        assert result[2], fmt  # classes decided per sample in every format


def _sj_models():
    torch.manual_seed(0)
    mnist = parametric_lif_net.MNISTNet(channels=8, spiking_neuron=neuron.LIFNode, surrogate_function=surrogate.ATan(),
                                        detach_reset=True)
    set_step_mode(mnist, "m")
    return {
        "spikformer": (lambda: spikformer.Spikformer(T=2, img_size_h=32, img_size_w=32, patch_size=4, num_classes=10,
                                                     embed_dims=64, num_heads=4, mlp_ratio=2, depths=1,
                                                     spiking_neuron=neuron.LIFNode), (2, 3, 32, 32), 0),
        "spike_driven_transformer": (lambda: spike_driven_transformer.SpikeDrivenTransformer(
            T=2, num_classes=10, embed_dims=64, num_heads=4, depths=1, mlp_ratio=2, spiking_neuron=neuron.LIFNode),
            (2, 3, 32, 32), 0),
        "qkformer": (lambda: qkformer.QKFormer(T=2, num_classes=10, embed_dims=64, num_heads=(2, 4, 4),
                                               depths=(1, 1, 1), mlp_ratio=2, spiking_neuron=neuron.LIFNode),
                     (2, 3, 32, 32), 0),
        "ms_resnet": (lambda: ms_resnet.MSResNet(T=2, num_classes=10, layers=(1, 1, 1), base_channels=16,
                                                 stem_kernel_size=3, stem_stride=1, spiking_neuron=neuron.LIFNode),
                      (2, 3, 32, 32), 0),
        "parametric_lif_net": (lambda: mnist, (2, 2, 1, 28, 28), 1),
    }


SJ = _sj_models()


def test_a_model_mixing_many_parts_counts_the_same_from_every_format(tmp_path):
    arch = tiny_arch(attention=("dssa", "ls_ssa"), neuron="plif", mlp="gwffn", downsample="spool")
    _assert_same_in_every_format(build_model(arch), torch.rand(2, 3, 16, 16), tmp_path)


def test_a_trained_dssa_model_counts_the_same_from_every_format(tmp_path):
    """Stored firing rates (every trained DSSA model has them): eval computes nothing from the
    input for them. It once computed an unused mean that eager counting charged and a traced or
    exported program dropped (SpikingResformer-DVSG: 0.2549 against 0.2241 mJ)."""
    from snnas.nas.models.attention.dssa import calibrate_rates

    model = awake(build_model(tiny_arch(attention=("dssa", "dssa"), in_channels=2, sum_channel=True)))
    x = torch.rand(2, 2, 16, 16)
    assert calibrate_rates(model, x) == 2
    _assert_same_in_every_format(model, x, tmp_path)


def test_spikingjellys_spike_driven_transformer_counts_the_same_from_every_format(tmp_path):
    make, shape, batch_dim = SJ["spike_driven_transformer"]
    _assert_same_in_every_format(make(), torch.rand(*shape), tmp_path, batch_dim=batch_dim)


KINDS = [("attention", a) for a in ATTENTION.names()] + [("neuron", n) for n in NEURONS.names()] + \
    [("stem", s) for s in STEMS.names()] + [("downsample", d) for d in DOWNSAMPLE.names()] + \
    [("mlp", m) for m in MLPS.names()]


@pytest.mark.slow
@pytest.mark.parametrize("field, kind", KINDS)
def test_every_zoo_kind_counts_the_same_from_every_format(field, kind, tmp_path):
    changes = {"attention": {"attention": (kind, kind)}}.get(field, {field: kind})
    _assert_same_in_every_format(build_model(tiny_arch(**changes)), torch.rand(2, 3, 16, 16), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SJ)
def test_spikingjellys_own_models_count_the_same_from_every_format(name, tmp_path):
    make, shape, batch_dim = SJ[name]
    _assert_same_in_every_format(make(), torch.rand(*shape), tmp_path, batch_dim=batch_dim)


def test_spikingjelly_files_load_in_a_fresh_interpreter_and_the_cli_counts_them(tmp_path):
    make, shape, _ = SJ["spike_driven_transformer"]
    model, x = awake(make()), torch.rand(*shape)
    loaded = save_every_way(model, x, tmp_path)
    expected = count_ops(model, x)
    np.save(tmp_path / "x.npy", x.numpy())
    for name in ("model.pt2", "model.ts"):
        fresh = subprocess.run([sys.executable, "-c", "import sys; from snnas.energy.loading import load_module_file; "
                                f"print(load_module_file(sys.argv[1]).kind)", str(tmp_path / name)],
                               capture_output=True, text=True)
        assert fresh.returncode == 0, fresh.stderr  # spikingjelly's custom ops are registered before loading
        out = snnas("energy", str(tmp_path / name), "--input", str(tmp_path / "x.npy"), "-f", "json")
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["totals"]["neuron_updates"] == expected.total("neuron_updates") > 0
        assert report["totals"]["acs"] == pytest.approx(expected.total("acs"))
    assert loaded


def test_a_scripted_model_with_loops_and_branches_counts_as_it_runs_in_python(tmp_path):
    class Recurrent(torch.nn.Module):  # a hand-written LIF loop, as scripted models often are
        def __init__(self):
            super().__init__()
            self.fc, self.out = torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)

        def forward(self, x):  # [T, B, 4]
            total, v = torch.zeros(x.shape[1], 2), torch.zeros(x.shape[1], 3)
            for t in range(x.shape[0]):
                v = v * 0.5 + self.fc(x[t])
                s = (v >= 1.0).float()
                v = v * (1.0 - s)
                if t > 0:
                    total = total + self.out(s)
            return total

    model, x = Recurrent().eval(), torch.rand(3, 2, 4) + 0.5
    with torch.no_grad():
        model.fc.weight.fill_(0.5)
    torch.jit.script(model).save(str(tmp_path / "loop.ts"))
    from snnas.energy.loading import load_module_file

    eager = count_ops(model, x, batch_dim=1)
    scripted = count_ops(load_module_file(tmp_path / "loop.ts").module, x, batch_dim=1)
    assert _table(scripted) == _table(eager)
    assert eager.total("ac") > 0 and eager.total("macs") == 3 * 4 * 3


def test_a_file_saved_after_a_forward_pass_without_reset_is_noted_and_a_clean_one_is_not(tmp_path):
    """Tracing or exporting a spikingjelly network that has just run saves its membrane potentials
    in the program: every pass then starts from them. The loader says so; a reset network is silent."""
    from spikingjelly.activation_based.functional import reset_net

    from snnas.energy.loading import load_module_file

    model, x = build_model(tiny_arch()).eval(), torch.rand(2, 3, 16, 16)
    for stale in (True, False):
        with torch.no_grad():
            reset_net(model)
            if stale:
                model(x)
            torch.jit.trace(model, (x,), check_trace=False).save(str(tmp_path / "m.ts"))
            reset_net(model)
            if stale:
                model(x)
            torch.export.save(torch.export.export(model, (x,)), tmp_path / "m.pt2")
        for name, how in (("m.ts", "traced"), ("m.pt2", "exported")):
            notes = load_module_file(tmp_path / name).notes
            if stale:
                assert len(notes) == 1 and f"before it was {how} without a reset (spikingjelly's functional.reset_net" in notes[0]
            else:
                assert notes == (), name


class _SingleStepLoop(nn.Module):
    """A neuron called once per time step (snnTorch's loop, spikingjelly single-step, SNASNet)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 16)
        self.lif = neuron.LIFNode()
        self.out = nn.Linear(16, 4)

    def forward(self, x):  # [T, B, 8]
        total = 0
        for step in x:
            total = total + self.out(self.lif(self.fc(step)))
        return total


def test_a_neuron_called_once_per_step_is_one_layer_with_t_steps_in_every_format(tmp_path):
    """torch.export names the 2nd..T-th calls 'lif@1', 'lif@2' ...: they are the same neuron layer
    (an exported SNASNet counted half its neuron updates)."""
    x = torch.rand(4, 2, 8) * 3
    _assert_same_in_every_format(_SingleStepLoop(), x, tmp_path, batch_dim=1)
