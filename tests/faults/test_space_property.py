"""Property: any space document either validates into a space that always samples valid
architectures, or is refused with a SpaceError naming a key, never a crash."""

import copy

import optuna
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnas.nas.models.arch import ArchConfig
from snnas.nas.search.space import GLOBAL_TYPES, PER_STAGE, DataShape, SearchSpace, SpaceError

DEFAULT = yaml.safe_load(open("space.yaml"))
NAMES = ["ssa", "dssa", "a2os2a", "ls_ssa", "sps", "scs", "conv7", "conv3", "lif", "plif", "if", "ternary", "relu",
         "spike", "membrane", "mlp", "gwffn", "conv", "maxpool", "spool", "sigmoid", "atan", "kv_first", "qk_first",
         "bogus", ""]
SCALAR = st.one_of(st.integers(-2, 9), st.booleans(), st.sampled_from(NAMES), st.none(), st.floats(0, 3))
VALUE = st.one_of(
    SCALAR,
    st.lists(SCALAR, max_size=4),
    st.fixed_dictionaries({"low": st.integers(-1, 5), "high": st.integers(-1, 5)}),
    st.lists(st.lists(st.integers(0, 4), max_size=3), max_size=3),
    st.dictionaries(st.sampled_from(["low", "high", "step"]), st.integers(0, 4), max_size=3),
)
LEGAL = {  # plausible values, so that many documents validate and their sampling is exercised
    "stages": [1, 2, 3], "per_stage.depth": [1, 2], "per_stage.heads": [1, 2, 3, 4, 6],
    "per_stage.head_dim": [4, 8, 16, 24], "per_stage.attention": ["ssa", "dssa", "a2os2a", "ls_ssa"],
    "per_stage.patch_size": [1, 2, 3, 4], "global.stem": ["sps", "scs", "conv7", "conv3"],
    "global.stem_downsample": [0, 1, 2, 3], "global.time_steps": [1, 2, 3], "global.window": [1, 2, 3, 5],
    "global.dilations": [[1], [1, 2], [1, 2, 3], [2, 3]], "global.mlp": ["mlp", "gwffn"],
    "global.mlp_ratio": [1, 2, 3, 4], "global.residual": ["spike", "membrane"],
    "global.downsample": ["conv", "maxpool", "spool"], "global.neuron": ["lif", "if", "plif", "ternary", "relu"],
    "global.group_width": [8, 16, 64], "global.attn_order": ["kv_first", "qk_first"],
}
PATHS = ["stages", "version", "bogus"] + [f"per_stage.{k}" for k in [*PER_STAGE, "bogus"]] + \
    [f"global.{k}" for k in [*GLOBAL_TYPES, "bogus"]]


@st.composite
def documents(draw):
    doc = copy.deepcopy(DEFAULT)
    for _ in range(draw(st.integers(1, 5))):
        path = draw(st.sampled_from(PATHS + list(LEGAL) * 3)).split(".")
        node = doc
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            legal = LEGAL.get(".".join(path))
            if draw(st.booleans()) and path[-1] in node and draw(st.integers(0, 4)) == 0:
                del node[path[-1]]
            elif legal and draw(st.integers(0, 3)):
                node[path[-1]] = draw(st.lists(st.sampled_from(legal), min_size=1, max_size=len(legal), unique_by=str))
            else:
                node[path[-1]] = draw(VALUE)
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(), st.sampled_from([8, 16, 32]))
def test_random_space_documents_validate_or_are_refused_never_crash(doc, side):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    shape = DataShape(side, 1, 10)
    try:
        space = SearchSpace.from_dict(doc)
        space.check_data(shape)
    except SpaceError as exc:
        assert exc.path and str(exc).startswith(exc.path)
        return
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), directions=["maximize", "minimize"])
    for _ in range(6):
        trial = study.ask()
        assert isinstance(space.suggest(trial, shape), ArchConfig)
        study.tell(trial, [0.0, 0.0])
