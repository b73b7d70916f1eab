"""ProjectorWidget without a kernel: traits, search from Python and from the page, validation, static output; JS in node."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

from labkit.errors import InvalidInputError, UnknownNameError
from labkit.viz.projector import nearest_neighbours, project
from labkit.widgets.projector import ProjectorWidget

HOSTILE = "</script><img src=x onerror=alert(1)>"
NODE = shutil.which("node")
MODULE = Path(__file__).resolve().parents[2] / "widgets" / "projector.js"


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, list[str]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=g)
    tokens = [f"w{i}" for i in range(40)]
    tokens[1] = HOSTILE
    return x, tokens


def _oracle(x: torch.Tensor, row: int, k: int) -> list[int]:
    from sklearn.metrics.pairwise import cosine_similarity

    sims = cosine_similarity(x.double().numpy())[row]
    return [int(j) for j in np.argsort(-sims, kind="stable") if j != row][:k]


def test_widget_carries_the_projection_as_float32_bytes_and_searches_like_the_oracle(data):
    x, tokens = data
    w = ProjectorWidget(x, tokens, labels=[i % 3 for i in range(40)], k=4, query="w5")
    coords = np.frombuffer(w.coords, "<f4").reshape(w.shape)
    assert w.shape == [1, 40, 2]
    np.testing.assert_array_equal(coords[0], project(x).coords.numpy())
    assert w.selected == 5 and [nb["index"] for nb in w.neighbours] == _oracle(x, 5, 4)
    assert (
        w.labels == [str(i % 3) for i in range(40)]
        and w.info["method"] == "pca"
        and len(w.info["explained_variance"]) == 2
    )
    found = w.search(HOSTILE)
    assert w.selected == 1 and w.query == HOSTILE and [nb.index for nb in found] == _oracle(x, 1, 4)


def test_page_events_update_neighbours_and_report_errors_without_raising(data):
    x, tokens = data
    w = ProjectorWidget(x, tokens, dims=3, k=3)
    w.query = "w12"  # typed in the search box
    assert w.selected == 12 and [nb["index"] for nb in w.neighbours] == _oracle(x, 12, 3) and w.error == ""
    w.query = "w1x2"  # not a token: the page shows the error and close matches
    assert "did you mean" in w.error and "'w12'" in w.error and w.neighbours == [] and w.selected is None
    w.selected = 7  # a click on a point
    assert w.query == "w7" and [nb["index"] for nb in w.neighbours] == _oracle(x, 7, 3) and w.error == ""
    w.k = 5
    assert [nb["index"] for nb in w.neighbours] == _oracle(x, 7, 5)
    w.query = ""
    assert w.neighbours == [] and w.selected is None


def test_checkpoint_frames_search_in_the_matrix_of_the_frame_shown(data):
    x, tokens = data
    g = torch.Generator().manual_seed(1)
    mats = [x, x + 0.5 * torch.randn(40, 6, generator=g), x + torch.randn(40, 6, generator=g)]
    w = ProjectorWidget.from_checkpoints(mats, tokens, names=["a", "b", "c"], k=4)
    assert w.shape == [3, 40, 2] and w.frame_names == ["a", "b", "c"]
    w.search("w3")
    for frame in (2, 0, 1):
        w.frame = frame
        assert [nb["index"] for nb in w.neighbours] == [nb.index for nb in nearest_neighbours(mats[frame], 3, k=4)]
    assert "frame 2 of 3" in w.summary()


def test_invalid_traits_and_searches_raise_one_line_errors(data):
    x, tokens = data
    w = ProjectorWidget(x, tokens)
    for name, value, fragment in (
        ("k", 40, "k must be an integer in [1, 39], got 40; the vocabulary has 40 rows, minus the query"),
        ("frame", 1, "frame must be an integer in [0, 0], got 1; there are 1 frames"),
        ("selected", 40, "selected must be an integer in [0, 39] (or None), got 40; there are 40 points"),
    ):
        with pytest.raises(InvalidInputError, match=re.escape(fragment)):
            setattr(w, name, value)
    with pytest.raises(UnknownNameError, match="did you mean 'w3', 'w39'"):
        w.search("w3O")
    with pytest.raises(InvalidInputError, match="3 labels for 40 points"):
        ProjectorWidget(x, tokens, labels=[0, 1, 2])
    with pytest.raises(InvalidInputError, match="no embeddings yet"):
        ProjectorWidget().search("w1")


def test_static_fallback_escapes_token_text(data):
    x, tokens = data
    w = ProjectorWidget(x, tokens, query=HOSTILE, k=2)
    bundle, _ = w._repr_mimebundle_()
    assert {"text/plain", "image/svg+xml", "application/vnd.jupyter.widget-view+json"} <= set(bundle)
    for mime in ("text/plain", "image/svg+xml"):
        assert "<img" not in bundle[mime] and "</script>" not in bundle[mime], mime
    ET.fromstring(bundle["image/svg+xml"])
    assert bundle["image/svg+xml"] == w.to_svg()
    assert "nearest to" in bundle["text/plain"]
    assert set(ProjectorWidget()._repr_mimebundle_()[0]) == {"text/plain", "application/vnd.jupyter.widget-view+json"}


def _node(code: str) -> object:
    done = subprocess.run([NODE, "--input-type=module", "-e", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_front_end_pure_functions_in_node(data):
    x, tokens = data
    w = ProjectorWidget(x, tokens, dims=3, frequencies=list(range(40)))
    coords = np.frombuffer(w.coords, "<f4").reshape(-1, 3)
    code = (
        f"import {{ toFloat32, bounds, screenPoints, colours, nearestPoint, rotate }} from {json.dumps(MODULE.as_uri())};\n"
        f"const bytes = Uint8Array.from({json.dumps(list(w.coords))});\n"
        "const all = toFloat32(new DataView(bytes.buffer, 0, bytes.length));\n"
        "const b = bounds(all, 3);\n"
        "const flat = screenPoints(all, 3, b, {width: 400, height: 300, yaw: 0, pitch: 0, zoom: 1});\n"
        "const turned = rotate(1, 0, 0, Math.PI / 2, 0);\n"
        f"const c = colours({json.dumps([str(i % 2) for i in range(40)])}, [], 40);\n"
        "const v = colours(null, Array.from({length: 40}, (_, i) => i), 40);\n"
        "console.log(JSON.stringify({all: Array.from(all), lo: b.lo, hi: b.hi, radius: b.radius, flat: Array.from(flat),\n"
        "  turned, legend: c.legend, first: c.cols.slice(0, 3), v0: v.cols[0], v39: v.cols[39],\n"
        "  hit: nearestPoint(flat, flat[3 * 7], flat[3 * 7 + 1], 2), miss: nearestPoint(flat, -100, -100, 5)}));\n"
    )
    out = _node(code)
    np.testing.assert_array_equal(np.array(out["all"], np.float32), coords.reshape(-1))
    np.testing.assert_allclose(out["lo"], coords.min(0), rtol=1e-6)
    np.testing.assert_allclose(out["hi"], coords.max(0), rtol=1e-6)
    flat = np.array(out["flat"]).reshape(-1, 3)
    scale = 0.45 * 300 / out["radius"]  # aspect kept: one scale for both axes, y pointing up
    centre = (coords.min(0) + coords.max(0)) / 2
    np.testing.assert_allclose(flat[:, 0], 200 + (coords[:, 0] - centre[0]) * scale, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(flat[:, 1], 150 - (coords[:, 1] - centre[1]) * scale, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(out["turned"], [0, 0, -1], atol=1e-12)
    assert [name for name, _ in out["legend"]] == ["0", "1"] and out["first"][0] == out["first"][2] != out["first"][1]
    assert out["v0"] == "rgb(68,1,84)" and out["v39"] == "rgb(253,231,37)"
    assert out["hit"] == 7 and out["miss"] == -1
