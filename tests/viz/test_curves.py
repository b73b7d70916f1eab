"""Training curves: every source form reads the same numbers, figures carry them, EMA matches pandas, text is escaped."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.errors import InvalidInputError
from labkit.models.gpt import GPT, GPTConfig
from labkit.training import train
from labkit.training.history import History
from labkit.viz.curves import CurveData, curve_data, curves_summary, curves_svg, ema, training_curves

HOSTILE = "</script><img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def history() -> History:
    """A real History: 12 steps of a tiny GPT with 3 evaluations."""
    torch.manual_seed(0)
    model = GPT(GPTConfig.preset("gpt-nano", vocab_size=32, block_size=16, n_layer=1))
    gen = torch.Generator().manual_seed(0)
    batches = [{"input_ids": (x := torch.randint(0, 32, (2, 16), generator=gen)), "labels": x} for _ in range(3)]
    return train(
        model,
        batches,
        val_batches=batches[:1],
        steps=12,
        eval_every=4,
        log_every=3,
        progress=False,
        device="cpu",
        precision="fp32",
    )


def _points_form(h: History) -> dict:
    return {
        "points": [[s, loss, r, t, g] for s, loss, r, t, g in zip(h.step, h.loss, h.lr, h.tokens_per_s, h.grad_norm)],
        "val_points": [[s, v] for s, v in zip(h.eval_step, h.eval_loss)],
    }


def test_every_source_form_reads_the_same_numbers(history):
    ref = curve_data(history)
    assert ref.step == list(range(1, 13)) and ref.loss == history.loss and ref.lr == history.lr
    assert ref.eval_step == [4, 8, 12] and ref.eval_loss == history.eval_loss
    assert curve_data(history.to_pandas()) == ref
    assert curve_data(history.to_dict()) == ref
    assert curve_data(History.from_dict(history.to_dict())) == ref
    assert curve_data(_points_form(history)) == ref
    assert curve_data(ref) is ref
    assert ref.grad_norm == history.grad_norm and all(g > 0 for g in ref.grad_norm)
    old = _points_form(history)  # a dashboard state saved before points carried the gradient norm
    old["points"] = [p[:4] for p in old["points"]]
    assert curve_data(old).grad_norm == [None] * len(history.step) and curve_data(old).loss == ref.loss


def test_figure_traces_hold_the_history_values(history):
    fig = training_curves(history, smoothing=0.5, title="run")
    by_name = {tr.name: tr for tr in fig.data}
    assert list(by_name["train loss"].y) == history.loss and list(by_name["train loss"].x) == history.step
    assert list(by_name["val loss"].x) == history.eval_step and list(by_name["val loss"].y) == history.eval_loss
    assert list(by_name["lr"].y) == history.lr and list(by_name["tokens/s"].y) == history.tokens_per_s
    assert list(by_name["grad norm"].y) == history.grad_norm
    smoothed = pd.Series(history.loss).ewm(alpha=0.5, adjust=True).mean().tolist()
    assert list(by_name["train loss (EMA 0.5)"].y) == pytest.approx(smoothed, rel=1e-12)
    assert len(training_curves(history).data) == 5  # no EMA trace without smoothing
    no_norms = curve_data(history)
    no_norms = CurveData(no_norms.step, no_norms.loss, no_norms.lr, no_norms.tokens_per_s, [], [])
    assert "grad norm" not in {tr.name for tr in training_curves(no_norms).data}  # no row for what was not logged


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), max_size=40), st.floats(0, 0.99))
def test_ema_is_pandas_bias_corrected_ewm(values, smoothing):
    got = ema(values, smoothing)
    series = pd.Series([math.nan if v is None else v for v in values], dtype=float)
    ref = series.ewm(alpha=1 - smoothing, adjust=True, ignore_na=True).mean().tolist()
    assert len(got) == len(values)
    for g, r, v in zip(got, ref, values):
        if v is None:
            assert g is None
        else:
            assert g == pytest.approx(r, rel=1e-9, abs=1e-6)


def test_non_finite_values_become_gaps():
    d = curve_data(
        {
            "step": [1, 2, 3, 4],
            "loss": [2.0, float("nan"), float("inf"), 1.5],
            "lr": [1e-3] * 4,
            "tokens_per_s": [None, 10.0, 10.0, 10.0],
        }
    )
    assert d.loss == [2.0, None, None, 1.5] and d.tokens_per_s == [None, 10.0, 10.0, 10.0]
    svg = curves_svg(d)
    ET.fromstring(svg)  # well-formed
    path = next(p for p in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}path"))
    assert path.get("d").count("M") == 2  # the NaN steps break the line in two


def test_svg_and_summary_escape_the_title_and_state_the_numbers(history):
    svg = curves_svg(history, title=HOSTILE)
    assert "<img" not in svg and "</script" not in svg and "&lt;img" in svg
    root = ET.fromstring(svg)
    assert len(list(root.iter("{http://www.w3.org/2000/svg}circle"))) == 3  # one dot per evaluation
    text = curves_summary(history, title=HOSTILE)
    assert "<img" not in text and "</script" not in text
    assert f"loss {history.loss[-1]:.4f} (min {min(history.loss):.4f})" in text
    best = min(history.eval_loss)
    assert f"best {best:.4f} at step {history.eval_step[history.eval_loss.index(best)]}" in text
    inline = curves_svg(history, standalone=False)
    assert "xmlns" not in inline.split(">")[0]


def test_empty_sources_draw_placeholders():
    assert "no points yet" in curves_svg(History())
    assert "no steps logged yet" in curves_summary(History())
    assert len(curve_data({"points": [], "val_points": []})) == 0
    assert isinstance(curve_data(History()), CurveData)


@pytest.mark.parametrize(
    "source, message",
    [
        (42, "cannot read curves from a int"),
        ({"step": [1, 2], "loss": [1.0]}, "loss has 1 values but step has 2"),
        ({"step": [1], "loss": [1.0], "eval_step": [1], "eval_loss": []}, "eval_step has 1 values but eval_loss has 0"),
        ({"points": [[1, 2.0]]}, r"points must be \[step, loss, lr, tokens_per_s, grad_norm\]"),
        ({"points": [], "val_points": [[1, 2, 3]]}, r"val_points must be \[step, loss\] pairs"),
        (pd.DataFrame({"x": [1]}), "needs 'step' and 'loss' columns"),
        ({"step": [1], "loss": ["high"]}, "curve values must be numbers, got 'high'"),
    ],
)
def test_bad_sources_fail_with_one_line(source, message):
    with pytest.raises(InvalidInputError, match=message):
        curve_data(source)


def test_smoothing_out_of_range_is_refused(history):
    with pytest.raises(InvalidInputError, match=r"^smoothing must be a finite number in \[0, 1\), got 1.0$"):
        training_curves(history, smoothing=1.0)
