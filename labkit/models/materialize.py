"""Build a model straight from its weights: config and state dict in, model out, with no random initialisation.

`GPT(config)` draws every weight from a random distribution first (seconds for 135M parameters on a
CPU), only for `load_state_dict` to overwrite them all with a copy. Here the model is built with torch's
initialisers switched off (its parameters are uninitialised memory that is never touched), the given
tensors are assigned as its parameters (no copy) and tied weights are tied again. Buffers `__init__`
derives from the config (rotary frequencies) are computed as usual. (The `meta` device would avoid even
the allocation, but its first use imports torch's compiler stack: seconds on a CPU.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from labkit.errors import InvalidInputError

__all__ = ["build_model"]


def build_model(cls: type[nn.Module], config: Any, state: dict[str, torch.Tensor], *, where: str = "") -> nn.Module:
    """A model class, its config and a full state dict (labkit names) in, the model in eval mode out.

    The tensors become the parameters themselves (same storage): pass tensors nothing else writes to.
    A tied matrix may come under either of its names. where: names the source in the error message.
    """
    with _no_init():
        model = cls(config)
    tied = _tied_names(model)
    state = dict(state)
    for keep, alias in tied:
        if keep not in state and alias in state:
            state[keep] = state[alias]
        state.pop(alias, None)
    aliases = {alias for _, alias in tied}
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if k not in aliases}
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    source = f" of {where}" if where else ""
    if missing or unexpected:
        raise InvalidInputError(
            f"weights{source} do not fit the {cls.__name__}: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    for name, tensor in state.items():
        if tuple(tensor.shape) != expected[name]:
            raise InvalidInputError(
                f"weight {name}{source} has shape {tuple(tensor.shape)}; the {cls.__name__} expects {expected[name]}"
            )
    model.load_state_dict(state, strict=False, assign=True)
    for keep, alias in tied:  # assign replaced one Parameter object; point the alias at it again
        owner, _, leaf = alias.rpartition(".")
        setattr(model.get_submodule(owner), leaf, model.get_parameter(keep))
    return model.eval()


_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "xavier_uniform_")
_INIT_FUNCTIONS += ("xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_")


@contextlib.contextmanager
def _no_init() -> Iterator[None]:
    """Make torch.nn.init's functions return their tensor untouched while a model is built.

    The functions are restored on exit; do not build models in other threads meanwhile.
    """
    saved = {name: getattr(torch.nn.init, name) for name in _INIT_FUNCTIONS}
    for name in _INIT_FUNCTIONS:
        setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


def _tied_names(model: nn.Module) -> list[tuple[str, str]]:
    """(first name, alias) for each Parameter registered under two names (GPT's lm_head shares wte)."""
    first: dict[int, str] = {}
    pairs = []
    for module_name, module in model.named_modules(remove_duplicate=False):
        for leaf, p in module.named_parameters(recurse=False):
            name = f"{module_name}.{leaf}" if module_name else leaf
            if id(p) in first and first[id(p)] != name:
                pairs.append((first[id(p)], name))
            else:
                first.setdefault(id(p), name)
    return pairs
