"""Attention by hand: the learner's own matrices, every intermediate against numpy, the output against PyTorch's SDPA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.errors import InvalidInputError
from labkit.viz import attention_by_hand, by_hand_steps, parse_matrix
from labkit.viz.attention_by_hand import format_matrix

X = "1 0 1 0\n0 2 0 1\n1 1 0 1"
WQ = "1 0 1; 0 1 0; 1 0 0; 0 1 1"
WK = "0 1 1; 1 0 0; 0 1 0; 1 0 1"
WV = "1 0 2; 0 1 0; 2 1 0; 0 0 1"


def _numpy_attention(x, wq, wk, wv, causal):
    q, k, v = x @ wq, x @ wk, x @ wv
    s = q @ k.T / np.sqrt(wq.shape[1])
    if causal:
        s = np.where(np.triu(np.ones_like(s, dtype=bool), 1), -np.inf, s)
    a = np.exp(s - s.max(-1, keepdims=True))
    a = a / a.sum(-1, keepdims=True)
    return q, k, v, s, a, a @ v


@pytest.mark.parametrize("causal", [False, True])
def test_every_step_matches_numpy_on_the_course_example(causal):
    steps = by_hand_steps(X, WQ, WK, WV, causal=causal)
    x, wq, wk, wv = (parse_matrix(m).numpy() for m in (X, WQ, WK, WV))
    q, k, v, s, a, z = _numpy_attention(x, wq, wk, wv, causal)
    by_name = {st_.name: st_.matrix.double().numpy() for st_ in steps}
    scaled = q @ k.T / np.sqrt(wq.shape[1])  # before the mask
    for name, expected in [("Q = X W_Q", q), ("K = X W_K", k), ("V = X W_V", v), ("÷ √d_k", scaled), ("softmax", a)]:
        np.testing.assert_allclose(by_name[name], expected, rtol=1e-6)
    np.testing.assert_allclose(by_name["A V (output)"], z, rtol=1e-6)
    assert ("causal mask" in by_name) == causal
    if causal:
        assert np.isneginf(by_name["causal mask"][0, 1:]).all() and (by_name["softmax"][0] == [1, 0, 0]).all()
    assert steps[-1].check < 1e-6 and "scaled_dot_product_attention" in steps[-1].hook


SMALL = st.integers(1, 4)


@settings(max_examples=40, deadline=None)
@given(n=SMALL, d=SMALL, dk=SMALL, dv=SMALL, causal=st.booleans(), seed=st.integers(0, 10_000))
def test_any_small_matrices_agree_with_pytorch(n, d, dk, dv, causal, seed):
    g = torch.Generator().manual_seed(seed)
    mats = [torch.randint(-3, 4, shape, generator=g).double() for shape in ((n, d), (d, dk), (d, dk), (d, dv))]
    steps = by_hand_steps(*mats, causal=causal)
    ref = torch.nn.functional.scaled_dot_product_attention(*(mats[0] @ w for w in mats[1:]), is_causal=causal)
    assert torch.allclose(steps[-1].matrix.double(), ref, atol=1e-5)
    pattern = next(s for s in steps if s.name == "softmax").matrix
    assert torch.allclose(pattern.sum(-1), torch.ones(n), atol=1e-6) and (pattern >= 0).all()
    assert [s.shape for s in steps][:4] == [(n, d), (n, dk), (n, dk), (n, dv)]


@given(st.lists(st.lists(st.integers(-99, 99), min_size=3, max_size=3), min_size=1, max_size=5))
def test_format_and_parse_round_trip(rows):
    m = parse_matrix(rows)
    assert torch.equal(parse_matrix(format_matrix(m)), m)
    assert torch.equal(parse_matrix("; ".join(", ".join(map(str, r)) for r in rows)), m)


@pytest.mark.parametrize(
    "args, match",
    [
        (("1 2; 3", WQ, WK, WV), "rectangular"),
        (("1 x 0 1", WQ, WK, WV), "'x' in row 1 is not a number"),
        (("", WQ, WK, WV), "non-empty"),
        ((X, "1 0; 0 1", WK, WV), "W_Q has 2 rows but X has 4 columns"),
        ((X, WQ, "1 0; 0 1; 1 1; 0 0", WV), "same number of columns"),
        ((X, WQ, WK, "1 inf 0; 0 0 0; 0 0 0; 0 0 0"), "inf or nan"),
        ((np.ones((17, 2)), "1; 1", "1; 1", "1; 1"), "at most 16"),
    ],
)
def test_bad_matrices_fail_in_one_line(args, match):
    with pytest.raises(InvalidInputError, match=match) as exc:
        by_hand_steps(*args)
    assert "\n" not in str(exc.value)


def test_the_view_names_its_subject_and_escapes_labels():
    view = attention_by_hand(X, WQ, WK, WV, causal=True, tokens=["<b>I</b>", "saw", "it"], step=2)
    page = view.to_html()
    assert "your matrices, causal" in page and "vs PyTorch" in page and "<b>I</b>" not in page
    assert page.count('<section class="lk-am-step"') == 9 and 'data-step="2"' in page
    assert "your matrices" in view.summary() and view.max_diff < 1e-6
    assert view.to_svg().startswith("<svg")
    with pytest.raises(InvalidInputError, match="tokens has 2 labels but X has 3 rows"):
        attention_by_hand(X, WQ, WK, WV, tokens=["a", "b"])
