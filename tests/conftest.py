import os

import pytest
import torch

from snnas.nas.models.arch import ArchConfig


@pytest.fixture(autouse=True, scope="session")
def _event_cache(tmp_path_factory):
    """Event frames (digits-dvs and the readers' tests) cached once per session, never in the user's cache."""
    os.environ["SNNAS_CACHE"] = str(tmp_path_factory.mktemp("snnas-cache"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny_arch(**changes) -> ArchConfig:
    """A two-stage 16x16 network small enough to run hundreds of times in the suite."""
    base = dict(img_size=16, in_channels=3, num_classes=4, time_steps=2, stem="sps", stem_downsample=1,
                depths=(1, 1), dims=(16, 32), heads=(2, 4), attention=("ssa", "ssa"), patch_sizes=(2, 1),
                downsample="conv", window=3, dilations=(1, 2), mlp="mlp", mlp_ratio=2, group_width=8)
    fixed_reduction = {"conv3": 0, "conv7": 2, "qkformer": 2}  # these stems reduce by a fixed factor
    if changes.get("stem") in fixed_reduction:
        base["stem_downsample"] = fixed_reduction[changes["stem"]]
    base.update(changes)
    return ArchConfig(**base)
