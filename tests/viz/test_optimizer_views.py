"""The optimizer views: curves carry each run's own numbers; the moment view's page data is the recorded state."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

import pytest
import torch
from torch import nn

from labkit.errors import InvalidInputError
from labkit.frontend import unpack_arrays
from labkit.training import History, MomentRecorder, train
from labkit.viz import moment_view, optimizer_curves

HOSTILE = "</script><img src=x onerror=alert(1)>"


def _history(losses: list[float]) -> History:
    h = History()
    for i, loss in enumerate(losses, 1):
        h.append_step(i, loss, 1e-3)
    return h


def test_curves_plot_each_runs_losses_against_step():
    runs = {"SGD": _history([3.0, 2.5, 2.4]), HOSTILE: _history([3.0, 2.0, float("nan")])}
    fig = optimizer_curves(runs, smoothing=0.0, title=HOSTILE)
    assert [t.name for t in fig.data] == ["SGD", "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"]
    assert list(fig.data[0].x) == [1, 2, 3] and list(fig.data[0].y) == [3.0, 2.5, 2.4]
    assert list(fig.data[1].y) == [3.0, 2.0, None]  # a NaN loss is a gap, not a point
    assert "<script" not in fig.layout.title.text
    smooth = optimizer_curves(runs, smoothing=0.5)
    raw, ema = smooth.data[0], smooth.data[1]  # a faint raw line, then its moving average
    assert list(raw.y) == [3.0, 2.5, 2.4] and ema.y[1] == pytest.approx(
        (0.25 * 3.0 + 0.5 * 2.5) / (1 - 0.5**2)
    )  # bias-corrected EMA
    with pytest.raises(InvalidInputError, match="smoothing"):
        optimizer_curves(runs, smoothing=1.0)


def _recorded(optimizer: str) -> MomentRecorder:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    recorder = MomentRecorder("0.weight", steps=[1, 2, 4])
    g = torch.Generator().manual_seed(1)
    batches = [{"x": torch.randn(8, 6, generator=g), "y": torch.randint(0, 3, (8,), generator=g)} for _ in range(4)]

    def loss_fn(model, batch):
        return nn.functional.cross_entropy(model(batch["x"]), batch["y"])

    train(model, batches, steps=4, optimizer=optimizer, lr=0.05, loss_fn=loss_fn, callbacks=[recorder], progress=False)
    return recorder


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_moment_view_page_data_is_the_recorded_state(optimizer):
    recorder = _recorded(optimizer)
    view = moment_view(recorder, max_rows=4, title=HOSTILE)
    assert [f["step"] for f in view.frames] == [1, 2, 4] and view.shape == (4, 6) and view.full_shape == (5, 6)
    spec = view.spec()
    arrays = unpack_arrays(spec["header"], base64.b64decode(spec["b64"]))
    for key, stacked in view.panels.items():
        scale = torch.tensor(spec["scales"][key]).view(-1, 1, 1)
        torch.testing.assert_close(arrays[key] * scale, stacked, rtol=2e-3, atol=1e-6)  # float16 on the wire
    first = recorder.snapshots[0]
    torch.testing.assert_close(view.panels["grad"][0], first.grad[:4].float())
    page = view.to_html()
    assert HOSTILE not in page and "labkit-mom-data" in page
    ET.fromstring(view.to_svg())
    assert re.search(r"0\.weight \(5, 6\)", view.summary())


def test_moment_view_refuses_what_it_cannot_show():
    with pytest.raises(InvalidInputError, match="no snapshots to show"):
        moment_view([])
    with pytest.raises(InvalidInputError, match="MomentSnapshot"):
        moment_view([object()])
