"""The live search display: front bands, ETA, training steps."""

from types import SimpleNamespace

from snnas.cli.search import _Display
from tests.conftest import tiny_arch


def _event(state, number, done, **kw):
    base = dict(number=number, state=state, arch=tiny_arch(), accuracy=None, energy_mj=None, done=done, budget=10,
                reason="", step=0, steps=0)
    return SimpleNamespace(**{**base, **kw})


def test_one_finished_trial_shows_its_accuracy_in_its_band():
    display = _Display(10, 0, "accuracy")
    display.update(_event("complete", 0, 1, accuracy=0.5, energy_mj=0.003))
    assert display.bands() == ["0.003 mJ: 50.0%"]


def test_every_point_lands_in_a_band_and_each_band_shows_its_best():
    display = _Display(10, 0, "accuracy")
    for i, (acc, mj) in enumerate([(0.1, 1e-4), (0.3, 1e-4), (0.5, 1e-3), (0.9, 1e-2), (0.7, 1e-2)]):
        display.update(_event("complete", i, i + 1, accuracy=acc, energy_mj=mj))
    cells = display.bands()
    assert len(cells) == 4 and cells[0].endswith("30.0%") and cells[-1].endswith("90.0%")
    shown = [c.rsplit(": ", 1)[1] for c in cells]
    assert "50.0%" in shown and shown.count("-") == 1  # one band is empty, none is lost


def test_the_eta_appears_after_the_first_finished_trial(monkeypatch):
    clock = iter([100.0, 160.0, 160.0, 160.0])
    monkeypatch.setattr("snnas.cli.search.time.perf_counter", lambda: next(clock))
    display = _Display(5, 0, "accuracy")
    assert display.progress.tasks[0].fields["eta"] == "after the first trial"
    display.update(_event("complete", 0, 1, accuracy=0.5, energy_mj=0.01))
    assert display.progress.tasks[0].fields["eta"] == "0:04:00"  # 60 s per trial, 4 left


def test_training_steps_show_inside_a_trial_and_scores_are_labelled():
    display = _Display(5, 0, "SAHD score")
    display.update(_event("step", 3, 0, step=40, steps=200))
    assert "#3" in display.running_line() and "(step 40/200)" in display.running_line()
    display.update(_event("complete", 3, 1, accuracy=812.5, energy_mj=0.01))
    assert display.running_line() == "-" and display.bands() == ["0.01 mJ: 812.5"]
