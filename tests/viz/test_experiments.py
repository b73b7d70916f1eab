"""seed_spread_figure: every run is a dot, each condition's marker sits at its mean with ± one sample standard
deviation, and the paired panel holds the seed-by-seed differences from the baseline."""

from __future__ import annotations

import statistics
from types import SimpleNamespace

import pytest

from labkit.errors import InvalidInputError
from labkit.viz import seed_scores, seed_spread_figure

SCORES = {"none": [0.61, 0.64, 0.58], "swap": [0.63, 0.62, 0.66]}


def _traces(fig, xaxis="x"):
    return [t for t in fig.data if (t.xaxis or "x") == xaxis]


def test_dots_and_mean_with_sample_std_per_condition():
    fig = seed_spread_figure(SCORES)
    traces = _traces(fig)
    for name, values in SCORES.items():
        dots = [t for t in traces if list(t.x) == [name] * len(values)]
        assert list(dots[0].y) == values
        mean = [t for t in traces if list(t.x) == [name] and t.error_y.array is not None][0]
        assert mean.y[0] == pytest.approx(statistics.fmean(values))
        assert mean.error_y.array[0] == pytest.approx(statistics.stdev(values))
    assert not _traces(fig, "x2"), "no baseline, no paired panel"


def test_an_experiment_with_a_baseline_gets_the_paired_differences():
    experiment = SimpleNamespace(
        names=list(SCORES),
        seeds=[0, 1, 2],
        scores=lambda name: SCORES[name],
        metric_name="macro F1",
        baseline="none",
    )
    fig = seed_spread_figure(experiment)
    paired = _traces(fig, "x2")
    diffs = [a - b for a, b in zip(SCORES["swap"], SCORES["none"])]
    assert list(paired[0].y) == pytest.approx(diffs)
    assert paired[1].y[0] == pytest.approx(statistics.fmean(diffs))
    assert paired[1].error_y.array[0] == pytest.approx(statistics.stdev(diffs))
    assert "macro F1" in fig.layout.title.text and list(paired[0].customdata) == [0, 1, 2]
    assert seed_scores(experiment)[3] == "none"


@pytest.mark.parametrize(
    "bad, match", [({}, "needs compare_augmentations"), ({"a": []}, "non-empty"), ({"a": ["x"]}, "non-number")]
)
def test_bad_input_is_one_line_error(bad, match):
    with pytest.raises(InvalidInputError, match=match):
        seed_spread_figure(bad)
