"""Training options: every one checked up front, and the run's identity that a resume has to match.

`check_options(...)` runs before the trainer moves the model or reads a batch, so a bad value fails in a
second with one line naming it (a negative `clip_norm` would otherwise silently reverse every update).
`run_config(...)` is the flat dict of everything that decides a run's numbers: the model's class and config,
the optimizer, schedule and their settings, the number of steps, gradient accumulation, clipping, precision,
seed and the number of processes. Checkpoints store it (with its hash); a resume refuses a
run whose config differs in any of them. The `RESUMABLE` options change only what is logged, evaluated or
saved, or where the run executes, and may differ on resume.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from labkit.checks import check_bool, check_choice, check_float, check_int, check_output_dir
from labkit.errors import InvalidInputError

__all__ = [
    "RESUMABLE",
    "check_options",
    "check_warmup",
    "run_config",
    "config_hash",
    "config_difference",
    "resume_checkpoint",
]

# Options that may change between a run and its resume: they decide what is logged, evaluated, saved and
# shown, or where the run executes, never the sequence of weights; loss_fn is code, which cannot be compared
# (a wrapper that also logs is the same objective). docs/training.md lists them too.
RESUMABLE = (
    "val_batches",
    "eval_every",
    "eval_batches",
    "log_every",
    "checkpoint_dir",
    "checkpoint_every",
    "keep_last",
    "callbacks",
    "progress",
    "device",
    "compile",
    "resume",
    "loss_fn",
)
_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _schedule_key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def check_options(
    *,
    model: Any,
    train_batches: Any,
    callbacks: Any,
    steps: Any,
    epochs: Any,
    optimizer: Any,
    lr: Any,
    weight_decay: Any,
    betas: Any,
    momentum: Any,
    schedule: Any,
    warmup: Any,
    min_lr_ratio: Any,
    grad_accum: Any,
    clip_norm: Any,
    precision: Any,
    compile: Any,
    progress: Any,
    log_every: Any,
    val_batches: Any,
    eval_every: Any,
    eval_batches: Any,
    checkpoint_dir: Any,
    checkpoint_every: Any,
    keep_last: Any,
    resume: Any,
    seed: Any,
    loss_fn: Any,
) -> Path | None:
    """The trainer's options in, the checked checkpoint folder (created) or None out; one clear error otherwise.

    Runs before any expensive work: numbers are checked for type and range, names against the known ones,
    flags for being real booleans, and checkpoint_dir for being a folder that can be written.
    """
    from labkit.training.optim import OPTIMIZERS, SCHEDULES

    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(
            f"model must be a torch.nn.Module (a labkit or Hugging Face model), got {type(model).__name__}"
        )
    if isinstance(train_batches, (str, bytes, Mapping, torch.Tensor)) or not hasattr(train_batches, "__iter__"):
        hint = "wrap one batch in a list: [batch]" if isinstance(train_batches, Mapping) else "e.g. labkit.data.Batches"
        raise InvalidInputError(
            f"train_batches must be an iterable of batch dicts (a list, a Batches, a DataLoader), got "
            f"{type(train_batches).__name__}; {hint}"
        )
    if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__"):
        raise InvalidInputError(f"callbacks must be a list of Callback objects, got {type(callbacks).__name__}")
    check_int("steps", steps, allow_none=True, fix="use None to train for one epoch")
    check_int("epochs", epochs, allow_none=True)
    if steps is not None and epochs is not None:
        raise InvalidInputError(f"pass steps={steps} or epochs={epochs}, not both")
    if isinstance(optimizer, str):
        check_choice("optimizer", optimizer.lower(), OPTIMIZERS)
    elif not (
        isinstance(optimizer, torch.optim.Optimizer)
        or (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer))
    ):
        raise InvalidInputError(
            f"optimizer must be a name ({', '.join(OPTIMIZERS)}), a torch.optim.Optimizer class or instance, "
            f"got {type(optimizer).__name__}"
        )
    check_float("lr", lr, low=0, low_open=True, fix="a typical peak lr is 1e-4 .. 3e-3")
    check_float("weight_decay", weight_decay, low=0, fix="use 0 for no decay")
    if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
        raise InvalidInputError(f"betas must be a pair (beta1, beta2) such as (0.9, 0.95), got {betas!r}")
    for i, beta in enumerate(betas):
        check_float(f"betas[{i}]", beta, low=0, high=1, high_open=True, fix="Adam's defaults are (0.9, 0.999)")
    check_float("momentum", momentum, low=0, high=1, high_open=True)
    if isinstance(schedule, str):
        check_choice("schedule", _schedule_key(schedule), SCHEDULES)
    elif schedule is not None and not callable(schedule):
        raise InvalidInputError(
            f"schedule must be a name ({', '.join(SCHEDULES)}), None or a function step -> factor, "
            f"got {type(schedule).__name__}"
        )
    if isinstance(warmup, float):
        check_float(
            "warmup", warmup, low=0, high=1, high_open=True, fix="an int counts steps, a float in [0, 1) is a fraction"
        )
    else:
        check_int("warmup", warmup, low=0, fix="an int counts steps, a float in [0, 1) is a fraction of the steps")
    check_float("min_lr_ratio", min_lr_ratio, low=0, high=1, fix="the final lr as a fraction of the peak")
    check_int("grad_accum", grad_accum)
    check_float("clip_norm", clip_norm, low=0, low_open=True, allow_none=True, fix="None turns clipping off")
    if not isinstance(precision, str):
        raise InvalidInputError(f"precision must be one of {', '.join(map(repr, _PRECISIONS))}, got {precision!r}")
    check_bool("compile", compile)
    check_bool("progress", progress)
    check_int("log_every", log_every)
    check_int("eval_every", eval_every, allow_none=True)
    check_int("eval_batches", eval_batches, allow_none=True)
    if eval_every is not None and val_batches is None:
        raise InvalidInputError(f"eval_every={eval_every} needs something to evaluate; pass val_batches=")
    check_int("checkpoint_every", checkpoint_every, allow_none=True)
    check_int("keep_last", keep_last, allow_none=True, fix="keep at least the newest checkpoint (None keeps all)")
    if checkpoint_every is not None and checkpoint_dir is None:
        raise InvalidInputError(f"checkpoint_every={checkpoint_every} needs a place to write; pass checkpoint_dir=")
    if not (resume is None or isinstance(resume, (bool, str, os.PathLike))):
        raise InvalidInputError(
            f"resume must be a checkpoint or run folder, True (checkpoint_dir's latest) or None, got {type(resume).__name__}"
        )
    if resume is True and checkpoint_dir is None:
        raise InvalidInputError("resume=True resumes from checkpoint_dir; pass checkpoint_dir= or a checkpoint path")
    check_int("seed", seed, low=0, high=2**32 - 1, allow_none=True, fix="None leaves the generators as they are")
    if loss_fn is not None and not callable(loss_fn):
        raise InvalidInputError(f"loss_fn must be a function (model, batch) -> loss, got {type(loss_fn).__name__}")
    if checkpoint_dir is None:
        return None
    return check_output_dir("checkpoint_dir", checkpoint_dir)


def check_warmup(warmup: Any, total_steps: int) -> None:
    """Refuse a warmup (in steps) longer than the run: the lr would never reach its peak."""
    if isinstance(warmup, int) and not isinstance(warmup, bool) and warmup > total_steps:
        raise InvalidInputError(
            f"warmup={warmup} is longer than the run ({total_steps} steps); lower it or pass a fraction such as 0.1"
        )


def _name_of(obj: Any) -> Any:
    """A JSON-able name for an option that may be a string, a class, an instance or a function."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    named = isinstance(obj, type) or (callable(obj) and not isinstance(obj, torch.optim.Optimizer))
    kind = obj if named else type(obj)
    return f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', type(kind).__name__)}"


