"""Hook points and activation caches: look inside any labkit model, or change what flows through it.

Every model is a `HookedModel`; its interesting intermediate tensors pass
through `HookPoint` identity modules named by their module path
(`blocks.0.attn.hook_pattern`). `run_with_cache` records them,
`run_with_hooks` / `hooks()` let a function read or replace them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as _torch_module

from labkit.errors import InvalidInputError, UnknownNameError, close_matches

__all__ = ["HookPoint", "HookedModel", "ActivationCache", "HookFn", "NameFilter"]

# fn(tensor, hook) -> None (just look) or a tensor of the same shape (replace the activation)
HookFn = Callable[[torch.Tensor, "HookPoint"], torch.Tensor | None]
# which hook points: None (all), one name, a list of names, or a predicate on the name
NameFilter = str | Iterable[str] | Callable[[str], bool] | None


def _global_module_hooks() -> bool:
    """True when hooks were registered for every module (torch.nn.modules.module.register_module_forward_hook)."""
    return bool(_torch_module._global_forward_hooks or _torch_module._global_forward_pre_hooks)


class HookPoint(nn.Module):
    """Identity module marking a place where an activation can be read or replaced; tensor in, same tensor out.

    `name` is its module path inside the model, set by `HookedModel.setup_hooks()`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.name: str = ""

    @property
    def has_hooks(self) -> bool:
        """True while any forward hook is attached (attention uses it to leave the fused SDPA path)."""
        return bool(self._forward_hooks)

    def add_hook(self, fn: HookFn) -> torch.utils.hooks.RemovableHandle:
        """Attach fn(tensor, hook) -> tensor | None; return a handle whose `.remove()` detaches it."""

        def _call(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
            return fn(output, self)

        return self.register_forward_hook(_call)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # Fast path: a hook point without hooks is the identity, so skip nn.Module's call machinery
        # (~100 hook points per token; it costs several percent of a small model's decoding time).
        if self._forward_hooks or self._forward_pre_hooks or _global_module_hooks():
            return super().__call__(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tensor in, the same tensor out (attached hooks may replace it)."""
        return x

    def extra_repr(self) -> str:
        return repr(self.name)


class ActivationCache(Mapping):
    """Read-only mapping hook name -> tensor recorded by `run_with_cache`, with helpers for per-layer views."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self._tensors = dict(tensors)

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self._tensors:
            hint = close_matches(name, self._tensors) or "cached names: " + ", ".join(list(self._tensors)[:8])
            raise UnknownNameError(
                f"no activation {name!r} in this cache; {hint} (ask for it with run_with_cache(names=...))"
            )
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __repr__(self) -> str:
        return f"ActivationCache({len(self)} tensors: {', '.join(list(self._tensors)[:4])}{', ...' if len(self) > 4 else ''})"

    def pattern(self, layer: int) -> torch.Tensor:
        """Layer index in, that layer's attention pattern [batch, head, q_pos, k_pos] out."""
        return self[f"blocks.{layer}.attn.hook_pattern"]

    def stack(self, suffix: str) -> torch.Tensor:
        """A hook suffix such as "hook_pattern" in, the matching tensors of every layer stacked on a new dim 0 out."""
        names = [n for n in self._tensors if n == suffix or n.endswith("." + suffix)]
        if not names:
            suffixes = sorted({n.rsplit(".", 1)[-1] for n in self._tensors})
            raise UnknownNameError(
                f"no cached activation ends with {suffix!r}; {close_matches(suffix, suffixes) or 'cached: ' + ', '.join(suffixes)}"
            )
        return torch.stack([self._tensors[n] for n in names])

    def to(self, device: str | torch.device) -> ActivationCache:
        """Device in, a new cache with every tensor moved there out."""
        return ActivationCache({k: v.to(device) for k, v in self._tensors.items()})


class HookedModel(nn.Module):
    """Mixin for labkit models: names the HookPoints and adds hook_names, run_with_cache, run_with_hooks, hooks()."""

    def setup_hooks(self) -> None:
        """Give every HookPoint its module path as name; call at the end of a model's __init__."""
        for name, module in self.named_modules():
            if isinstance(module, HookPoint):
                module.name = name

    def hook_points(self) -> dict[str, HookPoint]:
        """Return {name: HookPoint} for every hook point, in forward order of registration."""
        return {name: m for name, m in self.named_modules() if isinstance(m, HookPoint)}

    def hook_names(self) -> list[str]:
        """Return the names of all hook points (e.g. "blocks.0.attn.hook_pattern")."""
        return list(self.hook_points())

    def _select(self, names: NameFilter) -> list[HookPoint]:
        points = self.hook_points()
        if names is None:
            return list(points.values())
        if callable(names):
            return [p for n, p in points.items() if names(n)]
        wanted = [names] if isinstance(names, str) else list(names)
        for n in wanted:
            if not isinstance(n, str):
                raise InvalidInputError(
                    f"hook names must be strings, got {n!r}; pass names like 'blocks.0.attn.hook_pattern'"
                )
            if n not in points:
                hint = close_matches(n, points) or "see model.hook_names()"
                raise UnknownNameError(f"unknown hook point {n!r}; {hint}")
        return [points[n] for n in wanted]

    @contextlib.contextmanager
    def hooks(self, fwd_hooks: Iterable[tuple[Any, HookFn]] = ()) -> Iterator[HookedModel]:
        """Context manager: attach [(name | names | predicate, fn)] on entry, detach them all on exit (even on error).

        fwd_hooks: pairs of a hook selector and fn(tensor, hook) returning None or a replacement tensor.
        """
        handles = []
        try:
            for selector, fn in fwd_hooks:
                if not callable(fn):
                    raise InvalidInputError(f"hook function for {selector!r} is not callable; pass fn(tensor, hook)")
                for point in self._select(selector):
                    handles.append(point.add_hook(fn))
            yield self
        finally:
            for h in handles:
                h.remove()

    def run_with_hooks(self, *args: Any, fwd_hooks: Iterable[tuple[Any, HookFn]] = (), **kwargs: Any) -> Any:
        """Model inputs and [(name_or_predicate, fn)] in, the model's output with the hooks applied out.

        fwd_hooks: fn(tensor, hook) may return a tensor that replaces the activation. Hooks are removed afterwards.
        """
        with self.hooks(fwd_hooks):
            return self(*args, **kwargs)

    def run_with_cache(
        self,
        *args: Any,
        names: NameFilter = None,
        device: str | torch.device | None = None,
        detach: bool = True,
        **kwargs: Any,
    ) -> tuple[Any, ActivationCache]:
        """Model inputs in, (model output, ActivationCache of the requested hook points) out.

        names: None (all), one name, a list, or a predicate name -> bool. device: move cached tensors there
        (e.g. "cpu"). detach: drop the autograd graph of cached tensors (set False to take gradients through them).
        """
        store: dict[str, torch.Tensor] = {}

        def record(t: torch.Tensor, hook: HookPoint) -> None:
            t = t.detach() if detach else t
            store[hook.name] = t.to(device) if device is not None else t

        points = self._select(names)
        with self.hooks([(p.name, record) for p in points]):
            out = self(*args, **kwargs)
        order = [p.name for p in points]
        return out, ActivationCache({n: store[n] for n in order if n in store})
