"""The public API: what `import snnas` offers, and every Python example of the README and the docs, run."""

import os
import re
from pathlib import Path

import pytest
import torch

import snnas

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
EXAMPLES = [(page, i, block) for page in PAGES
            for i, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))]


def test_every_public_name_resolves_and_is_documented():
    for name in snnas.__all__:
        value = getattr(snnas, name)
        if callable(value):
            assert value.__doc__, name
    assert "count" in dir(snnas)
    with pytest.raises(AttributeError):
        snnas.no_such_name


@pytest.mark.parametrize("page, index, code", EXAMPLES,
                         ids=[f"{p.relative_to(ROOT)}#{i}" for p, i, _ in EXAMPLES])
def test_the_examples_in_the_docs_run(tmp_path, page, index, code):
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, f"{page.name} example {index}", "exec"), {"__name__": "__example__"})
    finally:
        os.chdir(here)


def test_count_and_price_agree_with_the_cli_on_a_zoo_model():
    from snnas.energy.counting import count_ops
    from snnas.energy.estimate import estimate
    from snnas.energy.profile import load_profile

    model = snnas.zoo_model("spikformer-2-384", seed=3)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    counts = snnas.count(model, inputs=x)
    direct = estimate(count_ops(model, x), load_profile("45nm-fp32"))
    priced = snnas.price(counts, profile="45nm-fp32")
    assert isinstance(priced, snnas.EnergyEstimate) and priced.total_mj == direct.total_mj > 0
    assert counts.complete and priced.complete


def test_arguments_after_the_first_are_keyword_only():
    with pytest.raises(TypeError):
        snnas.count(torch.nn.Linear(2, 2), torch.rand(1, 2))  # inputs= must be named
    with pytest.raises(KeyError, match="not in the zoo"):
        snnas.zoo_arch("no-such-model")


def test_a_model_saved_from_python_reads_back_the_same(tmp_path):
    arch = snnas.zoo_arch("spikformer-2-384").replace(depths=(1,), dims=(48,), heads=(1,))
    model = snnas.build_model(arch).eval()
    path = snnas.save_model(model, arch=arch, path=tmp_path / "m.pt", meta={"note": "test"})
    loaded = snnas.load_model(path)
    assert loaded.arch == arch and loaded.meta == {"note": "test"}
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model.eval()(x), model(x))


def test_price_with_memory_reads_the_layers_of_the_model_it_is_given():
    import torch

    import snnas
    from snnas.nas.models import build_model
    from tests.conftest import tiny_arch

    model = build_model(tiny_arch())
    counts = snnas.count(model, inputs=torch.rand(2, 3, 16, 16))
    blind, seen = snnas.price(counts, memory=True), snnas.price(counts, memory=True, model=model)
    assert any("count with the model" in m for m in blind.missing)
    assert not any("count with the model" in m for m in seen.missing)
    assert seen.total_mj > snnas.price(counts).total_mj  # memory traffic adds to the arithmetic
