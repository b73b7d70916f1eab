"""Lazy re-exports for package `__init__` files.

A package lists `name -> submodule` once; the submodule is imported on first
attribute access. This keeps `import labkit.data` (and friends) cheap while the
package still re-exports a curated `__all__`.
"""

from __future__ import annotations

import importlib
import sys
import types
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

    shadowed = {name for name, source in exports.items() if name == source}
    if shadowed and package in sys.modules:
        # `perplexity` is both a submodule and the function it exports. Importing the submodule directly
        # (`from labkit.evaluation.perplexity import ...`) makes the import system set the package attribute
        # to the module object, which would shadow the function for everyone after. Keep the export instead.
        sys.modules[package].__class__ = _keeps_exports(frozenset(shadowed), package)
    return __getattr__, __dir__


def _keeps_exports(names: frozenset[str], package: str) -> type[types.ModuleType]:
    class _Package(types.ModuleType):
        def __setattr__(self, name: str, value: Any) -> None:
            if name in names and isinstance(value, types.ModuleType) and value.__name__ == f"{package}.{name}":
                value = getattr(value, name)
            super().__setattr__(name, value)

    return _Package
