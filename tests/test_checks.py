"""The shared validator: accepts exactly the values its bounds allow and names the parameter and the fix otherwise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from labkit.checks import check_choice, check_float, check_int, check_tensor
from labkit.errors import InvalidInputError, UnknownNameError


@given(
    st.integers(-(10**6), 10**6),
    st.one_of(st.none(), st.integers(-100, 100)),
    st.one_of(st.none(), st.integers(-100, 100)),
)
def test_check_int_accepts_exactly_the_integers_inside_the_bounds(value, low, high):
    inside = (low is None or value >= low) and (high is None or value <= high)
    if inside:
        assert check_int("n", value, low=low, high=high) == value
    else:
        with pytest.raises(InvalidInputError, match=r"^n must be an integer .*got -?\d+$"):
            check_int("n", value, low=low, high=high)


@pytest.mark.parametrize("bad", [True, False, 2.0, "3", [1], float("nan"), None])
def test_check_int_refuses_what_is_not_an_integer(bad):
    with pytest.raises(InvalidInputError, match="steps must be an integer >= 1"):
        check_int("steps", bad)


def test_check_int_reads_numpy_and_torch_scalars_and_none_when_allowed():
    assert check_int("k", np.int64(3)) == 3 and type(check_int("k", np.int64(3))) is int
    assert check_int("k", torch.tensor(4)) == 4
    assert check_int("k", None, allow_none=True) is None
    with pytest.raises(InvalidInputError, match=r"k must be an integer >= 1 \(or None\), got 0; use None for all"):
        check_int("k", 0, allow_none=True, fix="use None for all")


@given(st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.booleans())
def test_check_float_agrees_with_the_written_rule(value, low_open, high_open):
    low, high = -1.0, 2.5
    inside = (
        math.isfinite(value)
        and (value > low if low_open else value >= low)
        and (value < high if high_open else value <= high)
    )
    if inside:
        assert check_float("lr", value, low=low, high=high, low_open=low_open, high_open=high_open) == value
    else:
        with pytest.raises(InvalidInputError, match=r"^lr must be a finite number in [\[(]-1.0, 2.5[\])], got "):
            check_float("lr", value, low=low, high=high, low_open=low_open, high_open=high_open)


def test_check_float_message_names_the_fix_and_refuses_bools():
    with pytest.raises(InvalidInputError) as info:
        check_float("clip_norm", -1.0, low=0, low_open=True, allow_none=True, fix="None turns clipping off")
    assert str(info.value) == "clip_norm must be a finite number > 0 (or None), got -1.0; None turns clipping off"
    with pytest.raises(InvalidInputError):
        check_float("lr", True)
    assert check_float("lr", 3) == 3.0 and check_float("lr", torch.tensor(0.5)) == 0.5


def test_check_choice_lists_close_matches():
    assert check_choice("kind", "bpe", ["char", "bpe", "wordpiece"]) == "bpe"
    with pytest.raises(
        UnknownNameError, match="kind must be one of 'char', 'bpe', 'wordpiece', got 'bep'; did you mean 'bpe'"
    ):
        check_choice("kind", "bep", ["char", "bpe", "wordpiece"])
    with pytest.raises(UnknownNameError):
        check_choice("flag", True, [1, 2])  # True == 1, but a bool is not the number a user meant


def test_check_tensor_reads_arrays_and_lists_into_float32_cpu_and_names_what_it_cannot_read():
    t = check_tensor("x", np.arange(6, dtype=np.float64).reshape(2, 3), fix="pass a tensor")
    assert t.dtype == torch.float32 and t.device.type == "cpu" and t.tolist() == [[0, 1, 2], [3, 4, 5]]
    grad = torch.ones(2, requires_grad=True)
    assert not check_tensor("x", grad * 2, fix="-").requires_grad
    assert check_tensor("x", [[1, 2], [3, 4]], fix="-").dtype == torch.float32
    with pytest.raises(InvalidInputError) as info:
        check_tensor("embeddings", {"a": 1}, fix="pass a [n, d] tensor")
    assert str(info.value) == "cannot read embeddings from a dict; pass a [n, d] tensor"
