"""Several optimizers on the same model, data and seed: `compare_optimizers(model, batches) -> OptimizerComparison`.

Each run trains a fresh copy of the model (the same initial weights) on the same batches in the same order
(a batch source with `state_dict()` is rewound before every run), so the curves differ only by the optimizer.
Wall time is measured per logged step, without evaluation time, so "loss against seconds" compares what each
optimizer's arithmetic costs as well as how far each step goes.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from labkit.checks import check_int
from labkit.errors import InvalidInputError
from labkit.training.callbacks import Callback
from labkit.training.history import History

__all__ = ["DEFAULT_OPTIMIZERS", "OptimizerRun", "OptimizerComparison", "compare_optimizers", "StepClock"]

# The four of the lesson, each at a learning rate that suits it on small GPTs (SGD needs a much larger one:
# its step is lr x gradient, and gradients of a trained-from-scratch transformer are small).
DEFAULT_OPTIMIZERS: dict[str, dict[str, Any]] = {
    "SGD": {"optimizer": "sgd", "momentum": 0.0, "lr": 0.5, "weight_decay": 0.0},
    "SGD + momentum": {"optimizer": "sgd", "momentum": 0.9, "lr": 0.05, "weight_decay": 0.0},
    "Adam": {"optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0},
    "AdamW": {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.1},
}


class StepClock(Callback):
    """Training seconds at each logged step (evaluation and checkpoint time left out), for loss-against-time plots.

    `wall_s[i]` belongs to `history.step[i]`; steps inside one logging window share its time linearly (with
    log_every=1 every step is read exactly).
    """

    def __init__(self) -> None:
        self.wall_s: list[float] = []
        self._start = self._mark = 0.0
        self._paused = 0.0
        self._seen = 0
        self._window_start_s = 0.0

    def on_train_begin(self, trainer: Any) -> None:
        self.wall_s, self._seen, self._paused = [], len(trainer.history.step), 0.0
        self._start = self._mark = time.perf_counter()
        self._window_start_s = 0.0

    def _now(self) -> float:
        return time.perf_counter() - self._start - self._paused

    def on_log(self, trainer: Any, step: int, logs: dict[str, Any]) -> None:
        now, new = self._now(), len(trainer.history.step) - self._seen
        if new > 0:
            start = self._window_start_s
            self.wall_s.extend(start + (now - start) * (i + 1) / new for i in range(new))
            self._seen += new
        self._window_start_s = now
        self._mark = time.perf_counter()

    def on_eval(self, trainer: Any, step: int, metrics: dict[str, float]) -> None:
        self._paused += time.perf_counter() - self._mark  # evaluation ran since the log point
        self._mark = time.perf_counter()

    def on_checkpoint(self, trainer: Any, path: Any) -> None:
        self._paused += time.perf_counter() - self._mark
        self._mark = time.perf_counter()


@dataclass
class OptimizerRun:
    """One optimizer's run: its label, options, History, seconds per logged step, the trained model and optimizer."""

    name: str
    options: dict[str, Any]
    history: History
    wall_s: list[float]
    model: nn.Module = field(repr=False)
    optimizer: torch.optim.Optimizer = field(repr=False)
    callbacks: list[Callback] = field(default_factory=list, repr=False)

    @property
    def final_loss(self) -> float | None:
        """Mean training loss of the last 10% of logged steps (less noisy than the last one), or None."""
        losses = [v for v in self.history.loss if math.isfinite(v)]
        if not losses:
            return None
        tail = losses[-max(1, len(losses) // 10) :]
        return sum(tail) / len(tail)

    @property
    def seconds(self) -> float:
        """Training seconds of the whole run (evaluation left out)."""
        return self.wall_s[-1] if self.wall_s else 0.0


@dataclass
class OptimizerComparison:
    """`compare_optimizers`' result: one `OptimizerRun` per optimizer, in the order given."""

    runs: dict[str, OptimizerRun]

    def __getitem__(self, name: str) -> OptimizerRun:
        if name not in self.runs:
            raise InvalidInputError(f"no run named {name!r}; the runs are {', '.join(self.runs)}")
        return self.runs[name]

    def __iter__(self) -> Any:
        return iter(self.runs.values())

    def __len__(self) -> int:
        return len(self.runs)

    @property
    def histories(self) -> dict[str, History]:
        """{optimizer label: History}."""
        return {name: run.history for name, run in self.runs.items()}

    def to_pandas(self) -> Any:
        """One row per optimizer and logged step: optimizer, step, loss, lr, grad_norm, wall_s."""
        import pandas as pd

        frames = []
        for name, run in self.runs.items():
            h = run.history
            frames.append(
                pd.DataFrame(
                    {
                        "optimizer": name,
                        "step": h.step,
                        "loss": h.loss,
                        "lr": h.lr,
                        "grad_norm": [math.nan if g is None else g for g in h.grad_norm],
                        "wall_s": run.wall_s[: len(h.step)],
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    def summary(self) -> str:
        """A text table: optimizer, steps, final loss (mean of the last 10% of steps), seconds, steps per second."""
        lines = [f"{'optimizer':<18} {'steps':>6} {'final loss':>11} {'seconds':>8} {'steps/s':>8}"]
        for name, run in self.runs.items():
            steps = run.history.step[-1] if run.history.step else 0
            loss = "-" if run.final_loss is None else f"{run.final_loss:.4f}"
            rate = f"{steps / run.seconds:.1f}" if run.seconds > 0 else "-"
            lines.append(f"{name:<18} {steps:>6} {loss:>11} {run.seconds:>8.2f} {rate:>8}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def _rewinder(batches: Any) -> Any:
    """A batch source in, a function that puts it back at its current position out (None when it is re-iterable)."""
    if callable(getattr(batches, "state_dict", None)) and callable(getattr(batches, "load_state_dict", None)):
        state = copy.deepcopy(batches.state_dict())
        return lambda: batches.load_state_dict(copy.deepcopy(state))
    try:
        one_shot = iter(batches) is batches
    except TypeError:
        raise InvalidInputError(f"train_batches must be iterable, got {type(batches).__name__}") from None
    if one_shot:
        raise InvalidInputError(
            "train_batches is a one-shot iterator: every optimizer must see the same batches; pass a list, "
            "labkit's Batches or RandomBlockBatches (they rewind with state_dict)"
        )
    return None


def compare_optimizers(
    model: nn.Module,
    train_batches: Iterable[dict[str, Any]],
    optimizers: Mapping[str, Mapping[str, Any]] | Iterable[str] | None = None,
    *,
    steps: int,
    seed: int = 0,
    log_every: int = 1,
    callbacks: Mapping[str, Iterable[Callback]] | None = None,
    **train_options: Any,
) -> OptimizerComparison:
    """A model and batches in, one training run per optimizer out (same initial weights, batches and seed).

    model: left untouched; every run trains a deep copy. train_batches: re-iterable, or a source with
    `state_dict()`/`load_state_dict()` (rewound before each run). optimizers: {label: train() options}, e.g.
    {"SGD": {"optimizer": "sgd", "momentum": 0, "lr": 0.5}}, or a list of labels of `DEFAULT_OPTIMIZERS`;
    None runs all four defaults (SGD, SGD + momentum, Adam, AdamW). steps: optimizer steps per run.
    seed: the same for every run. log_every: steps between loss reads (1: exact per-step wall time).
    callbacks: {label: [callbacks]} added to that run (a `MomentRecorder`, a dashboard). train_options: shared
    `train()` options (schedule, warmup, clip_norm, device, val_batches, ...); a run's own options win.
    """
    from labkit.training.trainer import Trainer

    steps = check_int("steps", steps)
    log_every = check_int("log_every", log_every)
    if optimizers is None:
        specs = {name: dict(opts) for name, opts in DEFAULT_OPTIMIZERS.items()}
    elif isinstance(optimizers, Mapping):
        specs = {str(name): dict(opts) for name, opts in optimizers.items()}
    elif isinstance(optimizers, str):
        raise InvalidInputError(f"optimizers must be a dict or a list of labels, got the string {optimizers!r}")
    else:
        specs = {}
        for name in optimizers:
            if name not in DEFAULT_OPTIMIZERS:
                raise InvalidInputError(
                    f"unknown optimizer label {name!r}; defaults are {', '.join(DEFAULT_OPTIMIZERS)}, "
                    "or pass {label: train options}"
                )
            specs[name] = dict(DEFAULT_OPTIMIZERS[name])
    if not specs:
        raise InvalidInputError("no optimizers to compare; pass at least one, or None for the four defaults")
    for name, opts in specs.items():
        if "optimizer" not in opts:
            raise InvalidInputError(f"run {name!r} names no optimizer; add 'optimizer': 'adamw' (or sgd, adam, ...)")
    reserved = {"steps", "epochs", "seed", "callbacks", "resume", "checkpoint_dir"} & (
        set(train_options) | {k for o in specs.values() for k in o}
    )
    if reserved:
        raise InvalidInputError(
            f"{', '.join(sorted(reserved))} cannot be set per comparison run; steps and seed are shared arguments"
        )
    callbacks = dict(callbacks or {})
    unknown = set(callbacks) - set(specs)
    if unknown:
        raise InvalidInputError(f"callbacks for unknown runs {sorted(unknown)}; the runs are {', '.join(specs)}")
    rewind = _rewinder(train_batches)
    initial = copy.deepcopy(model)
    runs: dict[str, OptimizerRun] = {}
    for name, opts in specs.items():
        if rewind is not None:
            rewind()
        clock = StepClock()
        extra = list(callbacks.get(name, ()))
        options = {"progress": False, **train_options, **opts, "log_every": log_every}
        trainer = Trainer(
            copy.deepcopy(initial), train_batches, steps=steps, seed=seed, callbacks=[clock, *extra], **options
        )
        history = trainer.fit()
        runs[name] = OptimizerRun(name, opts, history, clock.wall_s, trainer.model, trainer.optimizer, extra)
    if rewind is not None:
        rewind()
    return OptimizerComparison(runs)
