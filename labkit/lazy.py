"""Lazy re-exports for package `__init__` files.

A package lists `name -> submodule` once; the submodule is imported on first
attribute access. This keeps `import labkit.data` (and friends) cheap while the
package still re-exports a curated `__all__`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return (`__getattr__`, `__dir__`) functions that import `exports[name]` relative to `package` on demand."""

    def __getattr__(name: str) -> Any:
        module_name = exports.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{module_name}")
        namespace = importlib.import_module(package).__dict__
        # Bind every export of that module at once, so a later direct import of
        # the submodule cannot shadow a re-exported name with the module object.
        for export, source in exports.items():
            if source == module_name:
                namespace[export] = getattr(module, export)
        return namespace[name]

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
