"""One folder for a trained model and its tokenizer, and one reader for it and for training checkpoints.

`save_model(model, folder, tokenizer)` writes what `GPT.save_pretrained` writes, for every labkit model family:
`config.json` (the model's config with its `arch`), `model.safetensors` (optionally in float16/bfloat16) and,
with a tokenizer, `tokenizer.json` plus its labkit sidecar. `load_model(path)` reads such a folder, a training
checkpoint folder (`step-NNNNNN/` with `meta.json`, written by `labkit.training`) or a run folder (its
`latest` checkpoint), and finds the tokenizer beside the weights or in the run folder above them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from labkit.checks import check_choice, check_output_dir
from labkit.errors import InvalidInputError, MissingSourceError

__all__ = ["DTYPES", "LoadedModel", "save_model", "load_model", "model_classes"]

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_CHECKPOINT_FORMAT = "labkit-checkpoint"  # the tag training checkpoints carry in meta.json


class LoadedModel(NamedTuple):
    """What `load_model` returns: the model (eval mode), its tokenizer (None when none was saved) and the folder."""

    model: nn.Module
    tokenizer: Any
    folder: Path


def model_classes() -> dict[str, tuple[type, type]]:
    """Return {arch: (model class, config class)} for every labkit model family."""
    from labkit.models import GPT, LSTMLM, Encoder, EncoderConfig, GPTConfig, LSTMConfig, Seq2Seq, Seq2SeqConfig

    return {
        "gpt": (GPT, GPTConfig),
        "encoder": (Encoder, EncoderConfig),
        "lstm": (LSTMLM, LSTMConfig),
        "seq2seq": (Seq2Seq, Seq2SeqConfig),
    }


def _build(config: dict[str, Any], where: str) -> nn.Module:
    arch = config.get("arch")
    classes = model_classes()
    if arch not in classes:
        raise InvalidInputError(
            f"{where} holds a model of arch {arch!r}; labkit models are {', '.join(classes)}"
            + ("; a Hugging Face folder loads with GPT.from_hf or Encoder.from_hf" if "model_type" in config else "")
        )
    model_cls, config_cls = classes[arch]
    return model_cls(config_cls(**config))


def save_model(model: nn.Module, folder: str | os.PathLike, tokenizer: Any = None, *, dtype: str = "float32") -> Path:
    """A labkit model (and its labkit Tokenizer) in, a folder with config.json, model.safetensors, tokenizer.json out.

    dtype: "float32", "float16" or "bfloat16" for the stored weights (half the size; `load_model` gives float32
    back). Tied weights are stored once.
    """
    check_choice("dtype", dtype, DTYPES)
    config = getattr(model, "config", None)
    if config is None or getattr(config, "arch", None) not in model_classes():
        raise InvalidInputError(
            f"save_model needs a labkit model (GPT, Encoder, LSTMLM, Seq2Seq), got {type(model).__name__}"
        )
    if tokenizer is not None and not hasattr(tokenizer, "save"):
        raise InvalidInputError(f"tokenizer must be a labkit Tokenizer, got {type(tokenizer).__name__}")
    from safetensors.torch import save_file

    folder = check_output_dir("folder", folder)  # a file in the way fails here, before the weights are copied
    tensors, seen = {}, {}
    for key, value in model.state_dict().items():
        ident = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape))
        if ident in seen:  # a tied weight (lm_head = wte): keep one copy, the loader re-ties it
            continue
        seen[ident] = key
        value = value.detach().to("cpu")
        tensors[key] = (value.to(DTYPES[dtype]) if value.is_floating_point() else value).contiguous()
    save_file(tensors, os.fspath(folder / "model.safetensors"), metadata={"format": "pt", "dtype": dtype})
    (folder / "config.json").write_text(json.dumps(asdict(config), indent=2), encoding="utf-8")
    if tokenizer is not None:
        tokenizer.save(folder / "tokenizer.json")
    return folder


def _check_against_manifest(folder: Path, name: str) -> None:
    """Refuse a checkpoint file whose size or SHA-256 differs from what its `manifest.json` lists (no manifest: an
    older checkpoint, nothing to compare). The manifest's layout is the one labkit.training writes."""
    import hashlib

    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return
    want = _read_json(manifest).get("files", {}).get(name)
    if not isinstance(want, dict):
        return
    file = folder / name
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    if file.stat().st_size != want.get("bytes") or digest != want.get("sha256"):
        raise InvalidInputError(
            f"checkpoint {os.fspath(folder)!r} failed verification: {name} does not match its manifest checksum "
            "(truncated or altered); load an older step-* folder, or the run folder with "
            "labkit.training.load_checkpoint, which falls back to the newest good checkpoint"
        )