def model_config(model: torch.nn.Module) -> dict[str, Any]:
    """A model in, {"model.class": ..., "model.<field>": ...} out (its dataclass config, when it has one)."""
    from labkit.training.checkpoint import unwrap_model

    plain = unwrap_model(model)
    out: dict[str, Any] = {"model.class": type(plain).__name__}
    config = getattr(plain, "config", None)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        for key, value in dataclasses.asdict(config).items():
            out[f"model.{key}"] = json.loads(json.dumps(value, default=str))
    return out


def run_config(
    model: torch.nn.Module,
    *,
    total_steps: int,
    optimizer: Any,
    lr: float,
    weight_decay: float,
    betas: Any,
    momentum: float,
    schedule: Any,
    warmup: Any,
    min_lr_ratio: float,
    grad_accum: int,
    clip_norm: float | None,
    precision: str,
    seed: int | None,
    world_size: int,
) -> dict[str, Any]:
    """The options that decide a run's numbers in, a flat JSON-able dict out (what a resume must match)."""
    return {
        **model_config(model),
        "steps": int(total_steps),
        "optimizer": optimizer.lower() if isinstance(optimizer, str) else _name_of(optimizer),
        "lr": float(lr),
        "weight_decay": float(weight_decay),
        "betas": [float(b) for b in betas],
        "momentum": float(momentum),
        "schedule": _schedule_key(schedule) if isinstance(schedule, str) else _name_of(schedule),
        "warmup": float(warmup) if isinstance(warmup, float) else int(warmup),
        "min_lr_ratio": float(min_lr_ratio),
        "grad_accum": int(grad_accum),
        "clip_norm": None if clip_norm is None else float(clip_norm),
        "precision": precision,
        "seed": seed,
        "world_size": int(world_size),
    }


