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
    "viz",
    "widgets",
    "notebooks",
)

__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"labkit.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
