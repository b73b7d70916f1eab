"""Hugging Face folders: a labkit model (and tokenizer) in, a folder `transformers` loads with `from_pretrained` out.

A GPT becomes a GPT2LMHeadModel (GPT-2 layout) or a LlamaForCausalLM (Llama layout), an Encoder a BertModel /
BertForMaskedLM / BertForPreTraining / BertForSequenceClassification, through the in-memory converters of `labkit.models`. The
tokenizer goes in as `tokenizer.json` with a `tokenizer_config.json` naming its special tokens, so
`AutoTokenizer.from_pretrained(folder)` gives the same ids as the labkit Tokenizer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from labkit.checks import check_choice, check_output_dir
from labkit.errors import InvalidInputError
from labkit.export.saved import DTYPES

__all__ = ["to_hf", "hf_tokenizer"]

_ROLE_ARGS = {
    "pad": "pad_token",
    "unk": "unk_token",
    "bos": "bos_token",
    "eos": "eos_token",
    "mask": "mask_token",
    "cls": "cls_token",
    "sep": "sep_token",
}


def hf_tokenizer(tokenizer: Any, model_max_length: int | None = None) -> Any:
    """A labkit Tokenizer in, a transformers PreTrainedTokenizerFast with the same vocabulary and roles out."""
    if not hasattr(tokenizer, "backend") or not hasattr(tokenizer, "special_tokens"):
        raise InvalidInputError(f"tokenizer must be a labkit Tokenizer, got {type(tokenizer).__name__}")
    from transformers import PreTrainedTokenizerFast

    roles = {_ROLE_ARGS[role]: token for role, token in tokenizer.special_tokens.items() if role in _ROLE_ARGS}
    extra = {"model_max_length": model_max_length} if model_max_length else {}
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend, **roles, **extra)


def to_hf(model: nn.Module, folder: str | os.PathLike, tokenizer: Any = None, *, dtype: str = "float32") -> Path:
    """A labkit GPT or Encoder (and its Tokenizer) in, a Hugging Face model folder out; returns the folder.

    dtype: "float32", "float16" or "bfloat16" for the stored weights (written into the config as `dtype`).
    With a tokenizer, the model config's pad/bos/eos ids are set from its roles.
    """
    check_choice("dtype", dtype, DTYPES)
    name = type(model).__name__
    if name not in ("GPT", "Encoder") or not hasattr(model, "to_hf"):
        hint = "; export it with to_onnx or save_model instead" if name == "LSTMLM" else ""
        raise InvalidInputError(f"transformers has no model class for a {name}{hint} (to_hf takes a GPT or an Encoder)")
    folder = check_output_dir("folder", folder)  # a file in the way fails before the weights are converted
    hf = model.to_hf()
    if tokenizer is not None:
        hf_tok = hf_tokenizer(tokenizer, model_max_length=model.config.block_size)
        for role in ("pad", "bos", "eos"):
            token_id = getattr(tokenizer, f"{role}_id", None)
            if token_id is not None:
                setattr(hf.config, f"{role}_token_id", token_id)
                if getattr(hf, "generation_config", None) is not None:
                    setattr(hf.generation_config, f"{role}_token_id", token_id)
        hf_tok.save_pretrained(os.fspath(folder))
    hf = hf.to(DTYPES[dtype])
    hf.save_pretrained(os.fspath(folder))
    return folder
