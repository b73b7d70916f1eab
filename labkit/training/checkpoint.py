"""Checkpoints without pickle: safetensors for tensors, JSON for everything else, written atomically.

Layout of one checkpoint, `checkpoint_dir/step-000123/`:
- `model.safetensors`: the model's state dict, keys as in the plain model (no `_orig_mod.` from torch.compile,
  no `module.` from DDP), tied weights stored once (the aliases are listed in meta.json);
- `optimizer.safetensors`: optimizer state tensors as `optimizer.state.<param index>.<name>`, plus the RNG
  states as uint8 tensors `rng.torch` and `rng.cuda.<i>`;
- `meta.json`: labkit version, model class/arch/config, step, epoch, optimizer param groups and scalar state,
  scheduler and grad-scaler state dicts, Python and NumPy RNG states, the data position, the History so far.
The folder is written under a temporary name and renamed into place (`os.replace`), then the text file
`checkpoint_dir/latest` is replaced atomically; only the newest `keep_last` step folders are kept. A crash
while writing leaves the previous checkpoint and `latest` untouched.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from labkit.errors import InvalidInputError, MissingSourceError

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
_STEP_DIR = re.compile(r"^step-(\d+)$")
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


# ---- RNG ---------------------------------------------------------------------------------------------------


def get_rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return (tensors, json) capturing Python `random`, NumPy, torch CPU and every CUDA generator."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    info = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }
    return tensors, info


def set_rng_state(tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    """Restore the generators captured by `get_rng_state` (CUDA ones only where this machine has them)."""
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"].cpu())
    cuda = [
        tensors[k].cpu()
        for k in sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    ]
    if cuda and torch.cuda.is_available():
        for i, state in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, i)
    if info.get("python"):
        version, internal, gauss = info["python"]
        random.setstate((version, tuple(internal), gauss))
    if info.get("numpy"):
        kind, keys, pos, has_gauss, cached = info["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


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
    """Raise a one-line error when checkpoint `meta` was written for another architecture or vocabulary than `model`."""
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


# ---- saving -----------------------------------------------------------------------------------------------


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
) -> Path:
    """Model (+ optimizer, scheduler, grad scaler, RNG, data position, History) in, the new `step-NNNNNN` folder out.

    checkpoint_dir: the run folder; the checkpoint goes to `checkpoint_dir/step-{step:06d}`, and `latest` names it.
    scheduler / scaler: anything with a JSON-able `state_dict()` (LambdaLR, GradScaler).
    data_state: the batch source's position (JSON-able). history: a History (stored as JSON).
    extra: more JSON-able metadata. rng: also store the RNG states (needed for exact resume).
    keep_last: how many step folders to keep (oldest removed after the new one is in place); None keeps all.
    """
    root = Path(checkpoint_dir)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-step-*"):  # left by a crash during an earlier save
        shutil.rmtree(stale, ignore_errors=True)
    name = f"step-{int(step):06d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    from labkit import __version__

    try:
        tmp.mkdir()
        tensors, aliases = _model_tensors(model)
        save_file(tensors, os.fspath(tmp / "model.safetensors"), metadata={"format": "pt"})
        state_tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {
            "format": FORMAT,
            "format_version": 1,
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
        save_file(state_tensors, os.fspath(tmp / "optimizer.safetensors"), metadata={"format": "pt"})
        meta["data"] = _jsonable(data_state)
        meta["history"] = history.to_dict() if hasattr(history, "to_dict") else _jsonable(history)
        meta["extra"] = _jsonable(extra or {})
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        final = root / name
        if final.exists():  # the same step saved twice: swap the old folder out before renaming the new one in
            old = root / f".tmp-{name}-old-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    latest_tmp = root / f".latest-{os.getpid()}"
    latest_tmp.write_text(name + "\n", encoding="utf-8")
    os.replace(latest_tmp, root / "latest")
    if keep_last is not None and keep_last >= 1:
        for old_dir in _step_dirs(root)[:-keep_last]:
            if old_dir.name != name:
                shutil.rmtree(old_dir, ignore_errors=True)
    return final


def _step_dirs(root: Path) -> list[Path]:
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


# ---- loading ----------------------------------------------------------------------------------------------


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder or a run folder (its `latest`, else its highest step) in, the checkpoint folder out."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return path
    if path.is_dir():
        latest = path / "latest"
        if latest.is_file():
            candidate = path / latest.read_text(encoding="utf-8").strip()
            if (candidate / "meta.json").is_file():
                return candidate
        steps = [p for p in _step_dirs(path) if (p / "meta.json").is_file()]
        if steps:
            return steps[-1]
    raise MissingSourceError(
        f"no checkpoint at {os.fspath(path)!r}; pass a run folder written by train(checkpoint_dir=...) or one of its step-* folders"
    )


def load_checkpoint(
    path_or_dir: str | os.PathLike,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    map_location: str | torch.device = "cpu",
    rng: bool = False,
) -> dict[str, Any]:
    """A checkpoint (or run folder -> its latest) in, its metadata dict out; fills the objects you pass.

    model: receives the weights (after checking architecture and vocabulary). optimizer / scheduler / scaler:
    receive their states. map_location: where optimizer tensors are read to before the optimizer moves them
    next to its parameters. rng: also restore the Python, NumPy, torch and CUDA generators (exact resume).
    The returned dict holds step, epoch, model info, data position, history (a dict) and extra; its "path" is the folder.
    """
    folder = resolve_checkpoint(path_or_dir)
    where = repr(os.fspath(folder))
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InvalidInputError(
            f"checkpoint {where} has an unreadable meta.json ({exc}); use another checkpoint"
        ) from exc
    if meta.get("format") != FORMAT:
        raise InvalidInputError(
            f"{where} is not a labkit checkpoint (no format tag in meta.json); pass a folder written by save_checkpoint"
        )
    meta["path"] = folder
    if model is not None:
        check_compatible(meta, model, where)
        tensors = {
            _normalise_key(k): v for k, v in load_file(os.fspath(folder / "model.safetensors"), device="cpu").items()
        }
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
        state = load_file(os.fspath(folder / "optimizer.safetensors"), device=str(map_location))
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
