"""Checkpoints without pickle: safetensors for tensors, JSON for everything else, written atomically.

Layout of one checkpoint, `checkpoint_dir/step-000123/`:
- `model.safetensors`: the model's state dict, keys as in the plain model (no `_orig_mod.` from torch.compile,
  no `module.` from DDP), tied weights stored once (the aliases are listed in meta.json);
- `optimizer.safetensors`: optimizer state tensors as `optimizer.state.<param index>.<name>`, plus the RNG
  states as uint8 tensors `rng.torch` and `rng.cuda.<i>`;
- `meta.json`: labkit version, model class/arch/config, step, epoch, optimizer param groups and scalar state,
  scheduler and grad-scaler state dicts, Python and NumPy RNG states, the data position, the History so far.
- `manifest.json`, written last: the step, the run config and its hash, each file's size and SHA-256
  (see `labkit.training.manifest`); loading verifies it before any bytes reach a model.
The folder is written under a temporary name, every file and the folder fsynced, then renamed into place
(`os.replace`) and the run folder fsynced; then the text file `checkpoint_dir/latest` is replaced the same
way; only the newest `keep_last` step folders are kept. A crash (or a power loss) while writing leaves the
previous checkpoint and `latest` untouched.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from labkit.checks import check_int, check_output_dir
from labkit.errors import InvalidInputError, MissingSourceError
from labkit.training.manifest import (
    CheckpointWarning,
    fsync_dir,
    latest_step_dir,
    select_checkpoint,
    step_dirs,
    write_durable,
    write_manifest,
)
from labkit.training.rng import get_rng_state, set_rng_state

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "resolve_checkpoint",
    "unwrap_model",
    "check_compatible",
    "get_rng_state",
    "set_rng_state",
]

FORMAT = "labkit-checkpoint"
# config fields that do not change what the stored weights mean: a model built with other values loads them
LOAD_NEUTRAL_FIELDS = ("dropout", "initializer_range", "rope_extrapolate")
_PREFIXES = ("_orig_mod.", "module.")


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the plain module inside DistributedDataParallel and torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel) or type(model).__name__ == "DataParallel":
            model = model.module
        else:
            return model


def _normalise_key(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
        key = key.replace("._orig_mod.", ".")
    return key


def _jsonable(obj: Any) -> Any:
    """Turn tuples, 0-d tensors, NumPy scalars and paths into JSON types; refuse anything else that is not JSON."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return os.fspath(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise InvalidInputError(
        f"cannot store a {type(obj).__name__} in checkpoint JSON; keep states to numbers, strings and tensors"
    )


# ---- model and optimizer state ----------------------------------------------------------------------------


def _model_tensors(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Return (tensors with each storage once, {alias key: stored key}) for the plain model's state dict."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for key, value in unwrap_model(model).state_dict().items():
        key = _normalise_key(key)
        ident = (
            (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape), value.dtype)
            if value.numel()
            else None
        )
        if ident is not None and ident in seen:
            aliases[key] = seen[ident]
            continue
        if ident is not None:
            seen[ident] = key
        tensors[key] = value.detach().to("cpu").contiguous()
    return tensors, aliases


def _optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into named tensors and JSON (param groups, scalar state)."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.state.{index}.{name}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    info = {
        "class": type(optimizer).__name__,
        "param_groups": _jsonable(state["param_groups"]),
        "scalars": _jsonable(scalars),
    }
    return tensors, info


def _load_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict[str, Any], where: str
) -> None:
    if info["class"] != type(optimizer).__name__:
        raise InvalidInputError(
            f"checkpoint {where} holds {info['class']} state but the optimizer is {type(optimizer).__name__}; use the same optimizer"
        )
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer.state."):
            index, name = key[len("optimizer.state.") :].split(".", 1)
            state.setdefault(int(index), {})[name] = value
    for index, entries in info.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entries)
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else dict(g) for g in info["param_groups"]]
    if len(groups) != len(optimizer.param_groups) or any(
        len(a["params"]) != len(b["params"]) for a, b in zip(groups, optimizer.param_groups)
    ):
        raise InvalidInputError(
            f"checkpoint {where} has optimizer groups for different parameters; build the same model and optimizer"
        )
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _model_info(model: nn.Module) -> dict[str, Any]:
    plain = unwrap_model(model)
    config = getattr(plain, "config", None)
    config_dict = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else None
    arch = getattr(config, "arch", None) or type(plain).__name__
    return {
        "class": type(plain).__name__,
        "module": type(plain).__module__,
        "arch": arch,
        "config": _jsonable(config_dict),
    }


