"""Learning-rate range test (Leslie Smith 2015; fastai's `lr_find`): sweep the lr, watch the loss.

Train for `num_steps` steps while the learning rate grows exponentially from
`start_lr` to `end_lr`, one optimizer step per batch, recording the loss. The loss
first barely moves (lr too small), then falls (useful lrs), then explodes (too
large); the sweep stops once the smoothed loss exceeds `diverge_factor` times its
best value. Afterwards the model is put back exactly as it was: weights, buffers,
gradients, requires_grad and training flags, device and the RNG state.

This module depends only on torch.optim, not on labkit's trainer, so it can be used
(and understood) on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from labkit.errors import InvalidInputError, UnknownNameError, close_matches

__all__ = ["LRFinderResult", "lr_find"]

_OPTIMIZERS = ("adamw", "sgd")


@dataclass
class LRFinderResult:
    """The lr sweep: learning rates, raw and smoothed losses, and a suggested learning rate."""

    lrs: list[float] = field(default_factory=list)  # learning rate used at each step
    losses: list[float] = field(default_factory=list)  # raw training loss at each step (before that step's update)
    smoothed: list[float] = field(default_factory=list)  # bias-corrected exponential moving average of `losses`
    suggestion: float | None = None  # lr at the steepest descent of the smoothed curve (fastai's "steep"); see lr_find
    diverged: bool = False  # True when the sweep stopped early because the loss blew up

    def to_pandas(self) -> Any:
        """The curve as a pandas DataFrame with columns lr, loss, smoothed_loss (one row per step)."""
        import pandas as pd

        return pd.DataFrame({"lr": self.lrs, "loss": self.losses, "smoothed_loss": self.smoothed})

    def plot(self, title: str = "Learning-rate finder") -> Any:
        """A plotly figure: loss against lr on a log axis, the smoothed curve on top, the suggestion marked."""
        import plotly.graph_objects as go

        fig = go.Figure()
        fig.add_trace(go.Scatter(x=self.lrs, y=self.losses, mode="lines", name="loss", opacity=0.35))
        fig.add_trace(go.Scatter(x=self.lrs, y=self.smoothed, mode="lines", name="smoothed loss"))
        if self.suggestion is not None:
            at = int(np.argmin(np.abs(np.log(self.lrs) - math.log(self.suggestion))))
            fig.add_trace(
                go.Scatter(
                    x=[self.suggestion],
                    y=[self.smoothed[at]],
                    mode="markers",
                    name=f"suggestion {self.suggestion:.2e}",
                    marker=dict(size=11, symbol="circle-open", line=dict(width=2)),
                )
            )
            fig.add_vline(x=self.suggestion, line_dash="dot", opacity=0.5)
        fig.update_xaxes(type="log", title="learning rate")
        fig.update_yaxes(title="training loss")
        fig.update_layout(title=title, template="plotly_white")
        return fig


@torch.enable_grad()  # the sweep trains, whatever gradient mode the caller is in
def lr_find(
    model: torch.nn.Module,
    batches: Iterable[Any],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    optimizer: str | Callable[[Any], torch.optim.Optimizer] = "adamw",
    weight_decay: float = 0.0,
    smooth: float = 0.98,
    diverge_factor: float = 4.0,
    device: str | torch.device | None = None,
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
) -> LRFinderResult:
    """A model and training batches in, `LRFinderResult` (lrs, losses, smoothed, suggestion) out; the model is left unchanged.

    batches: iterable of batches; cycled when it has fewer than num_steps (a one-shot iterator is cached).
        By default a batch is a dict and the loss is `model(**batch).loss`.
    start_lr, end_lr: the sweep's first and last learning rate (0 < start_lr < end_lr); step i uses
        start_lr * (end_lr / start_lr) ** (i / (num_steps - 1)).
    num_steps: optimizer steps (at least 2). optimizer: "adamw", "sgd" (momentum 0.9), or a factory
        `f(params) -> torch.optim.Optimizer` (its lr is overwritten every step; weight_decay is then unused).
    smooth: EMA factor of the smoothed loss (0 = no smoothing). diverge_factor: stop when the smoothed loss
        exceeds this multiple of its minimum (or any loss is nan/inf).
    device: where to run the sweep (default: where the model is); the model is moved back afterwards.
    loss_fn: `f(model, batch) -> scalar loss tensor` for models or batches that do not follow the dict convention.

    The suggestion is fastai's "steep" rule: the lr where the smoothed loss falls fastest per unit log-lr,
    looked for after the first 10% of steps (smoothing warm-up) and before the last 5 (the blow-up). If the
    loss never falls it is one tenth of the lr with the lowest smoothed loss (Smith's rule of thumb).
    """
    _validate(start_lr, end_lr, num_steps, smooth, diverge_factor, weight_decay)
    loss_fn = loss_fn or _default_loss
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InvalidInputError("the model has no parameter with requires_grad=True; unfreeze some before lr_find")
    make_optimizer = _optimizer_factory(optimizer, weight_decay)
    snapshot = _Snapshot(model)
    if device is not None:
        model.to(device)
    run_device = next(model.parameters()).device
    lrs, losses, smoothed = [], [], []
    diverged = False
    try:
        with torch.random.fork_rng(devices=[run_device] if run_device.type == "cuda" else []):
            for p in model.parameters():
                p.grad = None
            model.train()
            opt = make_optimizer(params)
            avg, best = 0.0, math.inf
            batch_stream = _cycle(batches)
            for i in range(num_steps):
                lr = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))
                for group in opt.param_groups:
                    group["lr"] = lr
                loss = loss_fn(model, _to_device(next(batch_stream), run_device))
                if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                    raise InvalidInputError(
                        f"the loss at step {i} is {type(loss).__name__}; loss_fn must return a scalar tensor"
                    )
                value = float(loss.detach())
                avg = smooth * avg + (1 - smooth) * value
                smooth_value = avg / (1 - smooth ** (i + 1))  # bias correction: early averages are not pulled to 0
                lrs.append(lr)
                losses.append(value)
                smoothed.append(smooth_value)
                if not math.isfinite(value) or (i > 0 and smooth_value > diverge_factor * best):
                    diverged = True
                    break
                best = min(best, smooth_value)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    finally:
        snapshot.restore(model)
    return LRFinderResult(
        lrs=lrs, losses=losses, smoothed=smoothed, suggestion=_suggest(lrs, smoothed), diverged=diverged
    )


# ---- helpers ---------------------------------------------------------------------------------------------


class _Snapshot:
    """Everything lr_find may change, copied to the CPU so that GPU memory is not doubled."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        self.grads = [(p, None if p.grad is None else p.grad.detach().to("cpu", copy=True)) for p in model.parameters()]
        self.requires_grad = [(p, p.requires_grad) for p in model.parameters()]
        self.training = [(m, m.training) for m in model.modules()]
        first = next(model.parameters(), None)
        self.device = first.device if first is not None else None

    def restore(self, model: torch.nn.Module) -> None:
        if self.device is not None:
            model.to(self.device)
        model.load_state_dict(self.state)
        for p, grad in self.grads:
            p.grad = None if grad is None else grad.to(p.device)
        for p, flag in self.requires_grad:
            p.requires_grad_(flag)
        for m, flag in self.training:
            m.training = flag


def _validate(
    start_lr: float, end_lr: float, num_steps: int, smooth: float, diverge_factor: float, weight_decay: float
) -> None:
    if not (isinstance(start_lr, (int, float)) and start_lr > 0):
        raise InvalidInputError(f"start_lr={start_lr!r} must be a positive number such as 1e-7")
    if not (isinstance(end_lr, (int, float)) and end_lr > start_lr):
        raise InvalidInputError(f"end_lr={end_lr!r} must be larger than start_lr={start_lr!r}; the sweep goes upwards")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 2:
        raise InvalidInputError(f"num_steps={num_steps!r} must be an int >= 2 (100 is typical)")
    if not 0 <= smooth < 1:
        raise InvalidInputError(f"smooth={smooth!r} must be in [0, 1); 0.98 is fastai's default, 0 turns smoothing off")
    if not diverge_factor > 1:
        raise InvalidInputError(f"diverge_factor={diverge_factor!r} must be > 1 (stop when loss > factor * best loss)")
    if weight_decay < 0:
        raise InvalidInputError(f"weight_decay={weight_decay!r} must be >= 0")


def _optimizer_factory(optimizer: Any, weight_decay: float) -> Callable[[list], torch.optim.Optimizer]:
    if callable(optimizer):
        return optimizer
    if optimizer == "adamw":
        return lambda params: torch.optim.AdamW(params, lr=0.0, weight_decay=weight_decay)
    if optimizer == "sgd":
        return lambda params: torch.optim.SGD(params, lr=0.0, momentum=0.9, weight_decay=weight_decay)
    hint = close_matches(str(optimizer), _OPTIMIZERS) or "use 'adamw', 'sgd' or a factory f(params) -> Optimizer"
    raise UnknownNameError(f"unknown optimizer {optimizer!r}; {hint}")


def _default_loss(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    if not isinstance(batch, Mapping):
        raise InvalidInputError(
            f"a batch is a {type(batch).__name__}, not a dict; pass loss_fn=lambda model, batch: ... "
            "that returns the loss"
        )
    out = model(**batch)
    loss = out["loss"] if isinstance(out, Mapping) else getattr(out, "loss", None)
    if loss is None:
        raise InvalidInputError("the model returned no loss; put 'labels' in the batches or pass loss_fn")
    return loss


def _cycle(batches: Iterable[Any]) -> Iterator[Any]:
    """Yield batches forever: re-iterate a re-iterable (list, DataLoader), replay a cache for a one-shot iterator."""
    if isinstance(batches, Mapping):
        raise InvalidInputError("batches is a single dict; pass an iterable of batches, e.g. [batch]")
    one_shot = iter(batches) is batches
    cache: list[Any] = []
    source: Iterable[Any] = batches
    while True:
        produced = False
        for batch in source:
            produced = True
            if one_shot:
                cache.append(batch)
            yield batch
        if not produced:
            raise InvalidInputError("batches is empty; pass at least one batch")
        if one_shot:
            source = cache


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _suggest(lrs: list[float], smoothed: list[float]) -> float | None:
    """Steepest descent of the smoothed loss against log(lr), away from the warm-up and the blow-up."""
    n = len(lrs)
    if n < 2:
        return None
    lo, hi = n // 10, n - 5
    if hi - lo < 2:  # short curve: use all of it
        lo, hi = 0, n
    x, y = np.log(np.asarray(lrs[lo:hi])), np.asarray(smoothed[lo:hi])
    slopes = np.diff(y) / np.diff(x)
    if np.isfinite(slopes).any() and np.nanmin(slopes) < 0:
        return float(lrs[lo + int(np.nanargmin(np.where(np.isfinite(slopes), slopes, np.nan)))])
    finite = [i for i, v in enumerate(smoothed) if math.isfinite(v)]
    return max(lrs[0], lrs[min(finite, key=smoothed.__getitem__)] / 10) if finite else None