def _read_json(file: Path) -> dict[str, Any]:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InvalidInputError(f"{file} is not valid JSON ({exc}); save the model again") from None


def _checkpoint_folder(path: Path) -> Path | None:
    """A training checkpoint folder, or a run folder (its `latest`, else its highest step), or None."""
    if (path / "meta.json").is_file():
        return path
    latest = path / "latest"
    if latest.is_file():
        candidate = path / latest.read_text(encoding="utf-8").strip()
        if (candidate / "meta.json").is_file():
            return candidate
    steps = sorted(p for p in path.glob("step-*") if (p / "meta.json").is_file())
    return steps[-1] if steps else None


def _find_tokenizer(folder: Path) -> Any:
    from labkit.data import load_tokenizer

    for candidate in (folder / "tokenizer.json", folder.parent / "tokenizer.json"):
        if candidate.is_file():
            return load_tokenizer(candidate)
    return None


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> LoadedModel:
    """A saved model folder, a training checkpoint or a run folder in, LoadedModel(model, tokenizer, folder) out.

    The model comes back in eval mode and float32 on `map_location`; the tokenizer is the `tokenizer.json` next
    to the weights (or in the run folder above a checkpoint), or None.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise MissingSourceError(
            f"no model at {os.fspath(path)!r}; pass a folder written by save_model / GPT.save_pretrained, "
            "or a training run or checkpoint folder"
        )
    checkpoint = _checkpoint_folder(path) if path.is_dir() else None
    if checkpoint is not None:
        meta = _read_json(checkpoint / "meta.json")
        if meta.get("format") != _CHECKPOINT_FORMAT:
            raise InvalidInputError(f"{checkpoint / 'meta.json'} is not a labkit checkpoint's metadata")
        config, aliases, folder = meta["model"].get("config") or {}, meta["model"].get("aliases", {}), checkpoint
    elif path.is_dir() and (path / "config.json").is_file():
        config, aliases, folder = _read_json(path / "config.json"), {}, path
    else:
        raise MissingSourceError(
            f"{os.fspath(path)!r} holds no labkit model (no config.json, meta.json or step-* folders); "
            "save one with labkit.export.save_model or train(checkpoint_dir=...)"
        )
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise MissingSourceError(f"no model.safetensors in {os.fspath(folder)!r}; save the model again")
    if checkpoint is not None:
        _check_against_manifest(folder, weights.name)
    model = _build(config, repr(os.fspath(folder)))
    try:
        tensors = load_file(os.fspath(weights))
    except Exception as exc:  # safetensors raises its own SafetensorError for a damaged or truncated file
        raise InvalidInputError(
            f"{os.fspath(weights)!r} is damaged or truncated ({type(exc).__name__}); save the model again"
        ) from None
    for alias, stored in aliases.items():
        tensors[alias] = tensors[stored]
    # a weight tied to another (GPT's lm_head, a tied LSTM's output) is stored once; fill in the other name
    owner: dict[int, str] = {}
    for key, value in model.state_dict().items():
        first = owner.setdefault(value.data_ptr(), key)
        if key not in tensors and first in tensors:
            tensors[key] = tensors[first]
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # a size mismatch: the config was edited, or belongs to other weights
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), "size mismatch")
        raise InvalidInputError(
            f"{os.fspath(weights)!r} does not fit its config ({first[:160]}); save the model and config together again"
        ) from None
    if missing or unexpected:
        raise InvalidInputError(
            f"{os.fspath(weights)!r} does not fit its config: missing {missing[:3]}, unexpected {unexpected[:3]}; "
            "save the model again"
        )
    return LoadedModel(model.to(map_location).eval(), _find_tokenizer(folder), folder)
