"""Exceptions with one-line messages that name the problem and the fix.

Every error labkit raises on bad input derives from `LabkitError`, and also
from the built-in type a Python user would expect (ValueError, FileNotFoundError,
KeyError), so both `except LabkitError` and `except ValueError` work. The CLI
prints the message on one line and exits with status 2.
"""

from __future__ import annotations


class LabkitError(Exception):
    """Base class for labkit's user-facing errors."""


class InvalidInputError(LabkitError, ValueError):
    """A value passed to labkit is out of range, of the wrong type or inconsistent."""


class MissingSourceError(LabkitError, FileNotFoundError):
    """A corpus, model or file that labkit needs is not on this machine; the message says how to get it."""


class UnknownNameError(LabkitError, KeyError):
    """A name (corpus, preset, hook, parameter, ...) is not known; the message lists the close matches."""

    def __str__(self) -> str:  # KeyError would otherwise print the repr with quotes
        return str(self.args[0]) if self.args else ""


def close_matches(name: str, candidates, n: int = 5) -> str:
    """Return a human-readable hint such as "did you mean 'a', 'b'?" (empty when nothing is close)."""
    import difflib

    cands = [str(c) for c in candidates]
    matches = difflib.get_close_matches(str(name), cands, n=n, cutoff=0.5)
    if not matches:
        return ""
    return "did you mean " + ", ".join(repr(m) for m in matches) + "?"
