"""labkit: a Jupyter-first lab for learning, teaching and exploring transformer language models.

`import labkit` is light: sub-packages (`labkit.data`, `labkit.models`, ...) load
on first attribute access, and heavy optional libraries load only inside the
functions that need them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBPACKAGES = (
    "data",
    "models",
    "training",
    "generation",
    "evaluation",
    "interpret",
    "viz",
    "widgets",
    "notebooks",
)

# Top-level shortcuts that lessons use: `labkit.record("val_loss", 1.9)`.
_SHORTCUTS = {"record": "labkit.notebooks.results", "collect": "labkit.notebooks.results"}

__all__ = ["__version__", *_SUBPACKAGES, *_SHORTCUTS]


def __getattr__(name: str) -> Any:
    if name in _SHORTCUTS:
        value = getattr(importlib.import_module(_SHORTCUTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"labkit.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
