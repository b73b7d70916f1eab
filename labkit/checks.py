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
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from labkit.errors import InvalidInputError, UnknownNameError, close_matches

__all__ = [
    "check_int",
    "check_float",
    "check_choice",
    "check_bool",
    "check_tensor",
    "check_output_dir",
    "check_output_file",
]


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


def check_bool(name: str, value: Any, *, fix: str | None = None) -> bool:
    """A parameter name and value in, the value out when it is a real bool (True/False), else one clear error.

    Strings such as "no" and numbers are refused: they are truthy or falsy in ways a user rarely means.
    """
    if isinstance(value, bool) or (
        hasattr(value, "dtype") and getattr(value, "ndim", None) == 0 and str(value.dtype) in ("bool", "torch.bool")
    ):
        return bool(value)
    raise _finish(f"{name} must be True or False", value, fix)


def check_tensor(name: str, value: Any, *, fix: str) -> Any:
    """A parameter name and anything torch can read (tensor, array, nested lists) in, a detached float32 CPU tensor out.

    Anything else raises one clear error naming the type it got: "cannot read {name} from a {type}; {fix}".
    Shapes are the caller's to check.
    """
    import numpy as np
    import torch

    try:
        t = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
    except (TypeError, ValueError, RuntimeError):
        raise InvalidInputError(f"cannot read {name} from a {type(value).__name__}; {fix}") from None
    return t.detach().to("cpu", torch.float32)


def _probe_writable(folder: Path) -> str | None:
    """Try to create and remove a file in `folder`; None when that works, else the reason it did not."""
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=".labkit-write-test-", dir=folder)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    os.close(fd)
    os.unlink(probe)
    return None


def check_output_dir(name: str, path: Any, *, create: bool = True, fix: str | None = None) -> Path:
    """A parameter name and an output folder in, the folder as a Path out (created when `create`), else one clear error.

    Checked before any work starts, so a file in the way, a parent that is a file or a folder that cannot be
    written fails in a second, instead of after a long run whose results then have nowhere to go.
    """
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise _finish(f"{name} must be a folder path (a non-empty str or Path)", path, fix)
    folder = Path(path)
    shown = repr(os.fspath(folder))
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(
            f"{name} {shown} is a file, not a folder; " + (fix or "pass a folder path or move the file")
        )
    for parent in folder.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InvalidInputError(
                    f"{name} {shown} cannot be created: {os.fspath(parent)!r} is a file; "
                    + (fix or "pass another folder")
                )
            break
    if not folder.exists():
        if not create:
            return folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInputError(
                f"{name} {shown} cannot be created ({exc.strerror or type(exc).__name__}); "
                + (fix or "pass a folder you can write to")
            ) from None
    reason = _probe_writable(folder)
    if reason is not None:
        raise InvalidInputError(
            f"{name} {shown} is not writable ({reason}); " + (fix or "pass a folder you can write to")
        )
    return folder


def check_output_file(name: str, path: Any, *, fix: str | None = None) -> Path:
    """A parameter name and an output file path in, the path out (its folder created), else one clear error.

    Refuses a path that is an existing folder, and a folder that is a file or cannot be written (see
    `check_output_dir`); an existing file is fine (it will be replaced).
    """
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise _finish(f"{name} must be a file path (a non-empty str or Path)", path, fix)
    target = Path(path)
    if target.is_dir():
        raise InvalidInputError(f"{name} {os.fspath(target)!r} is a folder, not a file; " + (fix or "pass a file path"))
    check_output_dir(f"the folder of {name}", target.parent if os.fspath(target.parent) else Path("."), fix=fix)
    return target