def check_compatible(meta: dict[str, Any], model: nn.Module, where: str = "") -> None:
    """Raise a one-line error when checkpoint `meta` was written for another architecture or config than `model`.

    Every config field must agree except `LOAD_NEUTRAL_FIELDS` (dropout, init range): a model with another
    `n_head` but the same tensor shapes would load the weights without complaint and compute something else.
    """
    saved, mine = meta["model"], _model_info(model)
    if saved["arch"] != mine["arch"] or saved["class"] != mine["class"]:
        raise InvalidInputError(
            f"checkpoint {where} holds a {saved['class']} ({saved['arch']!r}) model but got a {mine['class']} ({mine['arch']!r}); "
            f"build a {saved['class']} with the checkpoint's config to load it"
        )
    old, new = saved.get("config") or {}, mine.get("config") or {}
    for key in sorted(k for k in old if "vocab_size" in k):
        if key in new and old[key] != new[key]:
            raise InvalidInputError(
                f"checkpoint {where} was trained with {key}={old[key]} but the model has {key}={new[key]}; "
                "use the tokenizer the checkpoint was trained with, or build the model with its config"
            )
    for key in sorted(set(old) & set(new)):
        if key not in LOAD_NEUTRAL_FIELDS and old[key] != new[key]:
            raise InvalidInputError(
                f"checkpoint {where} was trained with {key}={old[key]!r} but the model has {key}={new[key]!r}; "
                f"build the model with the checkpoint's config (load_checkpoint(path)['model']['config'])"
            )


# ---- saving -----------------------------------------------------------------------------------------------


def remove_temporary(checkpoint_dir: str | os.PathLike) -> None:
    """Delete the `.tmp-step-*` folders a crash left in a run folder (a save or a prune that was cut short)."""
    for stale in Path(checkpoint_dir).glob(".tmp-step-*"):
        shutil.rmtree(stale, ignore_errors=True)


def save_checkpoint(
    checkpoint_dir: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    *,
    step: int = 0,
    epoch: int = 0,
    data_state: dict[str, Any] | None = None,
    history: Any = None,
    extra: dict[str, Any] | None = None,
    rng: bool = True,
    keep_last: int | None = 2,
    config: dict[str, Any] | None = None,
) -> Path:
    """Model (+ optimizer, scheduler, grad scaler, RNG, data position, History) in, the new `step-NNNNNN` folder out.

    checkpoint_dir: the run folder; the checkpoint goes to `checkpoint_dir/step-{step:06d}`, and `latest` names it.
    scheduler / scaler: anything with a JSON-able `state_dict()` (LambdaLR, GradScaler).
    data_state: the batch source's position (JSON-able). history: a History (stored as JSON).
    extra: more JSON-able metadata. rng: also store the RNG states (needed for exact resume).
    keep_last: how many step folders to keep, >= 1 (oldest removed after the new one is in place); None keeps all.
    config: the run config a resume must match (the trainer passes `run_config(...)`); default: the model's config.
    """
    from labkit.training.options import config_hash, model_config

    keep_last = check_int("keep_last", keep_last, allow_none=True, fix="keep at least the newest checkpoint")
    step, epoch = check_int("step", step, low=0), check_int("epoch", epoch, low=0)
    root = check_output_dir("checkpoint_dir", checkpoint_dir)
    remove_temporary(root)
    name = f"step-{int(step):06d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    config = dict(config) if config is not None else model_config(model)
    from labkit import __version__

    try:
        tmp.mkdir()
        tensors, aliases = _model_tensors(model)
        files = {"model.safetensors": safetensors_bytes(tensors, metadata={"format": "pt"})}
        state_tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {
            "format": FORMAT,
            "format_version": 2,
            "labkit_version": __version__,
            "step": int(step),
            "epoch": int(epoch),
            "model": {**_model_info(model), "aliases": aliases},
        }
        if optimizer is not None:
            opt_tensors, meta["optimizer"] = _optimizer_state(optimizer)
            state_tensors.update(opt_tensors)
        meta["scheduler"] = _jsonable(scheduler.state_dict()) if scheduler is not None else None
        meta["scaler"] = _jsonable(scaler.state_dict()) if scaler is not None and scaler.is_enabled() else None
        if rng:
            rng_tensors, meta["rng"] = get_rng_state()
            state_tensors.update(rng_tensors)
        files["optimizer.safetensors"] = safetensors_bytes(state_tensors, metadata={"format": "pt"})
        meta["data"] = _jsonable(data_state)
        meta["history"] = history.to_dict() if hasattr(history, "to_dict") else _jsonable(history)
        meta["extra"] = _jsonable(extra or {})
        files["meta.json"] = json.dumps(meta, indent=1).encode("utf-8")
        for file_name, data in files.items():
            write_durable(tmp / file_name, data)
        config = _jsonable(config)
        write_manifest(tmp, step=int(step), config=config, config_hash=config_hash(config), files=files)
        fsync_dir(tmp)
        final = root / name
        if final.exists():  # the same step saved twice: swap the old folder out before renaming the new one in
            old = root / f".tmp-{name}-old-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            fsync_dir(root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    latest_tmp = root / f".latest-{os.getpid()}"
    write_durable(latest_tmp, (name + "\n").encode("utf-8"))
    os.replace(latest_tmp, root / "latest")
    fsync_dir(root)
    if keep_last is not None:
        # only folders up to this step count: newer ones left by an abandoned longer run are not this run's
        older = [d for d in step_dirs(root) if int(d.name[5:]) <= int(step)]
        for old_dir in older[:-keep_last]:
            # rename first (atomic), then delete: a kill during the delete leaves a .tmp- folder that the next
            # save sweeps away, never a half-deleted step folder that looks like a damaged checkpoint
            doomed = root / f".tmp-{old_dir.name}-del-{os.getpid()}"
            try:
                os.replace(old_dir, doomed)
            except OSError:
                continue
            fsync_dir(root)
            shutil.rmtree(doomed, ignore_errors=True)
    return final


