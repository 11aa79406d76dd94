import optuna
import pytest
import yaml

from snnas.nas.models import check_parts
from snnas.nas.models.arch import ArchConfig, ArchConfigError
from snnas.nas.models.registries import STEMS
from snnas.nas.search.space import DataShape, SearchSpace, SpaceError

SHAPE = DataShape(16, 1, 10)


def _default():
    return yaml.safe_load(open("space.yaml"))


def _with(path, value):
    data = _default()
    node = data
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return data


@pytest.mark.parametrize("path, value, where", [
    ("global.neuronn", ["lif"], "global.neuronn"),  # unknown key
    ("global.neuron", ["lif", "lfi"], "global.neuron[1]"),  # misspelt choice
    ("per_stage.attention", ["ssa", "softmax"], "per_stage.attention[1]"),  # not a registered name
    ("per_stage.depth", {"low": 3, "high": 2}, "per_stage.depth"),  # empty range
    ("per_stage.heads", [], "per_stage.heads"),  # empty list
    ("per_stage.heads", ["two"], "per_stage.heads[0]"),  # wrong type
    ("global.time_steps", {"low": 1}, "global.time_steps"),  # half a range
    ("global.residual", {"low": 1, "high": 2}, "global.residual"),  # range on a name
    ("per_stage.head_dim", [6, 8], "per_stage.head_dim"),  # sps needs widths divisible by 8
    ("per_stage.depth", KeyError, "per_stage.depth"),  # missing
    ("global.qkv_bias", "yes", "global.qkv_bias"),
    ("global.dilations", [[1], [0, 2]], "global.dilations[1]"),
    ("global.window", [3, 4], "global.window[1]"),  # ArchConfig's own rule: odd windows
    ("global.window", {"low": 3, "high": 5}, "global.window"),  # a range that holds an even window
    ("global.v_threshold", [1.0, "high"], "global.v_threshold[1]"),  # a number is needed
    ("global.v_threshold", [1.0, -1.0], "global.v_threshold[1]"),  # positive
    ("global.tau", [2.0, float("nan")], "global.tau[1]"),  # finite
    ("global.tau", [0.5], "global.tau"),  # ArchConfig's own rule: tau >= 1
    ("global.tau", {"low": 1, "high": 3}, "global.tau"),  # ranges are for integers
    ("global.ternary", ["a2os2a", "binary"], "global.ternary[1]"),
])
def test_each_kind_of_bad_space_names_the_key(path, value, where):
    with pytest.raises(SpaceError) as info:
        SearchSpace.from_dict(_with(path, value))
    assert info.value.path == where


def test_malformed_and_missing_files_are_space_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [1, 2\nper_stage: {")
    with pytest.raises(SpaceError, match="malformed YAML at line"):
        SearchSpace.from_yaml(bad)
    with pytest.raises(SpaceError, match="no such space file"):
        SearchSpace.from_yaml(tmp_path / "absent.yaml")
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(SpaceError, match="expected a mapping"):
        SearchSpace.from_yaml(top)


@pytest.mark.parametrize("stem", STEMS.names())
def test_the_space_refuses_exactly_the_widths_its_stems_cannot_build(stem):
    """A width the stem refuses (checked where networks are built) is refused by the space before any trial."""
    downsample = {"conv3": 0}.get(stem, 2)
    for head_dim in (12, 13, 16):
        arch = dict(img_size=32, num_classes=10, time_steps=1, stem=stem, stem_downsample=downsample, depths=(1,),
                    dims=(head_dim,), heads=(1,), attention=("ssa",), patch_sizes=(1,))
        try:
            check_parts(ArchConfig(**arch))
            builds = True
        except ArchConfigError as exc:
            assert exc.field == "dims"
            builds = False
        space = _with("global.stem", [stem])
        space["global"]["stem_downsample"] = downsample
        space["per_stage"].update(head_dim=[head_dim], heads=[1])
        try:
            SearchSpace.from_dict(space)
            accepted = True
        except SpaceError as exc:
            assert exc.path == "per_stage.head_dim" and f"stem {stem}" in str(exc)
            accepted = False
        assert builds == accepted, (stem, head_dim)


def test_images_too_small_for_the_stage_count_are_refused_before_a_study():
    space = SearchSpace.from_yaml("space.yaml")
    with pytest.raises(SpaceError, match="divisible by 8"):
        space.check_data(DataShape(12, 1, 10))


@pytest.mark.parametrize("sampler", [optuna.samplers.RandomSampler(seed=3), optuna.samplers.TPESampler(seed=3)])
def test_sampling_always_gives_a_valid_arch_config(sampler):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = SearchSpace.from_yaml("space.yaml")
    study = optuna.create_study(sampler=sampler, directions=["maximize", "minimize"])
    seen = set()
    for i in range(150):
        trial = study.ask()
        arch = space.suggest(trial, SHAPE)
        assert isinstance(arch, ArchConfig) and arch.img_size == 16 and arch.in_channels == 1
        assert all(d == h * w for d, h, w in zip(arch.dims, arch.heads, [trial.params.get(f"head_dim_{j}", 8)
                                                                          for j in range(arch.num_stages)]))
        seen.update(arch.attention)
        study.tell(trial, [float(i % 7), float(i % 5)])
    assert seen == {"ssa", "dssa", "a2os2a", "ls_ssa", "sdsa", "qk"}


def test_dependent_choices_are_repaired_not_refused():
    space = SearchSpace.from_yaml("space.yaml")
    stage = {"depth": [1], "heads": [1], "head_dim": [16], "attention": ["ls_ssa"], "patch_size": [2]}
    g = {k: p.values()[0] for k, p in space.globals.items()} | {"dilations": (1, 2), "stem": "sps"}
    arch = space.assemble(1, stage, g, DataShape(8, 1, 10))  # 8 px / 4 = 2 x 2 map
    assert arch.dilations == (1,)  # one head cannot split across two rates
    stage |= {"attention": ["dssa"], "patch_size": [2]}
    assert space.assemble(1, stage, g, DataShape(4, 1, 10)).patch_sizes == (1,)  # 1 x 1 map
