"""History: what a training run measured, per optimizer step and per evaluation, exportable to pandas and JSON.

The trainer fills it in batches, every `log_every` steps (and at the end): it
keeps the step losses on the device and converts them to floats only then,
so logging never forces a host-device sync on every step.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from labkit.errors import InvalidInputError, LabkitError, MissingSourceError

__all__ = ["History", "TrainingDivergedError"]

STEP_FIELDS = ("step", "loss", "lr", "grad_norm", "tokens_per_s", "mfu")
EVAL_FIELDS = ("eval_step", "eval_loss", "eval_perplexity")


class TrainingDivergedError(LabkitError, FloatingPointError):
    """The training loss became NaN or infinite; the message names the first bad step and the last good checkpoint."""

    def __init__(
        self, message: str, step: int | None = None, history: History | None = None, last_checkpoint: Path | None = None
    ) -> None:
        super().__init__(message)
        self.step = step
        self.history = history
        self.last_checkpoint = last_checkpoint


@dataclass
class History:
    """Per-step and per-eval measurements of one training run (resumed runs continue the same History).

    Per step: `step` (1-based optimizer steps), `loss` (mean over the step's micro-batches; under DDP over ranks),
    `lr` (used by that step), `grad_norm` (before clipping), `tokens_per_s` (averaged over the logging window),
    `mfu` (model FLOPs utilisation, None where the device's peak is unknown, e.g. CPUs).
    Per evaluation: `eval_step`, `eval_loss` (token-weighted mean), `eval_perplexity` (exp of it).
    """

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float | None] = field(default_factory=list)
    tokens_per_s: list[float | None] = field(default_factory=list)
    mfu: list[float | None] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    eval_perplexity: list[float] = field(default_factory=list)
    interrupted: bool = False  # stopped by KeyboardInterrupt / the Stop button rather than by reaching the end
    stopped_reason: str | None = (
        None  # why training stopped early (interrupt, callback request, ...); None when it ran out
    )
    last_checkpoint: Path | None = None  # the newest checkpoint this run wrote (or resumed from)
    elapsed_s: float = 0.0  # wall time spent in train(), summed over resumed sessions

    # ---- recording -------------------------------------------------------------------------------------------

    def append_step(
        self,
        step: int,
        loss: float,
        lr: float,
        grad_norm: float | None = None,
        tokens_per_s: float | None = None,
        mfu: float | None = None,
    ) -> None:
        """Record one optimizer step's host values."""
        self.step.append(int(step))
        self.loss.append(float(loss))
        self.lr.append(float(lr))
        self.grad_norm.append(None if grad_norm is None else float(grad_norm))
        self.tokens_per_s.append(None if tokens_per_s is None else float(tokens_per_s))
        self.mfu.append(None if mfu is None else float(mfu))

    def append_eval(self, step: int, loss: float) -> None:
        """Record one evaluation's mean loss (perplexity is derived)."""
        self.eval_step.append(int(step))
        self.eval_loss.append(float(loss))
        self.eval_perplexity.append(math.exp(loss) if loss < 700 else math.inf)

    # ---- reading ---------------------------------------------------------------------------------------------

    @property
    def best_eval_loss(self) -> float | None:
        """Lowest evaluation loss so far, or None before the first evaluation."""
        return min(self.eval_loss) if self.eval_loss else None

    @property
    def last_loss(self) -> float | None:
        """The most recent logged training loss, or None before the first log."""
        return self.loss[-1] if self.loss else None

    def __len__(self) -> int:
        return len(self.step)

    def __repr__(self) -> str:
        parts = [f"steps={self.step[-1] if self.step else 0}"]
        if self.loss:
            parts.append(f"loss={self.loss[-1]:.4f}")
        if self.eval_loss:
            parts.append(f"eval_loss={self.eval_loss[-1]:.4f}")
        if self.interrupted:
            parts.append("interrupted=True")
        if self.stopped_reason and not self.interrupted:
            parts.append(f"stopped_reason={self.stopped_reason!r}")
        return f"History({', '.join(parts)})"

    def to_pandas(self) -> Any:
        """Return a pandas DataFrame, one row per step, with eval_loss / eval_perplexity on the steps that evaluated."""
        import pandas as pd

        frame = pd.DataFrame({name: getattr(self, name) for name in STEP_FIELDS})
        frame = frame.astype({"tokens_per_s": float, "mfu": float, "grad_norm": float})
        evals = pd.DataFrame(
            {"step": self.eval_step, "eval_loss": self.eval_loss, "eval_perplexity": self.eval_perplexity}
        )
        evals = evals.astype({"step": "int64", "eval_loss": float, "eval_perplexity": float})
        return (
            frame.astype({"step": "int64"}).merge(evals, on="step", how="outer").sort_values("step", ignore_index=True)
        )

    to_dataframe = to_pandas

    # ---- JSON ------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict of every field (non-finite floats become None)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                value = [None if isinstance(v, float) and not math.isfinite(v) else v for v in value]
            elif isinstance(value, Path):
                value = os.fspath(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Inverse of `to_dict`; unknown keys are ignored so older files still load."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for name in ("loss", "eval_loss", "eval_perplexity"):  # None stood for NaN/inf in JSON
            kwargs[name] = [math.nan if v is None else v for v in kwargs.get(name, [])]
        if kwargs.get("last_checkpoint"):
            kwargs["last_checkpoint"] = Path(kwargs["last_checkpoint"])
        return cls(**kwargs)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the History as JSON to `path`; return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict()), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        """A JSON file written by `History.save` in, the History out."""
        path = Path(path)
        if not path.is_file():
            raise MissingSourceError(f"no History file at {os.fspath(path)!r}; pass a path written by History.save()")
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"{os.fspath(path)!r} is not a History JSON file ({exc})") from exc
