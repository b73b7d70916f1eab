"""One validator for the numbers and names users pass in: the same check, the same one-line error, everywhere.

Every public function that takes a count, a rate or a choice checks it here before any work starts, so
a bad value fails in a second with a message that names the parameter, the value and the fix:

    >>> check_int("steps", 0)
    Traceback (most recent call last):
    InvalidInputError: steps must be an integer >= 1, got 0
    >>> check_float("clip_norm", -1.0, low=0, low_open=True, allow_none=True, fix="None turns clipping off")
    Traceback (most recent call last):
    InvalidInputError: clip_norm must be a finite number > 0 (or None), got -1.0; None turns clipping off

Booleans are refused where a number is expected (`True` is an int in Python, but never what a user meant).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

from labkit.errors import InvalidInputError, UnknownNameError, close_matches

__all__ = ["check_int", "check_float", "check_choice"]


def _finish(message: str, value: Any, fix: str | None) -> InvalidInputError:
    text = f"{message}, got {value!r}"
    return InvalidInputError(f"{text}; {fix}" if fix else text)


def _bounds(low: Any, high: Any, low_open: bool, high_open: bool) -> str:
    lo = None if low is None else (f"> {low}" if low_open else f">= {low}")
    hi = None if high is None else (f"< {high}" if high_open else f"<= {high}")
    if lo and hi:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    return lo or hi or ""


def check_int(
    name: str,
    value: Any,
    *,
    low: int | None = 1,
    high: int | None = None,
    allow_none: bool = False,
    fix: str | None = None,
) -> int | None:
    """A parameter name and value in, the value as a Python int out (None passes when `allow_none`), else one clear error.

    low, high: inclusive bounds (None: unbounded); the default demands a positive integer.
    fix: what to do instead, appended to the message ("use None for no limit").
    Integral numpy and torch scalars are accepted; floats such as 2.0, bools and strings are not.
    """
    if value is None and allow_none:
        return None
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok and hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # 0-d tensors and numpy scalars
        inner = value.item()
        ok, value = isinstance(inner, int) and not isinstance(inner, bool), inner if isinstance(inner, int) else value
    if ok and (low is None or value >= low) and (high is None or value <= high):
        return int(value)
    rule = _bounds(low, high, False, False)
    message = f"{name} must be an integer" + (f" {rule}" if rule else "") + (" (or None)" if allow_none else "")
    raise _finish(message, value, fix)


def check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
    fix: str | None = None,
) -> float | None:
    """A parameter name and value in, the value as a finite Python float out (None passes when `allow_none`), else one clear error.

    low, high: bounds (None: unbounded); low_open/high_open make them strict (> low, < high).
    Ints are accepted (1 means 1.0); bools, strings, NaN and infinities are not.
    """
    if value is None and allow_none:
        return None
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0 and not isinstance(value, bool):
        value = value.item()
    rule = _bounds(low, high, low_open, high_open)
    message = "must be a finite number" + (f" {rule}" if rule else "") + (" (or None)" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise _finish(f"{name} {message}", value, fix)
    x = float(value)
    if low is not None and (x <= low if low_open else x < low):
        raise _finish(f"{name} {message}", value, fix)
    if high is not None and (x >= high if high_open else x > high):
        raise _finish(f"{name} {message}", value, fix)
    return x


def check_choice(name: str, value: Any, choices: Iterable[Any], *, fix: str | None = None) -> Any:
    """A parameter name, value and the allowed values in, the value out, else an UnknownNameError listing close matches."""
    allowed = list(choices)
    if value in allowed and not (isinstance(value, bool) and not any(isinstance(c, bool) for c in allowed)):
        return value
    hint = close_matches(str(value), [str(c) for c in allowed]) if isinstance(value, str) else ""
    listed = ", ".join(repr(c) for c in allowed)
    message = f"{name} must be one of {listed}, got {value!r}" + (f"; {hint}" if hint else "")
    raise UnknownNameError(f"{message}; {fix}" if fix else message)
