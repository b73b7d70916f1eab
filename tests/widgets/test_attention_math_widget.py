"""AttentionMathWidget without a kernel: traits validated against the model, layer/head recompute in Python."""

from __future__ import annotations

import pytest
import torch

from labkit.errors import InvalidInputError
from labkit.frontend import asset_text
from labkit.models import GPT, GPTConfig
from labkit.viz.attention_math import attention_steps
from labkit.widgets.attention_math import AttentionMathWidget

HOSTILE = "</script><img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(
        GPTConfig(vocab_size=40, block_size=16, n_layer=3, n_head=4, n_kv_head=2, n_embd=16, positions="rotary")
    ).eval()


IDS = torch.randint(0, 40, (1, 5), generator=torch.Generator().manual_seed(1))
TOKENS = ["a", HOSTILE, "c", "d", "e"]


def test_initial_traits_describe_the_model_and_the_steps(model):
    w = AttentionMathWidget(model, IDS, TOKENS, layer=1, head=2, step=3)
    assert (w.n_layer, w.n_head, w.layer, w.head, w.step) == (3, 4, 1, 2, 3)
    assert w.step_names == [s.name for s in attention_steps(model, IDS, 1, 2)]
    assert "RoPE(Q)" in w.step_names and w.max_diff <= 1e-5
    assert w.steps_html.count('<section class="lk-am-step"') == len(w.step_names)
    assert "<img" not in w.steps_html + w.header_html and "&lt;/script&gt;" in w.steps_html
    assert w._esm == asset_text("attention_math.js") and "export default" in w._esm and w._css
    synced = set(w.traits(sync=True))
    assert {
        "step",
        "layer",
        "head",
        "n_layer",
        "n_head",
        "step_names",
        "steps_html",
        "header_html",
        "max_diff",
    } <= synced
    assert all(w.trait_metadata(n, "help") for n in ("step", "layer", "head"))


def test_changing_layer_or_head_recomputes_in_python_and_keeps_the_step_kind(model):
    w = AttentionMathWidget(model, IDS, TOKENS)
    w.step = w.step_names.index("softmax")
    before = w.steps_html
    w.head = 3
    assert w.walkthrough.head == 3 and w.steps_html != before
    assert w.step_names[w.step] == "softmax"
    expected = attention_steps(model, IDS, layer=0, head=3)
    torch.testing.assert_close(w.steps[-4].matrix, expected[-4].matrix)  # the softmax pattern of head 3
    w.layer = 2
    assert w.walkthrough.layer == 2 and "layer 2, head 3" in w.header_html
    torch.testing.assert_close(w.steps[-1].matrix, attention_steps(model, IDS, 2, 3)[-1].matrix)
    assert w.to_view().step == w.step


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("layer", 3, "layer 3 is out of range; there are 3 blocks"),
        ("head", -1, "head -1 is out of range; there are 4 heads per block"),
        ("step", 13, "step 13 is out of range; there are 13 steps"),
    ],
)
def test_selection_is_validated_against_the_model(model, name, value, message):
    w = AttentionMathWidget(model, IDS)
    before = getattr(w, name)
    with pytest.raises(InvalidInputError, match=message):
        setattr(w, name, value)
    assert getattr(w, name) == before


def test_bad_construction_raises_before_building(model):
    with pytest.raises(InvalidInputError, match="layer 5 is out of range"):
        AttentionMathWidget(model, IDS, layer=5)
    with pytest.raises(InvalidInputError, match="needs a labkit GPT or Encoder"):
        AttentionMathWidget(torch.nn.Linear(2, 2), IDS)


def test_mimebundle_adds_static_fallbacks(model):
    data, _ = AttentionMathWidget(model, IDS, TOKENS)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["image/svg+xml"].startswith("<svg") and "Attention walk-through" in data["text/plain"]
    assert "<img" not in data["image/svg+xml"] + data["text/plain"]


def test_each_change_recomputes_exactly_once(model, monkeypatch):
    import labkit.widgets.attention_math as module

    calls = []
    real = module.attention_walkthrough
    monkeypatch.setattr(module, "attention_walkthrough", lambda *a, **k: calls.append(a[2:4]) or real(*a, **k))
    w = AttentionMathWidget(model, IDS, layer=1, head=1)
    assert calls == [(1, 1)]
    w.head = 2
    assert calls == [(1, 1), (1, 2)] and w.walkthrough.head == 2


# ---- your own matrices (from_matrices) ----

X3 = "1 0 1 0\n0 2 0 1\n1 1 0 1"
W3 = "1 0 1; 0 1 0; 1 0 0; 0 1 1"


def test_from_matrices_shows_editable_texts_and_every_step():
    w = AttentionMathWidget.from_matrices(X3, W3, W3, W3, tokens=["I", "saw", HOSTILE], step=1)
    assert w.editable and not w.causal and w.error == ""
    assert set(w.matrices) == {"X", "W_Q", "W_K", "W_V"} and w.matrices["X"] == X3
    assert w.step == 1 and w.step_names[0] == "X (input)" and w.step_names[-1] == "A V (output)"
    assert "causal mask" not in w.step_names and w.max_diff < 1e-6
    assert "<img" not in w.steps_html and "&lt;/script&gt;" in w.steps_html
    assert "your matrices" in w.header_html


def test_editing_a_matrix_recomputes_in_python_and_a_bad_edit_keeps_the_last_steps():
    w = AttentionMathWidget.from_matrices(X3, W3, W3, W3)
    w.step = w.step_names.index("softmax")
    before = w.steps_html
    w.matrices = {**w.matrices, "X": "2 0 0 0\n0 0 0 1\n1 1 0 0\n0 1 0 1"}  # a fourth token
    assert w.error == "" and w.steps[0].shape == (4, 4) and w.steps_html != before
    assert w.step_names[w.step] == "softmax"  # stays on the same kind of step
    good = w.steps_html
    w.matrices = {**w.matrices, "W_K": "1 2"}
    assert "W_K has 1 rows but X has 4 columns" in w.error and "\n" not in w.error
    assert w.steps_html == good
    w.causal = True  # still refused: the bad W_K is still there
    assert "W_K has 1 rows" in w.error and "causal mask" not in w.step_names
    w.matrices = {**w.matrices, "W_K": W3}
    assert w.error == "" and "causal mask" in w.step_names
    assert float(w.steps[w.step_names.index("softmax")].matrix[0, 1:].abs().max()) == 0.0


def test_from_matrices_refuses_a_bad_start_in_one_line():
    with pytest.raises(InvalidInputError, match="W_Q has 2 rows but X has 4 columns"):
        AttentionMathWidget.from_matrices(X3, "1 0; 0 1", W3, W3)
