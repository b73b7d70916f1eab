"""Optimizers and learning-rate schedules by name: `make_optimizer` and `make_schedule`.

AdamW decays only parameters with two or more dimensions (weight matrices and,
as in nanoGPT, the embedding tables); biases and norm gains are not decayed,
because shrinking them toward zero only shifts or flattens activations.
Schedules are `LambdaLR`s over a plain function of the step, so their
`state_dict()` is a small JSON-able dict and a checkpoint can store it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from labkit.checks import check_float, check_int
from labkit.errors import InvalidInputError, UnknownNameError, close_matches

__all__ = ["make_optimizer", "make_schedule", "lr_multiplier", "OPTIMIZERS", "SCHEDULES"]

OPTIMIZERS = ("adamw", "adam", "sgd", "rmsprop", "adagrad", "adamax", "nadam", "radam")
SCHEDULES = ("constant", "linear", "cosine", "onecycle")
_TORCH_CLASS = {
    "adamw": "AdamW",
    "adam": "Adam",
    "sgd": "SGD",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
    "adamax": "Adamax",
    "nadam": "NAdam",
    "radam": "RAdam",
}
# torch.optim.lr_scheduler.OneCycleLR's defaults: start at lr / 25, end at lr / 25 / 1e4.
ONECYCLE_START = 1 / 25
ONECYCLE_END = 1 / 25 / 1e4


def _param_groups(model_or_params: Any, weight_decay: float) -> list[dict[str, Any]]:
    """Split trainable parameters into a decayed group (dim >= 2) and an undecayed one (biases, norms)."""
    if isinstance(model_or_params, nn.Module):
        params = [p for p in model_or_params.parameters() if p.requires_grad]
    else:
        params = list(model_or_params)
        if params and isinstance(params[0], dict):
            return params  # the caller made their own groups: respect them
    unique = list({id(p): p for p in params}.values())  # tied weights appear once
    if not unique:
        raise InvalidInputError(
            "no trainable parameters to optimize; unfreeze some (requires_grad=True) or pass the model"
        )
    decay = [p for p in unique if p.dim() >= 2]
    no_decay = [p for p in unique if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def make_optimizer(
    model_or_params: Any,
    name: str | type | torch.optim.Optimizer = "adamw",
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    momentum: float = 0.9,
    fused: bool | None = None,
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """A model (or parameters / param groups) and an optimizer name in, a torch optimizer out.

    model_or_params: an nn.Module, an iterable of parameters, or a list of param-group dicts (used as given).
    name: "adamw" (default), "adam", "sgd" (with momentum), "rmsprop", "adagrad", "adamax", "nadam", "radam",
        a torch.optim.Optimizer subclass (built with the same groups and lr), or an optimizer instance (returned as is).
    lr: learning rate (the peak, when a schedule is applied). weight_decay: applied to parameters with dim >= 2 only.
    betas: Adam-family betas. momentum: SGD/RMSprop momentum.
    fused: fused Adam/AdamW kernels; None turns them on when every parameter is on a CUDA device.
    kwargs: passed to the optimizer's constructor (eps, nesterov, ...).
    """
    if isinstance(name, torch.optim.Optimizer):
        return name
    check_float("lr", lr, low=0, low_open=True)
    check_float("weight_decay", weight_decay, low=0)
    groups = _param_groups(model_or_params, weight_decay)
    if isinstance(name, type):
        if not issubclass(name, torch.optim.Optimizer):
            raise InvalidInputError(f"optimizer class {name.__name__} is not a torch.optim.Optimizer subclass")
        accepted = inspect.signature(name.__init__).parameters
        if "weight_decay" not in accepted:
            groups = [{"params": [p for g in groups for p in g["params"]]}]
        return name(groups, lr=lr, **kwargs)
    key = str(name).lower()
    if key not in _TORCH_CLASS:
        raise UnknownNameError(
            f"unknown optimizer {name!r}; {close_matches(key, OPTIMIZERS) or 'choose one of ' + ', '.join(OPTIMIZERS)}"
        )
    cls = getattr(torch.optim, _TORCH_CLASS[key])
    if key in ("adamw", "adam"):
        if fused is None:
            fused = all(p.is_cuda for g in groups for p in g["params"])
        return cls(groups, lr=lr, betas=tuple(betas), fused=bool(fused) or None, **kwargs)
    if key == "sgd":
        return cls(groups, lr=lr, momentum=momentum, **kwargs)
    if key == "rmsprop":
        return cls(groups, lr=lr, momentum=momentum, **kwargs)
    if key in ("adamax", "nadam", "radam"):
        return cls(groups, lr=lr, betas=tuple(betas), **kwargs)
    return cls(groups, lr=lr, **kwargs)


def lr_multiplier(name: str, step: int, total_steps: int, warmup: int = 0, min_lr_ratio: float = 0.1) -> float:
    """Return the factor applied to the peak lr before optimizer step `step` (0-based) of `total_steps`.

    Warmup is linear, (step + 1) / (warmup + 1), as in nanoGPT; then "constant" stays at 1, "linear" falls to
    min_lr_ratio, "cosine" follows half a cosine to min_lr_ratio, "onecycle" (after ramping from 1/25) anneals
    with a cosine to 1/25/1e4 as torch's OneCycleLR does.
    """
    if name == "onecycle":
        if step < warmup:
            return ONECYCLE_START + (1.0 - ONECYCLE_START) * step / max(warmup, 1)
        progress = min(max((step - warmup) / max(total_steps - warmup, 1), 0.0), 1.0)
        return ONECYCLE_END + (1.0 - ONECYCLE_END) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if name == "constant":
        return 1.0
    progress = min(max((step - warmup) / max(total_steps - warmup, 1), 0.0), 1.0)
    if name == "linear":
        return 1.0 - (1.0 - min_lr_ratio) * progress
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_schedule(
    optimizer: torch.optim.Optimizer,
    name: str | Callable[[int], float] | None = "cosine",
    total_steps: int | None = None,
    warmup: int | float = 0,
    min_lr_ratio: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """An optimizer and a schedule name in, a `LambdaLR` (step it once per optimizer step) out.

    name: "constant", "linear", "cosine" (default), "onecycle", None (= constant), or a function step -> multiplier.
    total_steps: optimizer steps in the run (needed by every decaying schedule).
    warmup: linear warmup steps; a float in (0, 1) is a fraction of total_steps. "onecycle" uses 30% when it is 0.
    min_lr_ratio: final lr as a fraction of the peak for "linear" and "cosine" (nanoGPT: 0.1).
    """
    if callable(name):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, name)
    key = "constant" if name is None else str(name).lower().replace("-", "").replace("_", "")
    if key not in SCHEDULES:
        raise UnknownNameError(
            f"unknown schedule {name!r}; {close_matches(str(name), SCHEDULES) or 'choose one of ' + ', '.join(SCHEDULES)}"
        )
    if key != "constant":
        check_int("total_steps", total_steps, fix=f"schedule {key!r} needs the number of optimizer steps")
    total = int(total_steps or 1)
    if isinstance(warmup, float) and 0 < warmup < 1:
        warmup = int(round(warmup * total))
    if key == "onecycle" and not warmup:
        warmup = int(round(0.3 * total))
    check_int("warmup", warmup, low=0, fix="give a number of steps or a fraction in (0, 1)")
    check_float("min_lr_ratio", min_lr_ratio, low=0, high=1)

    def multiplier(step: int) -> float:
        return lr_multiplier(key, step, total, warmup, min_lr_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
