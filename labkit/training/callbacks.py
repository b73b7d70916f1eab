"""Callbacks: the events a training run emits, a progress bar, early stopping.

Order of events in a run: `on_train_begin`, then per optimizer step `on_step_end`
(raw values, loss still a device tensor), every `log_every` steps `on_log`
(host floats: what dashboards draw), `on_eval` after each evaluation,
`on_checkpoint` after each checkpoint is on disk, and `on_train_end` last,
also after an interrupt. A callback stops training with
`trainer.request_stop(reason)` and asks for a checkpoint with
`trainer.request_checkpoint()`; both take effect between steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.checks import check_int
from labkit.errors import InvalidInputError

if TYPE_CHECKING:  # only for type hints; the trainer imports this module, not the reverse
    from labkit.training.history import History
    from labkit.training.trainer import Trainer

__all__ = ["Callback", "CallbackList", "ProgressBar", "EarlyStopping", "LambdaCallback"]


class Callback:
    """Base class: override the events you need; every method is a no-op here."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Called once before the first step (after a resume has been applied)."""

    def on_step_end(self, trainer: Trainer, step: int, logs: dict[str, Any]) -> None:
        """Called after every optimizer step; logs hold `loss` as a device tensor (call .item() only if you must)."""

    def on_log(self, trainer: Trainer, step: int, logs: dict[str, float | None]) -> None:
        """Called every `log_every` steps and at the end with host floats (loss, lr, grad_norm, tokens_per_s, mfu)."""

    def on_eval(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        """Called after each evaluation with eval_loss and eval_perplexity."""

    def on_checkpoint(self, trainer: Trainer, path: Path) -> None:
        """Called after a checkpoint folder is completely written."""

    def on_train_end(self, trainer: Trainer, history: History) -> None:
        """Called once at the end, also after an interrupt or an early stop."""

    def on_train_error(self, trainer: Trainer, error: BaseException) -> None:
        """Called instead of on_train_end when training stops on an error (e.g. a NaN loss); the error is re-raised."""


class CallbackList(Callback):
    """Several callbacks called in order, as one."""

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise InvalidInputError(
                    f"callbacks must be labkit.training.Callback instances, got {type(cb).__name__}; subclass Callback"
                )

    def on_train_begin(self, trainer: Trainer) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(trainer)

    def on_step_end(self, trainer: Trainer, step: int, logs: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_step_end(trainer, step, logs)

    def on_log(self, trainer: Trainer, step: int, logs: dict[str, float | None]) -> None:
        for cb in self.callbacks:
            cb.on_log(trainer, step, logs)

    def on_eval(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_eval(trainer, step, metrics)

    def on_checkpoint(self, trainer: Trainer, path: Path) -> None:
        for cb in self.callbacks:
            cb.on_checkpoint(trainer, path)

    def on_train_end(self, trainer: Trainer, history: History) -> None:
        for cb in self.callbacks:
            cb.on_train_end(trainer, history)

    def on_train_error(self, trainer: Trainer, error: BaseException) -> None:
        for cb in self.callbacks:
            try:  # a failing listener must not hide the training error
                cb.on_train_error(trainer, error)
            except Exception:  # noqa: BLE001
                pass


class LambdaCallback(Callback):
    """A callback from plain functions: `LambdaCallback(on_log=lambda trainer, step, logs: print(step, logs))`."""

    def __init__(self, **events: Any) -> None:
        names = [n for n in vars(Callback) if n.startswith("on_")]
        for name, fn in events.items():
            if name not in names:
                raise InvalidInputError(f"unknown event {name!r}; events are {', '.join(names)}")
            setattr(self, name, fn)


class ProgressBar(Callback):
    """A `tqdm.auto` bar over optimizer steps: a widget in Jupyter, plain text in a terminal or log.

    It advances on every step (host-side only) and shows loss / lr / eval loss at each log point.
    """

    def __init__(self, **tqdm_kwargs: Any) -> None:
        self.tqdm_kwargs = tqdm_kwargs
        self.bar: Any = None
        self._postfix: dict[str, str] = {}

    def on_train_begin(self, trainer: Trainer) -> None:
        from tqdm.auto import tqdm

        kwargs = {
            "total": trainer.total_steps,
            "initial": trainer.step,
            "desc": "train",
            "dynamic_ncols": True,
            **self.tqdm_kwargs,
        }
        self.bar = tqdm(**kwargs)

    def on_step_end(self, trainer: Trainer, step: int, logs: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def on_log(self, trainer: Trainer, step: int, logs: dict[str, float | None]) -> None:
        if self.bar is None:
            return
        self._postfix["loss"] = f"{logs['loss']:.4f}"
        self._postfix["lr"] = f"{logs['lr']:.2e}"
        if logs.get("tokens_per_s"):
            self._postfix["tok/s"] = f"{logs['tokens_per_s']:.0f}"
        self.bar.set_postfix(self._postfix, refresh=False)

    def on_eval(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        self._postfix["eval"] = f"{metrics['eval_loss']:.4f}"

    def on_train_end(self, trainer: Trainer, history: History) -> None:
        if self.bar is not None:
            self.bar.set_postfix(self._postfix)
            self.bar.close()
            self.bar = None

    def on_train_error(self, trainer: Trainer, error: BaseException) -> None:
        if self.bar is not None:  # do not leave a bar hanging
            self.bar.close()
            self.bar = None


class EarlyStopping(Callback):
    """Stop when the evaluation loss has not improved by `min_delta` for `patience` evaluations."""

    def __init__(self, patience: int = 3, min_delta: float = 0.0) -> None:
        check_int("patience", patience)
        self.patience = patience
        self.min_delta = min_delta
        self.best = math.inf
        self.bad_evals = 0

    def on_eval(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        loss = metrics["eval_loss"]
        if loss < self.best - self.min_delta:
            self.best, self.bad_evals = loss, 0
            return
        self.bad_evals += 1
        if self.bad_evals >= self.patience:
            trainer.request_stop(
                f"early stopping: eval loss has not improved for {self.patience} evaluations (best {self.best:.4f})"
            )
