"""Published variants of the seed architectures, as data: name -> ZooEntry.

Each entry carries the ArchConfig that rebuilds the network, the parameter counting
convention of its paper, and the paper's figures where the paper states them (``None`` where
it does not; our own count is always computed, never copied). Sources:

* Spikformer: Zhou et al., ICLR 2023 (camera-ready), Table 2 (ImageNet: params, power, top-1),
  Table 3 (CIFAR-10/100), Table 4 and section 4.2 (event data); ImageNet q/k/v are bias-free 1x1
  convs, CIFAR q/k/v are Linear with bias; matmul order Q(K^T V) on ImageNet. Attention scale:
  0.125 on ImageNet and CIFAR (section 4.1; ZK-Zhou/spikformer imagenet/model.py, cifar10/model.py),
  0.25 in the official CIFAR10-DVS code (cifar10dvs/model.py) where section 4.2 says "learnable".
* Spikformer V2: Zhou et al., arXiv 2401.02020 (SCS stem; its layers are an interpretation).
* SpikingResformer: Shi, Hao & Yu, CVPR 2024, Table 1 (params exclude BatchNorm).
* A2OS2A: Guo et al., CVPR 2025 (arXiv 2503.00226): Spike-driven Transformer backbone (its
  stem, membrane shortcut and head neuron) of the same sizes as Spikformer 8-512 / 10-512;
  (Q K^T) V as every available description computes it; the paper's ternary neuron.
* Spikingformer: Zhou et al., arXiv 2304.11954: Spikformer's shapes with membrane (MS) shortcuts
  and its own tokenizer; its public ImageNet log is the energy regression case of ``energy``.
* Spike-driven Transformer: Yao et al., NeurIPS 2023, Table 3 and the official repository's
  README (BICLab/Spike-Driven-Transformer); layers as its code. SDSA has no scale (module/ms_conv.py
  declares ``self.scale = 0.125`` and never uses it). 8-768's figures are at 288 x 288 inference.
* QKFormer: Zhou et al., NeurIPS 2024, ImageNet table (HST-10-384 / 512 / 768); layers as the
  official code (zhouchenlin2096/QKFormer imagenet/qkformer.py; its SSA stage scales by 0.125).
* LSFormer: arXiv 2605.13887 (abstract only public): an snnas configuration, not a published one.

Each entry says where its layers come from (``source``: official code, paper table,
third-party, snnas's interpretation) and where its published figures come from (``cited``);
``tests/nas/models/test_zoo.py`` checks the figures against a table that cites them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from snnas.nas.models.arch import ArchConfig
from snnas.nas.models.network import build_model
from snnas.nas.models.params import count_parameters


@dataclass(frozen=True)
class ZooEntry:
    name: str
    arch: ArchConfig
    paper: str
    convention: str  # parameter convention of the paper: "all" or "no_bn" (see nas.models.params)
    published_params_m: float | None = None  # millions, as printed in the paper
    published: dict[str, float] = field(default_factory=dict)  # e.g. {"imagenet_top1": 74.81}
    interpretation: str = ""  # what is snnas's reading rather than the paper's statement
    source: str = "official code"  # where the layers come from: official code | paper | third-party | snnas
    cited: str = ""  # where the published figures come from (table, repository file)
    train_img_size: int | None = None  # side the official code trains at, where the published figures
    #                                    are evaluated at another one (arch.img_size)

    def build(self):
        return build_model(self.arch)

    def params_m(self, convention: str | None = None) -> float:
        """Our parameter count in millions (meta tensors: nothing is allocated)."""
        import torch

        with torch.device("meta"):
            model = self.build()
        return count_parameters(model, convention=convention or self.convention) / 1e6


SPIKFORMER = "Spikformer (Zhou et al., ICLR 2023)"
SPIKFORMER_V2 = "Spikformer V2 (Zhou et al., arXiv 2401.02020)"
RESFORMER = "SpikingResformer (Shi et al., CVPR 2024)"
A2OS2A = "A2OS2A Spiking Transformer (Guo et al., CVPR 2025)"
LSFORMER = "LSFormer (arXiv 2605.13887)"
SPIKINGFORMER = "Spikingformer (Zhou et al., arXiv 2304.11954)"
SDT = "Spike-driven Transformer (Yao et al., NeurIPS 2023)"
QKFORMER = "QKFormer (Zhou et al., NeurIPS 2024)"
SOURCES = ("official code", "paper", "third-party", "snnas")

IMAGENET = dict(img_size=224, num_classes=1000, time_steps=4)
CIFAR10 = dict(img_size=32, num_classes=10, time_steps=4)


def _spikformer_imagenet(depth: int, dim: int, **kw) -> ArchConfig:
    return ArchConfig(**IMAGENET, stem="sps", stem_downsample=4, depths=(depth,), dims=(dim,),
                      heads=(12 if dim == 768 else 8,), attention=("ssa",), patch_sizes=(1,),
                      attn_order="kv_first", residual="spike", mlp="mlp", qkv_bias=False,
                      proj_bias=True, head_bias=True, **kw)


def _spikformer_cifar(depth: int, dim: int) -> ArchConfig:
    return ArchConfig(**CIFAR10, stem="sps", stem_downsample=2, depths=(depth,), dims=(dim,),
                      heads=(12 if dim == 384 else 8,), attention=("ssa",), patch_sizes=(1,),
                      attn_order="qk_first", residual="spike", mlp="mlp", qkv_bias=True,
                      proj_bias=True, head_bias=True)


def _spikformer_dvs(classes: int, heads: int) -> ArchConfig:
    """Spikformer-2-256 on event frames: 2 polarities at 128 x 128, 16 time steps; 16 heads for
    CIFAR10-DVS, 8 for DVS128 Gesture (section 4.2); attention scale 0.25 (official cifar10dvs/model.py)."""
    return ArchConfig(img_size=128, in_channels=2, num_classes=classes, time_steps=16, stem="sps", stem_downsample=4,
                      depths=(2,), dims=(256,), heads=(heads,), attention=("ssa",), patch_sizes=(1,),
                      attn_order="qk_first", attn_scale=0.25, residual="spike", mlp="mlp", qkv_bias=False,
                      proj_bias=True, head_bias=True)


def _resformer(dims: tuple[int, int, int], heads: tuple[int, int, int], *, cifar: bool = False) -> ArchConfig:
    data = dict(CIFAR10, stem="conv3", stem_downsample=0) if cifar else dict(IMAGENET, stem="conv7", stem_downsample=2)
    return ArchConfig(**data, depths=(1, 2, 3), dims=dims, heads=heads, attention=("dssa",) * 3,
                      patch_sizes=(4, 2, 1), downsample="conv", residual="membrane", mlp="gwffn",
                      group_width=64, surrogate="atan", qkv_bias=False, proj_bias=False, head_bias=False)


def _resformer_dvs(dims: tuple[int, int, int], classes: int, **kw) -> ArchConfig:
    """SpikingResformer on event frames (official configs/direct_training): 2 polarities resized to
    64 x 64 plus their sum as a third input channel, 16 time steps, the CIFAR stem."""
    return _resformer(dims, (1, 3, 6), cifar=True).replace(img_size=64, in_channels=2, sum_channel=True,
                                                           num_classes=classes, time_steps=16, **kw)


def _sdt(depth: int, dim: int, attention: str = "sdsa", **kw) -> ArchConfig:
    """Spike-driven Transformer backbone: MS-SPS stem, membrane shortcut, neuron before the head."""
    return ArchConfig(**IMAGENET, stem="sdt", stem_downsample=4, depths=(depth,), dims=(dim,), heads=(8,),
                      attention=(attention,), patch_sizes=(1,), residual="membrane", mlp="mlp", qkv_bias=False,
                      proj_bias=True, head_bias=True, head_neuron=True, **kw)


def _a2os2a(depth: int) -> ArchConfig:
    return _sdt(depth, 512, "a2os2a", attn_order="qk_first", neuron="lif", ternary="a2os2a")


def _qkformer(dim: int, heads: int) -> ArchConfig:
    """Hierarchical: Q-K token attention in stages 1-2, SSA in stage 3; widths D/4, D/2, D."""
    return ArchConfig(**IMAGENET, stem="qkformer", stem_downsample=2, depths=(1, 2, 7),
                      dims=(dim // 4, dim // 2, dim), heads=(heads,) * 3, attention=("qk", "qk", "ssa"),
                      patch_sizes=(1, 1, 1), downsample="qkformer", attn_order="kv_first", residual="spike",
                      mlp="mlp", qkv_bias=False, proj_bias=True, head_bias=True)


SPIKFORMER_T = "Spikformer Table 2 (ImageNet: params, power, top-1)"
SPIKFORMER_C = "Spikformer Table 3 (CIFAR-10 / CIFAR-100 top-1, T=4)"
SDT_T = "SDT Table 3 (ImageNet, T=4); official README results table"
QKF_T = "QKFormer Table 2 (ImageNet, T=4)"
RESFORMER_T = "SpikingResformer Table 1 (ImageNet: params without BatchNorm, energy, top-1)"
SDT_288 = ("SDT Table 3 and official README (ImageNet, T=4): evaluated at 288 x 288 (README: firing_num.py "
           "--large-valid, Resize 320 + CenterCrop 288); Spikingformer arXiv 2304.11954v5 Table 1 lists its test "
           "resolution as 288 x 288")
DVS_PARAMS = ("2.57 M as later tables list Spikformer-2-256 (e.g. the CML README); the Spikformer paper's "
              "section 4.2 says 2.59 M")


_ENTRIES = [
    ZooEntry("spikformer-8-384", _spikformer_imagenet(8, 384), SPIKFORMER, "all", 16.81,
             {"imagenet_top1": 70.24, "energy_mj": 7.734}, cited=SPIKFORMER_T),
    ZooEntry("spikformer-6-512", _spikformer_imagenet(6, 512), SPIKFORMER, "all", 23.37,
             {"imagenet_top1": 72.46, "energy_mj": 9.417}, cited=SPIKFORMER_T),
    ZooEntry("spikformer-8-512", _spikformer_imagenet(8, 512), SPIKFORMER, "all", 29.68,
             {"imagenet_top1": 73.38, "energy_mj": 11.577}, cited=SPIKFORMER_T),
    ZooEntry("spikformer-10-512", _spikformer_imagenet(10, 512), SPIKFORMER, "all", 36.01,
             {"imagenet_top1": 73.68, "energy_mj": 13.899}, cited=SPIKFORMER_T),
    ZooEntry("spikformer-8-768", _spikformer_imagenet(8, 768), SPIKFORMER, "all", 66.34,
             {"imagenet_top1": 74.81, "energy_mj": 21.477}, cited=SPIKFORMER_T),
    ZooEntry("spikingformer-8-384", _spikformer_imagenet(8, 384).replace(residual="membrane", stem="spikingformer"),
             SPIKINGFORMER, "all", 16.81, {"imagenet_top1": 72.45, "energy_mj": 4.69},
             cited="Spikingformer Table 1 (ImageNet 8-384); rates: none published (its README gives 3.88 G SOPs)"),
    ZooEntry("spikingformer-8-512", _spikformer_imagenet(8, 512).replace(residual="membrane", stem="spikingformer"),
             SPIKINGFORMER, "all", 29.68, {"imagenet_top1": 74.79, "energy_mj": 7.46},
             cited="Spikingformer Table 1 (ImageNet 8-512); energy: its public log"),
    ZooEntry("spikingformer-8-768", _spikformer_imagenet(8, 768).replace(residual="membrane", stem="spikingformer"),
             SPIKINGFORMER, "all", 66.34, {"imagenet_top1": 75.85, "energy_mj": 13.68},
             cited="Spikingformer Table 1 (ImageNet 8-768); energy: its public log "
                   "(imagenet/energy_consumption_logs, 13.6589 mJ)"),
    ZooEntry("spikformer-4-256", _spikformer_cifar(4, 256), SPIKFORMER, "all", 4.15,
             {"cifar10_top1": 93.94, "cifar100_top1": 75.96}, cited=SPIKFORMER_C),
    ZooEntry("spikformer-2-384", _spikformer_cifar(2, 384), SPIKFORMER, "all", 5.76,
             {"cifar10_top1": 94.80, "cifar100_top1": 76.95}, cited=SPIKFORMER_C),
    ZooEntry("spikformer-4-384", _spikformer_cifar(4, 384), SPIKFORMER, "all", 9.32,
             {"cifar10_top1": 95.19, "cifar100_top1": 77.86}, cited=SPIKFORMER_C),
    ZooEntry("spikformer-cifar10dvs-2-256", _spikformer_dvs(10, 16), SPIKFORMER, "all", 2.57, {"cifar10dvs_top1": 80.9},
             interpretation="attention scale fixed at 0.25 as the official cifar10dvs/model.py; the paper (section 4.2) "
                            "learns it (attn_scale_learnable)",
             cited="Spikformer Table 4 (CIFAR10-DVS, T=16); params: " + DVS_PARAMS),
    ZooEntry("spikformer-gesture-2-256", _spikformer_dvs(11, 8), SPIKFORMER, "all", 2.57, {"gesture_top1": 98.3},
             interpretation="no official DVS128 Gesture code: 8 heads as section 4.2, attention scale 0.25 as the "
                            "official CIFAR10-DVS code (the paper learns it; Spikingformer's gesture code uses 0.125)",
             cited="Spikformer Table 4 (DVS128 Gesture, T=16); params: " + DVS_PARAMS),
    ZooEntry("spikformer-v2-8-512", _spikformer_imagenet(8, 512).replace(stem="scs"), SPIKFORMER_V2, "all",
             None, {"imagenet_top1": 80.38},
             interpretation="SCS layer list not public: snnas's strided + supplementary conv stem", source="snnas",
             cited="Spikformer V2 ImageNet table (8-512, T=4)"),
    ZooEntry("spikingresformer-ti", _resformer((64, 192, 384), (1, 3, 6)), RESFORMER, "no_bn", 11.14,
             {"imagenet_top1": 74.34, "energy_mj": 2.46}, cited=RESFORMER_T),
    ZooEntry("spikingresformer-s", _resformer((64, 256, 512), (1, 4, 8)), RESFORMER, "no_bn", 17.76,
             {"imagenet_top1": 75.95, "energy_mj": 3.37}, cited=RESFORMER_T),
    ZooEntry("spikingresformer-m", _resformer((64, 384, 768), (1, 6, 12)), RESFORMER, "no_bn", 35.52,
             {"imagenet_top1": 77.24, "energy_mj": 5.46}, cited=RESFORMER_T),
    ZooEntry("spikingresformer-l", _resformer((128, 512, 1024), (2, 8, 16)), RESFORMER, "no_bn", None,
             {"imagenet_top1": 78.77}, cited=RESFORMER_T),
    ZooEntry("spikingresformer-cifar", _resformer((64, 192, 384), (1, 3, 6), cifar=True), RESFORMER, "no_bn",
             None, interpretation="CIFAR stem of the paper's transfer experiment; no direct-trained CIFAR-10 figure is "
                                  "published (its 97.40% is ImageNet-pretrained transfer at 128x128)"),
    ZooEntry("spikingresformer-cifar10dvs", _resformer_dvs((64, 192, 384), 10), RESFORMER, "no_bn", None,
             interpretation="frames resized 128 -> 64 by area averaging (the official code resizes bilinearly with "
                            "antialiasing); no direct-trained figure is published with the code",
             cited="official configs/direct_training/cifar10dvs.yaml (spikingresformer_cifar, T=16, 3x64x64)"),
    ZooEntry("spikingresformer-dvsg", _resformer_dvs((32, 96, 192), 11, neuron="plif", group_width=32), RESFORMER,
             "no_bn", None,
             interpretation="frames resized 128 -> 64 by area averaging (the official code resizes bilinearly with "
                            "antialiasing); no direct-trained figure is published with the code",
             cited="official models/spikingresformer.py spikingresformer_dvsg, configs/direct_training/"
                   "dvs128gesture.yaml (T=16, 3x64x64)"),
    ZooEntry("a2os2a-8-512", _a2os2a(8), A2OS2A, "all", None,
             interpretation="no official code: output neuron and block wiring follow the Spike-driven Transformer",
             source="third-party"),
    ZooEntry("a2os2a-10-512", _a2os2a(10), A2OS2A, "all", None, {"imagenet_top1": 78.66},
             interpretation="no official code: output neuron and block wiring follow the Spike-driven Transformer",
             source="third-party", cited="A2OS2A Table (ImageNet, T=4)"),
    ZooEntry("sdt-8-384", _sdt(8, 384), SDT, "all", 16.81, {"imagenet_top1": 72.28, "energy_mj": 3.90}, cited=SDT_T),
    ZooEntry("sdt-6-512", _sdt(6, 512), SDT, "all", 23.37, {"imagenet_top1": 74.11, "energy_mj": 3.56}, cited=SDT_T),
    ZooEntry("sdt-8-512", _sdt(8, 512), SDT, "all", 29.68, {"imagenet_top1": 74.57, "energy_mj": 4.50}, cited=SDT_T),
    ZooEntry("sdt-10-512", _sdt(10, 512), SDT, "all", 36.01, {"imagenet_top1": 74.66, "energy_mj": 5.53}, cited=SDT_T),
    ZooEntry("sdt-8-768", _sdt(8, 768).replace(img_size=288), SDT, "all", 66.34,
             {"imagenet_top1": 77.07, "energy_mj": 6.09}, cited=SDT_288, train_img_size=224,
             interpretation="built at 288 x 288, where its published figures are measured; the official code trains "
                            "it at 224 (conf/imagenet/8_768_300E_t4.yml): snnas train sdt-8-768 --resolution 224"),
    ZooEntry("qkformer-10-384", _qkformer(384, 6), QKFORMER, "all", 16.47, {"imagenet_top1": 78.80, "energy_mj": 15.13},
             cited=QKF_T),
    ZooEntry("qkformer-10-512", _qkformer(512, 8), QKFORMER, "all", 29.08, {"imagenet_top1": 82.04, "energy_mj": 21.99},
             cited=QKF_T),
    ZooEntry("qkformer-10-768", _qkformer(768, 12), QKFORMER, "all", 64.96, {"imagenet_top1": 84.22, "energy_mj": 38.91},
             cited=QKF_T),
    ZooEntry("lsformer-4-384",
             ArchConfig(img_size=64, num_classes=200, time_steps=4, stem="sps", stem_downsample=3, stem_pool="spool",
                        depths=(4,), dims=(384,), heads=(6,), attention=("ls_ssa",), patch_sizes=(1,), window=3,
                        dilations=(1, 2, 3), residual="spike", mlp="mlp", qkv_bias=False, proj_bias=True),
             LSFORMER, "all", None, source="snnas",
             interpretation="Tiny-ImageNet 64x64 setting; window 3, dilations (1, 2, 3) and SPooling are snnas's reading of the abstract"),
]

ZOO: dict[str, ZooEntry] = {e.name: e for e in _ENTRIES}


def get(name: str) -> ZooEntry:
    try:
        return ZOO[name]
    except KeyError:
        raise KeyError(f"unknown zoo model {name!r}; see `snnas zoo` for the list") from None