def config_hash(config: Mapping[str, Any]) -> str:
    """A config dict in, the SHA-256 of its canonical JSON out (key order does not matter)."""
    text = json.dumps(dict(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_difference(saved: Mapping[str, Any], current: Mapping[str, Any]) -> tuple[str, Any, Any] | None:
    """Two configs in, the first (field, saved value, current value) that differs out, or None when they agree.

    A field that only one side has counts as a difference (value "(absent)").
    """
    missing = "(absent)"
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, missing), current.get(key, missing)
        if a != b:
            return key, a, b
    return None


def resume_checkpoint(
    resume: Any, checkpoint_dir: Path | None, model: torch.nn.Module, config: Mapping[str, Any]
) -> Path | None:
    """The trainer's `resume` option in, the verified checkpoint folder to resume from out (None: start fresh).

    A run folder falls back to its newest good checkpoint with a CheckpointWarning; then the model must fit the
    checkpoint (`check_compatible`) and the run config must match the one saved, except `RESUMABLE` options;
    otherwise one line names the first field that differs. All of it happens before any training work.
    """
    from labkit.training.checkpoint import check_compatible
    from labkit.training.manifest import CheckpointWarning, select_checkpoint, step_dirs

    if resume in (None, False):
        return None
    source = checkpoint_dir if resume is True else Path(resume)
    if resume is True and not step_dirs(source):  # type: ignore[arg-type]
        return None  # nothing saved yet: start fresh
    folder, manifest, notes = select_checkpoint(source)  # type: ignore[arg-type]
    where = repr(os.fspath(folder))
    if notes:
        warnings.warn(
            f"{'; '.join(notes)}; resuming from {where} (step {manifest['step']})", CheckpointWarning, stacklevel=4
        )
    meta = json.loads((folder / "meta.json").read_bytes().decode("utf-8"))  # verified just now
    check_compatible(meta, model, where)  # the model first: its message says how to build the right one
    if manifest.get("config_hash") != config_hash(config):
        diff = config_difference(manifest.get("config") or {}, config)
        if diff is not None:
            field, old, new = diff
            raise InvalidInputError(
                f"checkpoint {where} was written with {field}={old!r} but this run has {field}={new!r}; resume "
                f"with the same {field} or start a new run (only {', '.join(RESUMABLE)} may change on resume)"
            )
    return folder
