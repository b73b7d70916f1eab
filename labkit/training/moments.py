"""Optimizer state of one parameter, step by step: an optimizer (or a training run) in, `MomentSnapshot`s out.

Adam keeps two running averages per weight: the first moment m (a momentum of the gradients) and the second
moment v (of their squares). `MomentRecorder` hooks the optimizer's `step()` (torch's step pre- and post-hooks)
and copies, for one parameter, what the step saw and did: the weight before, the gradient it used (after
clipping), the state after (m and v for Adam/AdamW, the momentum buffer for SGD) and the weight after. Each
snapshot then derives the bias-corrected moments and the step predicted by the update rule, so the rule can be
checked against the change the optimizer really made (`labkit.viz.moment_view` draws them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from labkit.checks import check_int
from labkit.errors import InvalidInputError, UnknownNameError, close_matches
from labkit.training.callbacks import Callback

__all__ = ["MomentSnapshot", "MomentRecorder", "hand_adam_step", "SUPPORTED_OPTIMIZERS"]

SUPPORTED_OPTIMIZERS = ("Adam", "AdamW", "SGD")


@dataclass
class MomentSnapshot:
    """What one optimizer step did to one parameter: inputs, optimizer state after the step, and the change.

    kind: "adam" (Adam, L2 penalty added to the gradient), "adamw" (decoupled weight decay) or "sgd".
    step: the optimizer's step count t after this step (1 for the first). lr, betas, eps, weight_decay, momentum:
    the group's settings used by the step. weight: the parameter before the step; grad: the gradient the step
    used (after clipping, before any L2 term); exp_avg / exp_avg_sq: Adam's m_t and v_t after the step
    (SGD: exp_avg is the momentum buffer, exp_avg_sq None); new_weight: the parameter after the step.
    """

    name: str
    kind: str
    step: int
    lr: float
    betas: tuple[float, float]
    eps: float
    weight_decay: float
    momentum: float
    weight: torch.Tensor
    grad: torch.Tensor
    exp_avg: torch.Tensor | None
    exp_avg_sq: torch.Tensor | None
    new_weight: torch.Tensor

    @property
    def m_hat(self) -> torch.Tensor:
        """Bias-corrected first moment m_t / (1 - beta1^t) (Adam); the momentum buffer for SGD."""
        if self.kind == "sgd":
            return self._buffer()
        return self.exp_avg / (1 - self.betas[0] ** self.step)  # type: ignore[operator]

    @property
    def v_hat(self) -> torch.Tensor:
        """Bias-corrected second moment v_t / (1 - beta2^t) (Adam only)."""
        if self.exp_avg_sq is None:
            raise InvalidInputError(f"{self.kind} keeps no second moment; only Adam and AdamW have v")
        return self.exp_avg_sq / (1 - self.betas[1] ** self.step)

    @property
    def direction(self) -> torch.Tensor:
        """The step per unit of learning rate, before weight decay: Adam m̂ / (√v̂ + ε); SGD the (momentum) gradient."""
        if self.kind == "sgd":
            return self.m_hat
        return self.m_hat / (self.v_hat.sqrt() + self.eps)

    @property
    def predicted_update(self) -> torch.Tensor:
        """The change the update rule gives: AdamW -lr (m̂/(√v̂+ε) + λ w); Adam and SGD -lr · direction."""
        update = -self.lr * self.direction
        if self.kind == "adamw":
            update = update - self.lr * self.weight_decay * self.weight
        return update

    @property
    def update(self) -> torch.Tensor:
        """The change the optimizer really made: new_weight - weight."""
        return self.new_weight - self.weight

    def _buffer(self) -> torch.Tensor:
        if self.exp_avg is not None:
            return self.exp_avg
        # SGD without momentum keeps no buffer: the step is the gradient (plus its L2 term)
        return self.grad + self.weight_decay * self.weight

    def summary(self) -> str:
        """One line: step, mean |g|, mean |m̂|, mean √v̂, mean |direction| and how well the rule predicts the change."""
        mean = lambda x: float(x.abs().mean())  # noqa: E731
        parts = [f"{self.name} step {self.step} ({self.kind}, lr {self.lr:.3g}): mean |g| {mean(self.grad):.3g}"]
        if self.kind == "sgd":
            if self.exp_avg is not None:
                parts.append(f"mean |buffer| {mean(self.exp_avg):.3g}")
        else:
            parts.append(f"mean |m̂| {mean(self.m_hat):.3g}, mean √v̂ {mean(self.v_hat.sqrt()):.3g}")
            parts.append(f"mean |m̂/(√v̂+ε)| {mean(self.direction):.3g}")
        err = float((self.predicted_update - self.update).abs().max())
        parts.append(f"max |rule - real change| {err:.2g}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"MomentSnapshot({self.summary()})"


def _kind(optimizer: torch.optim.Optimizer) -> str:
    name = type(optimizer).__name__
    if name not in SUPPORTED_OPTIMIZERS:
        raise InvalidInputError(
            f"moments are read from {', '.join(SUPPORTED_OPTIMIZERS)} optimizers, got {name}; "
            "train with optimizer='adamw', 'adam' or 'sgd'"
        )
    return name.lower()


def _find(model: nn.Module | None, optimizer: torch.optim.Optimizer, param: Any) -> tuple[str, torch.Tensor, dict]:
    """A parameter (name with a model, or the tensor) in, (name, tensor, its param group) out."""
    if isinstance(param, str):
        if model is None:
            raise InvalidInputError(f"a parameter name ({param!r}) needs the model; pass the tensor or model=")
        named = dict(model.named_parameters())
        if param not in named:
            raise UnknownNameError(
                f"the model has no parameter {param!r}; {close_matches(param, list(named)) or 'see model.named_parameters()'}"
            )
        name, tensor = param, named[param]
    elif isinstance(param, torch.Tensor):
        tensor = param
        names = {id(p): n for n, p in model.named_parameters()} if model is not None else {}
        name = names.get(id(param), f"parameter {tuple(param.shape)}")
    else:
        raise InvalidInputError(f"param must be a parameter name or tensor, got {type(param).__name__}")
    for group in optimizer.param_groups:
        if any(p is tensor for p in group["params"]):
            return name, tensor, group
    raise InvalidInputError(f"{name} is not optimized by this optimizer (frozen, or another model's parameter)")


class MomentRecorder(Callback):
    """Records `MomentSnapshot`s of one parameter at chosen optimizer steps; a training callback or attached by hand.

    In training: `rec = MomentRecorder("blocks.0.attn.c_proj.weight", steps=[1, 10, 100])`, then
    `train(model, batches, callbacks=[rec])`; `rec.snapshots` holds one snapshot per recorded step.
    By hand: `rec.attach(optimizer, model)` before stepping, `rec.detach()` after.

    param: the parameter's name in `model.named_parameters()` (or the tensor itself with `attach`).
    steps: the optimizer steps to record (1 = the first); None records every step.
    """

    def __init__(self, param: str | torch.Tensor, steps: Iterable[int] | None = None) -> None:
        if not isinstance(param, (str, torch.Tensor)):
            raise InvalidInputError(f"param must be a parameter name or tensor, got {type(param).__name__}")
        self.param = param
        self.steps: set[int] | None = None
        if steps is not None:
            self.steps = {check_int("steps entry", s) for s in steps}
            if not self.steps:
                raise InvalidInputError("steps is empty; pass the optimizer steps to record, or None for every step")
        self.snapshots: list[MomentSnapshot] = []
        self._handles: list[Any] = []
        self._pending: tuple[int, torch.Tensor, torch.Tensor] | None = None
        self._name, self._tensor, self._group, self._kind = "", None, None, ""  # set by attach
        self._count = 0  # optimizer steps seen (SGD keeps no step count of its own)

    def attach(
        self, optimizer: torch.optim.Optimizer, model: nn.Module | None = None, start_step: int = 0
    ) -> MomentRecorder:
        """Start recording the steps of `optimizer`; returns self.

        model: to look the parameter up by name. start_step: steps already taken (SGD only: Adam counts its own).
        """
        self.detach()
        self._kind = _kind(optimizer)
        self._name, self._tensor, self._group = _find(model, optimizer, self.param)
        if self._kind != "sgd" and self._group.get("amsgrad"):
            raise InvalidInputError("amsgrad divides by max(v) instead of v; record moments with amsgrad=False")
        if self._kind == "sgd" and self._group.get("nesterov"):
            raise InvalidInputError("Nesterov momentum steps by g + μ·buffer; record moments with nesterov=False")
        if self._kind == "adam" and self._group.get("decoupled_weight_decay"):
            self._kind = "adamw"  # torch's Adam(decoupled_weight_decay=True) is AdamW
        self._optimizer, self._count = optimizer, int(start_step)
        self._handles = [
            optimizer.register_step_pre_hook(self._before),
            optimizer.register_step_post_hook(self._after),
        ]
        return self

    def detach(self) -> None:
        """Stop recording (the snapshots stay)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._pending = None

    def _next_step(self) -> int:
        if self._kind == "sgd":
            return self._count
        step = self._optimizer.state.get(self._tensor, {}).get("step", 0)
        return int(step.item() if isinstance(step, torch.Tensor) else step) + 1

    def _before(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._count += 1
        p, step = self._tensor, self._next_step()
        self._pending = None
        if p is None or p.grad is None or (self.steps is not None and step not in self.steps):
            return
        self._pending = (step, p.detach().float().cpu().clone(), p.grad.detach().float().cpu().clone())

    def _after(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._pending is None:
            return
        step, weight, grad = self._pending
        self._pending = None
        p, group = self._tensor, self._group
        state = self._optimizer.state.get(p, {})

        def copy(key: str) -> torch.Tensor | None:
            value = state.get(key)
            return None if value is None else value.detach().float().cpu().clone()

        if self._kind == "sgd":
            exp_avg, exp_avg_sq = copy("momentum_buffer"), None
        else:
            exp_avg, exp_avg_sq = copy("exp_avg"), copy("exp_avg_sq")
        betas = tuple(float(b) for b in group.get("betas", (0.0, 0.0)))
        self.snapshots.append(
            MomentSnapshot(
                name=self._name,
                kind=self._kind,
                step=step,
                lr=float(group["lr"]),
                betas=(betas[0], betas[1]),
                eps=float(group.get("eps", 0.0)),
                weight_decay=float(group.get("weight_decay", 0.0)),
                momentum=float(group.get("momentum", 0.0)),
                weight=weight,
                grad=grad,
                exp_avg=exp_avg,
                exp_avg_sq=exp_avg_sq,
                new_weight=p.detach().float().cpu().clone(),
            )
        )

    # ---- as a training callback ------------------------------------------------------------------------------

    def on_train_begin(self, trainer: Any) -> None:
        """Attach to the run's optimizer (after a resume, so step numbers continue)."""
        self.attach(trainer.optimizer, trainer.model, start_step=int(trainer.step))

    def on_train_end(self, trainer: Any, history: Any) -> None:
        """Detach (the snapshots stay in `self.snapshots`)."""
        self.detach()

    def on_train_error(self, trainer: Any, error: BaseException) -> None:
        """Detach, so a failed run leaves no hooks on the optimizer."""
        self.detach()

    def __repr__(self) -> str:
        target = self._name or (self.param if isinstance(self.param, str) else "a tensor")
        return f"MomentRecorder({target!r}, {len(self.snapshots)} snapshots)"


def hand_adam_step(
    weight: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    step: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Adam(W) step written out: (w, g, m, v, t, ...) in, (new w, new m, new v) out; inputs are not modified.

    step: t of this step (1 for the first). decoupled: AdamW (w shrinks by lr·λ·w) rather than Adam's L2 term (g + λw).
    """
    if step < 1 or not math.isfinite(lr):
        raise InvalidInputError(f"step must be >= 1 and lr finite, got step={step!r}, lr={lr!r}")
    b1, b2 = betas
    if weight_decay and not decoupled:
        grad = grad + weight_decay * weight
    m = b1 * exp_avg + (1 - b1) * grad
    v = b2 * exp_avg_sq + (1 - b2) * grad * grad
    m_hat, v_hat = m / (1 - b1**step), v / (1 - b2**step)
    new = weight * (1 - lr * weight_decay) if (weight_decay and decoupled) else weight
    return new - lr * m_hat / (v_hat.sqrt() + eps), m, v