# ---- loading ----------------------------------------------------------------------------------------------


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder or a run folder (its `latest`, else its highest step) in, the checkpoint folder out.

    Nothing is verified here (see `load_checkpoint`, which is what reads the files).
    """
    path = Path(path)
    if (path / "meta.json").is_file():
        return path
    if path.is_dir():
        latest = latest_step_dir(path)
        if latest is not None and (latest / "meta.json").is_file():
            return latest
        steps = [p for p in step_dirs(path) if (p / "meta.json").is_file()]
        if steps:
            return steps[-1]
    raise MissingSourceError(
        f"no checkpoint at {os.fspath(path)!r}; pass a run folder written by train(checkpoint_dir=...) or one of its step-* folders"
    )


def _read_tensors(folder: Path, name: str, device: str) -> dict[str, torch.Tensor]:
    """A safetensors file of a checkpoint in, its tensors out; an unreadable file gives one clear error."""
    try:
        return load_file(os.fspath(folder / name), device=device)
    except Exception as exc:  # safetensors raises its own SafetensorError for damaged headers
        raise InvalidInputError(
            f"checkpoint {os.fspath(folder)!r} has an unreadable {name} ({type(exc).__name__}); use another checkpoint"
        ) from None


def load_checkpoint(
    path_or_dir: str | os.PathLike,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    map_location: str | torch.device = "cpu",
    rng: bool = False,
    verify: bool = True,
) -> dict[str, Any]:
    """A checkpoint (or run folder -> its latest) in, its metadata dict out; fills the objects you pass.

    model: receives the weights (after checking architecture and vocabulary). optimizer / scheduler / scaler:
    receive their states. map_location: where optimizer tensors are read to before the optimizer moves them
    next to its parameters. rng: also restore the Python, NumPy, torch and CUDA generators (exact resume).
    verify: check the manifest's checksums first (see `labkit.training.manifest`); a run folder then gives its
    newest checkpoint that verifies, with a CheckpointWarning naming each newer one that did not.
    The returned dict holds step, epoch, model info, data position, history (a dict), extra and the manifest;
    its "path" is the folder.
    """
    try:  # checked up front: without an optimizer, a bad map_location would otherwise pass unnoticed
        torch.device(map_location)
    except (RuntimeError, TypeError):
        raise InvalidInputError(
            f"map_location must be a device such as 'cpu' or 'cuda:0', got {map_location!r}"
        ) from None
    manifest = None
    if verify:
        folder, manifest, notes = select_checkpoint(path_or_dir)
        if notes:
            warnings.warn(f"{'; '.join(notes)}; loading {os.fspath(folder)!r} instead", CheckpointWarning, stacklevel=2)
    else:
        folder = resolve_checkpoint(path_or_dir)
    where = repr(os.fspath(folder))
    try:
        meta = json.loads((folder / "meta.json").read_bytes().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"checkpoint {where} has an unreadable meta.json ({type(exc).__name__}); use another checkpoint"
        ) from None
    if meta.get("format") != FORMAT:
        raise InvalidInputError(
            f"{where} is not a labkit checkpoint (no format tag in meta.json); pass a folder written by save_checkpoint"
        )
    meta["path"] = folder
    meta["manifest"] = manifest
    if model is not None:
        check_compatible(meta, model, where)
        tensors = {_normalise_key(k): v for k, v in _read_tensors(folder, "model.safetensors", "cpu").items()}
        for alias, stored in meta["model"].get("aliases", {}).items():
            tensors[alias] = tensors[stored]
        plain = unwrap_model(model)
        try:
            result = plain.load_state_dict(tensors, strict=False)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1].strip()
            raise InvalidInputError(
                f"checkpoint {where} does not fit this {type(plain).__name__} ({first}); build the model with the checkpoint's config"
            ) from exc
        if result.missing_keys or result.unexpected_keys:
            raise InvalidInputError(
                f"checkpoint {where} does not fit this {type(plain).__name__} (missing {result.missing_keys[:3]}, unexpected "
                f"{result.unexpected_keys[:3]}); build the model with the checkpoint's config"
            )
    if optimizer is not None or rng:
        state = _read_tensors(folder, "optimizer.safetensors", str(map_location))
        if optimizer is not None:
            if not meta.get("optimizer"):
                raise InvalidInputError(
                    f"checkpoint {where} holds no optimizer state; resume without an optimizer or use another checkpoint"
                )
            _load_optimizer(optimizer, state, meta["optimizer"], where)
        if rng and meta.get("rng"):
            set_rng_state({k: v for k, v in state.items() if k.startswith("rng.")}, meta["rng"])
    if scheduler is not None and meta.get("scheduler") is not None:
        scheduler.load_state_dict(meta["scheduler"])
    if scaler is not None and meta.get("scaler") is not None:
        scaler.load_state_dict(meta["scaler"])
    return meta
