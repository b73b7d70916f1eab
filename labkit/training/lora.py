"""LoRA through PEFT: wrap a labkit or Hugging Face model, count what trains, save/load adapters, export to the HF twin.

`lora(model, r=8, alpha=16, targets=("attn",))` builds a `peft.LoraConfig`, calls `peft.get_peft_model` (which
changes `model` in place) and returns the `PeftModel`. It behaves like the model it wraps: `peft_model(**batch)`
returns labkit's `ModelOutput`, `run_with_cache`/`hook_names` reach the wrapped model, only the LoRA matrices
require grad, and PEFT's `merge_adapter()`, `unmerge_adapter()`, `merge_and_unload()` and `save_pretrained()` work.

Target aliases, mixed freely with module-name suffixes ("q_proj", "blocks.0.attn.v_proj"); a single string that is
neither an alias nor a suffix is a full-match regex over module names, as in PEFT:

| alias | labkit | GPT-2 | Llama family | BERT |
| --- | --- | --- | --- | --- |
| `"attn"` | q_proj, k_proj, v_proj (self and cross) | c_attn | q_proj, k_proj, v_proj | query, key, value |
| `"qv"` | q_proj, v_proj (the LoRA paper's choice) | - (fused) | q_proj, v_proj | query, value |
| `"attn-out"` | out_proj | attn.c_proj | o_proj | attention.output.dense |
| `"mlp"` | fc_in, fc_out, fc_gate | c_fc, mlp.c_proj | gate_proj, up_proj, down_proj | intermediate/output.dense |
| `"all-linear"` | every linear layer except the output heads (lm_head, classifier) | same | same | same |

`"attn"` is q, k and v without the output projection: PEFT's default for GPT-2 (c_attn holds exactly q, k, v), so
a labkit GPT and its GPT-2 twin adapt the same weights and `save_adapter(..., hf_twin=True)` is exact.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from labkit.checks import check_float, check_int
from labkit.errors import InvalidInputError, MissingSourceError, UnknownNameError, close_matches

__all__ = [
    "TARGET_ALIASES",
    "lora",
    "trainable_parameters",
    "save_adapter",
    "load_adapter",
    "is_lora_wrapped",
    "lora_targets",
    "lora_factors",
]

# alias -> (module-name suffixes, suffixes to leave out); "all-linear" is computed from the module types
_LABKIT = {
    "attn": (("q_proj", "k_proj", "v_proj"), ()),
    "qv": (("q_proj", "v_proj"), ()),
    "attn-out": (("out_proj",), ()),
    "mlp": (("fc_in", "fc_out", "fc_gate"), ()),
}
_LLAMA = {
    "attn": (("q_proj", "k_proj", "v_proj"), ()),
    "qv": (("q_proj", "v_proj"), ()),
    "attn-out": (("o_proj",), ()),
    "mlp": (("gate_proj", "up_proj", "down_proj"), ()),
}
_GPT2 = {"attn": (("c_attn",), ()), "attn-out": (("attn.c_proj",), ()), "mlp": (("c_fc", "mlp.c_proj"), ())}
# BERT's MLP output is "layer.N.output.dense", a suffix of the attention output's name too, hence the exclusion
_BERT = {
    "attn": (("query", "key", "value"), ()),
    "qv": (("query", "value"), ()),
    "attn-out": (("attention.output.dense",), ()),
    "mlp": (("intermediate.dense", "output.dense"), ("attention.output.dense",)),
}
TARGET_ALIASES: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "labkit": _LABKIT,
    "gpt2": _GPT2,
    "llama": _LLAMA,
    "bert": _BERT,
}
_ALIAS_NAMES = ("attn", "qv", "attn-out", "mlp", "all-linear")
_HEADS = ("lm_head", "classifier")  # output layers that "all-linear" leaves alone (often tied to the embeddings)
_ADAPTER_PREFIX = "base_model.model."  # PEFT's key prefix in adapter_model.safetensors
_TWIN_PREFIX = {"gpt2": "transformer.h.", "llama": "model.layers."}  # where GPT.to_hf() puts block i


def _family(model: nn.Module) -> str:
    """Which alias table applies: "labkit" for labkit (and plain torch) models, else the HF model_type's family."""
    from labkit.models.hooks import HookedModel

    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if isinstance(model, HookedModel) or not isinstance(model_type, str):
        return "labkit"
    if model_type == "gpt2":
        return "gpt2"
    if model_type in ("bert", "roberta", "xlm-roberta", "camembert"):
        return "bert"
    return "llama"  # Llama, Mistral, Qwen, Gemma, SmolLM2 ... share q/k/v/o_proj and gate/up/down_proj


def _lora_able(module: nn.Module) -> bool:
    return (
        isinstance(module, (nn.Linear, nn.Embedding, nn.Conv1d, nn.Conv2d, nn.Conv3d))
        or type(module).__name__ == "Conv1D"
    )


def _linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def _ends(name: str, suffix: str) -> bool:
    return name == suffix or name.endswith("." + suffix)


def _resolve_targets(model: nn.Module, targets: str | Sequence[str]) -> tuple[str | list[str], list[str]]:
    """Aliases / suffixes / a regex in, (what to pass as PEFT's target_modules, the matched module names) out."""
    family = _family(model)
    aliases = TARGET_ALIASES[family]
    modules = {name: m for name, m in model.named_modules() if name}
    layers = [n for n, m in modules.items() if _lora_able(m)]
    known = sorted(set(aliases) | {"all-linear"})
    if isinstance(targets, str) and targets not in _ALIAS_NAMES and not any(_ends(n, targets) for n in modules):
        try:
            pattern = re.compile(targets)
        except re.error as exc:
            raise InvalidInputError(
                f"targets {targets!r} is not a valid regex ({exc}); pass an alias such as 'attn' or a list of names"
            ) from None
        matched = [n for n in modules if pattern.fullmatch(n)]
        if not matched:
            hint = close_matches(targets, known + sorted({n.rsplit(".", 1)[-1] for n in layers}))
            raise UnknownNameError(
                f"targets {targets!r} matches no module name (a single string is a full-match regex); "
                f"{hint or 'aliases: ' + ', '.join(known)}"
            )
        _check_wrappable(modules, matched, targets)
        return targets, matched
    items = [targets] if isinstance(targets, str) else list(targets)
    if not items or not all(isinstance(t, str) and t for t in items):
        raise InvalidInputError(
            f"targets must be an alias, a module-name suffix, a regex or a list of them, got {targets!r}"
        )
    suffixes: list[str] = []
    matched: set[str] = set()
    for item in items:
        if item == "all-linear":
            heads = {n for n in layers if n.rsplit(".", 1)[-1] in _HEADS}
            getter = getattr(model, "get_output_embeddings", None)
            out = getter() if callable(getter) else None
            heads |= {n for n in layers if out is not None and modules[n] is out}
            found = [n for n in layers if _linear(modules[n]) and n not in heads]
            suffixes += sorted({n.rsplit(".", 1)[-1] for n in found})
        elif item in _ALIAS_NAMES:
            if item not in aliases:
                why = " (GPT-2's c_attn fuses q, k and v)" if family == "gpt2" else ""
                raise UnknownNameError(
                    f"target alias {item!r} does not exist for {family} models{why}; "
                    f"use one of {', '.join(sorted(aliases))}, 'all-linear' or module names"
                )
            wanted, skip = aliases[item]
            found = [n for n in layers if any(_ends(n, s) for s in wanted) and not any(_ends(n, s) for s in skip)]
            suffixes += [s for s in wanted if any(_ends(n, s) for n in found)]
        else:
            found = [n for n in modules if _ends(n, item)]
            if found:
                _check_wrappable(modules, found, item)
            suffixes.append(item)
        if not found:
            leaves = sorted({n.rsplit(".", 1)[-1] for n in layers})
            hint = close_matches(item, known + leaves + layers)
            raise UnknownNameError(
                f"target {item!r} matches no layer of this {type(model).__name__}; "
                f"{hint + ' ' if hint else ''}aliases: {', '.join(known)}; layer names: {', '.join(leaves)}"
            )
        matched.update(found)
    suffixes = list(dict.fromkeys(suffixes))
    by_suffix = {n for n in layers if any(_ends(n, s) for s in suffixes)}
    # PEFT matches a list of names by suffix; when that would catch more than we mean, pass the full names instead
    return (suffixes if by_suffix == matched else sorted(matched)), sorted(matched)


def _check_wrappable(modules: dict[str, nn.Module], names: list[str], target: str) -> None:
    bad = [n for n in names if not _lora_able(modules[n])]
    if bad:
        inner = sorted(
            {c.rsplit(".", 1)[-1] for n in bad for c, m in modules.items() if c.startswith(n + ".") and _lora_able(m)}
        )
        raise InvalidInputError(
            f"target {target!r} matches {bad[0]} ({type(modules[bad[0]]).__name__}), which LoRA cannot wrap; "
            + (f"name its layers instead: {', '.join(inner)}" if inner else "target Linear, Embedding or Conv layers")
        )


def is_lora_wrapped(model: nn.Module) -> bool:
    """A model in, whether it already carries LoRA adapters (a PEFT wrapper or LoRA layers) out."""
    return hasattr(model, "peft_config") or any(hasattr(m, "lora_A") for m in model.modules())


def lora_targets(model: nn.Module, targets: str | Sequence[str] = "attn") -> list[str]:
    """A base model (no adapters yet) and LoRA targets in, the names of the modules `lora(model, targets=...)` would adapt out.

    targets: as in `lora` (aliases "attn", "qv", "attn-out", "mlp", "all-linear", suffixes, a regex).
    """
    if is_lora_wrapped(model):
        raise InvalidInputError(
            "this model already has LoRA adapters; pass the base model (or a copy made before lora())"
        )
    return _resolve_targets(model, targets)[1]


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """A model (LoRA-wrapped or not) in, (trainable parameters, all parameters) out; shared weights count once.

    Counts the same way as PEFT's `get_nb_trainable_parameters()` for ordinary (not quantized) weights.
    """
    trainable = total = 0
    for _, param in model.named_parameters():
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return trainable, total


def _summary(model: nn.Module) -> str:
    trainable, total = trainable_parameters(model)
    return f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / max(total, 1):.4f}"


def lora(
    model: nn.Module,
    r: int = 8,
    alpha: float = 16,
    dropout: float = 0.0,
    targets: str | Sequence[str] = ("attn",),
    *,
    modules_to_save: Sequence[str] | None = None,
    verbose: bool = True,
) -> Any:
    """A labkit or Hugging Face model in, the same model wrapped by PEFT with LoRA adapters (a `peft.PeftModel`) out.

    The model is changed in place (as PEFT does); deep-copy it first to keep an untouched one. Only the LoRA
    matrices (and `modules_to_save`) require grad; A starts random and B at zero, so the output starts unchanged.
    r: rank of each adapter. alpha: the update is scaled by alpha / r. dropout: on the adapter's input, in [0, 1).
    targets: aliases ("attn", "qv", "attn-out", "mlp", "all-linear"; see the module docstring), module-name suffixes
    ("q_proj", "blocks.0.attn.v_proj"), or one full-match regex string. modules_to_save: layers trained fully and saved
    with the adapter (e.g. ["classifier"]). verbose: print PEFT's "trainable params" line.
    """
    if not isinstance(model, nn.Module):
        raise InvalidInputError(f"lora needs a torch model (nn.Module), got {type(model).__name__}")
    check_int("LoRA rank r", r, fix="4 to 64 are usual")
    check_float("LoRA alpha", alpha, low=0, low_open=True, fix="2 * r is a common choice")
    check_float("LoRA dropout", dropout, low=0, high=1, high_open=True)
    if is_lora_wrapped(model):
        raise InvalidInputError(
            "this model already has LoRA adapters; merge them first (peft_model.merge_and_unload()) "
            "or keep training the existing PeftModel"
        )
    target_modules, matched = _resolve_targets(model, targets)
    modules = dict(model.named_modules())
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=float(dropout),
        target_modules=target_modules,
        # GPT-2's Conv1D stores weights as [in, out]; PEFT must know to transpose when merging
        fan_in_fan_out=any(type(modules[n]).__name__ == "Conv1D" for n in matched),
        modules_to_save=list(modules_to_save) if modules_to_save else None,
    )
    peft_model = get_peft_model(model, config)
    if verbose:
        print(_summary(peft_model))
    return peft_model


# ---- adapters on disk -------------------------------------------------------------------------------------


def _twin_layout(config: Any) -> str:
    """A labkit GPTConfig in, "gpt2" or "llama" (the layout GPT.to_hf() builds) out."""
    if getattr(config, "arch", None) != "gpt":
        raise InvalidInputError(
            f"hf_twin export needs a labkit GPT, got a {getattr(config, 'arch', type(config).__name__)!r} model; "
            "save with hf_twin=False"
        )
    if (
        config.positions == "learned"
        and config.norm == "layernorm"
        and config.bias
        and config.mlp != "swiglu"
        and (config.n_kv_head or config.n_head) == config.n_head
    ):
        return "gpt2"
    if config.positions == "rotary" and config.norm == "rmsnorm" and not config.bias and config.mlp == "swiglu":
        return "llama"
    raise InvalidInputError(
        "hf_twin export needs a GPT that GPT.to_hf() supports (GPT-2 or Llama layout); save with hf_twin=False"
    )


def _twin_names(layout: str) -> dict[str, tuple[str, int | None]]:
    """labkit suffix under blocks.{i}. -> (HF suffix under the layer prefix, part of the fused q/k/v or None)."""
    if layout == "gpt2":
        return {
            "attn.q_proj": ("attn.c_attn", 0),
            "attn.k_proj": ("attn.c_attn", 1),
            "attn.v_proj": ("attn.c_attn", 2),
            "attn.out_proj": ("attn.c_proj", None),
            "mlp.fc_in": ("mlp.c_fc", None),
            "mlp.fc_out": ("mlp.c_proj", None),
        }
    from labkit.models.hf_gpt import LLAMA_WEIGHT_NAMES  # the one source of truth for Llama <-> labkit weight names

    return {
        dst[: -len(".weight")]: (src[: -len(".weight")], None)
        for src, dst in LLAMA_WEIGHT_NAMES.items()
        if "_proj" in src
    }


def lora_factors(model: nn.Module, adapter: str) -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    """A model with PEFT LoRA layers in, {module name: (A [r, in], B [out, r], scaling)} of one adapter out (detached)."""
    out = {}
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and adapter in module.lora_A:
            if getattr(module, "use_dora", {}).get(adapter, False):
                raise InvalidInputError(f"{name} uses DoRA, which has no exact HF-twin export; save with hf_twin=False")
            out[name] = (
                module.lora_A[adapter].weight.detach(),
                module.lora_B[adapter].weight.detach(),
                float(module.scaling[adapter]),
            )
    return out


def _write_adapter(
    path: str, layers: dict[str, tuple[torch.Tensor, torch.Tensor, float]], dropout: float, fan_in_fan_out: bool
) -> None:
    """{module name: (A, B, scaling)} in; adapter_config.json (ranks/alphas per module) + adapter_model.safetensors out."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    tensors, shapes = {}, {}
    for name, (a, b, scaling) in layers.items():
        tensors[f"{_ADAPTER_PREFIX}{name}.lora_A.weight"] = a.detach().contiguous().cpu()
        tensors[f"{_ADAPTER_PREFIX}{name}.lora_B.weight"] = b.detach().contiguous().cpu()
        shapes[name] = (a.shape[0], scaling * a.shape[0])  # alpha = scaling * rank keeps the scale alpha / r
    (r0, alpha0), _ = Counter(shapes.values()).most_common(1)[0]
    others = {n: ra for n, ra in shapes.items() if ra != (r0, alpha0)}
    config = LoraConfig(
        r=r0,
        lora_alpha=alpha0,
        lora_dropout=dropout,
        target_modules=sorted(shapes),
        fan_in_fan_out=fan_in_fan_out,
        rank_pattern={re.escape(n): ra[0] for n, ra in others.items()},
        alpha_pattern={re.escape(n): ra[1] for n, ra in others.items()},
    )
    os.makedirs(path, exist_ok=True)
    config.save_pretrained(path)
    save_file(tensors, os.path.join(path, "adapter_model.safetensors"), metadata={"format": "pt"})


def _export_twin(peft_model: Any, path: str) -> None:
    adapter = peft_model.active_adapter
    src = peft_model.peft_config[adapter]
    if src.modules_to_save:
        raise InvalidInputError("modules_to_save have no HF-twin names; save with hf_twin=False")
    base = peft_model.get_base_model()
    layout = _twin_layout(base.config)
    names, prefix = _twin_names(layout), _TWIN_PREFIX[layout]
    parts: dict[str, dict[int | None, tuple[torch.Tensor, torch.Tensor, float]]] = {}
    for name, abs_ in lora_factors(base, adapter).items():
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)", name)
        if m is None or m.group(2) not in names:
            raise InvalidInputError(
                f"LoRA on {name} has no place in the HF twin; target attention/MLP projections "
                "(e.g. 'attn', 'mlp') or save with hf_twin=False"
            )
        hf_suffix, part = names[m.group(2)]
        parts.setdefault(f"{prefix}{m.group(1)}.{hf_suffix}", {})[part] = abs_
    out = {}
    for hf_name, by_part in parts.items():
        if None in by_part:
            out[hf_name] = by_part[None]
            continue
        # fused c_attn: rows j of the output get B_j A_j x; stacked A's with a block-diagonal B give the same map
        scaling = next(iter(by_part.values()))[2]
        width = next(iter(by_part.values()))[1].shape[0]
        a = torch.cat([by_part[j][0] for j in sorted(by_part)])
        b = torch.zeros(3 * width, a.shape[0], dtype=a.dtype, device=a.device)
        col = 0
        for j in sorted(by_part):
            aj, bj, sj = by_part[j]
            b[j * width : (j + 1) * width, col : col + aj.shape[0]] = bj * (sj / scaling)
            col += aj.shape[0]
        out[hf_name] = (a, b, scaling)
    _write_adapter(path, out, src.lora_dropout, fan_in_fan_out=layout == "gpt2")


def _import_twin(model: nn.Module, path: str, tensors: dict[str, torch.Tensor], target: str) -> None:
    """An adapter saved for GPT.to_hf()'s model (by save_adapter or by PEFT on GPT-2/Llama) in; the labkit-named one at `target`."""
    from peft import LoraConfig
    from peft.utils.other import get_pattern_key

    config = LoraConfig.from_pretrained(path)
    if config.use_dora or config.lora_bias or config.modules_to_save:
        raise InvalidInputError(
            f"adapter in {path!r} uses DoRA, LoRA biases or modules_to_save, which labkit cannot convert; "
            "load it into the Hugging Face model with peft.PeftModel.from_pretrained"
        )
    layout = _twin_layout(model.config)
    inverse: dict[str, list[tuple[str, int | None]]] = {}
    for lk, (hf, part) in _twin_names(layout).items():
        inverse.setdefault(hf, []).append((lk, part))
    layers: dict[str, tuple[torch.Tensor, torch.Tensor, float]] = {}
    pattern = re.compile(re.escape(_ADAPTER_PREFIX + _TWIN_PREFIX[layout]) + r"(\d+)\.(.+)\.lora_A\.weight")
    for key, a in tensors.items():
        m = pattern.fullmatch(key)
        if m is None:
            continue
        hf_name = key[len(_ADAPTER_PREFIX) : -len(".lora_A.weight")]
        if m.group(2) not in inverse:
            raise InvalidInputError(
                f"adapter module {hf_name} has no labkit counterpart; only attention/MLP projections convert"
            )
        b = tensors[key.replace("lora_A", "lora_B")]
        r = config.rank_pattern.get(get_pattern_key(config.rank_pattern.keys(), hf_name), config.r)
        alpha = config.alpha_pattern.get(get_pattern_key(config.alpha_pattern.keys(), hf_name), config.lora_alpha)
        scaling = alpha / (r**0.5 if config.use_rslora else r)
        for lk, part in inverse[m.group(2)]:
            name = f"blocks.{m.group(1)}.{lk}"
            if part is None:
                layers[name] = (a, b, scaling)
                continue
            width = b.shape[0] // 3
            bj = b[part * width : (part + 1) * width]
            # keep only the rank columns this slice uses: an adapter exported from separate q/k/v splits back exactly
            cols = bj.ne(0).any(0) if b.ne(0).any() else torch.ones(b.shape[1], dtype=torch.bool)
            if cols.any():
                layers[name] = (a[cols], bj[:, cols], scaling)
    if not layers:
        raise InvalidInputError(
            f"adapter in {path!r} has no layers under {_TWIN_PREFIX[layout]}*; is it for a {layout} model?"
        )
    _write_adapter(target, layers, config.lora_dropout, fan_in_fan_out=False)


def save_adapter(peft_model: Any, path: str | os.PathLike, hf_twin: bool = False) -> str:
    """A model returned by `lora` and a folder in, the folder path out; writes adapter_config.json + adapter_model.safetensors.

    hf_twin: False writes PEFT's format for the wrapped model itself (load it back with `load_adapter`);
    True (labkit GPT only) writes the adapter under the names of `GPT.to_hf()`'s model, so that
    `peft.PeftModel.from_pretrained(twin, path)` gives the same logits. GPT-2's fused c_attn gets one adapter of
    rank 3r (stacked A, block-diagonal B, alpha scaled to keep alpha / r) in place of separate q/k/v adapters.
    Build the twin from the base weights (`twin = gpt.to_hf()` before `lora(gpt)`, or from a deep copy), because
    wrapping renames the adapted layers' weights (`q_proj.base_layer.weight`).
    """
    if not hasattr(peft_model, "peft_config") or not hasattr(peft_model, "save_pretrained"):
        raise InvalidInputError(f"save_adapter needs the model returned by lora(...), got {type(peft_model).__name__}")
    path = os.fspath(path)
    if os.path.isfile(path):
        raise InvalidInputError(f"{path!r} is a file; pass a folder for the adapter")
    if hf_twin:
        _export_twin(peft_model, path)
    else:
        peft_model.save_pretrained(path)
    return path


def load_adapter(model: nn.Module, path: str | os.PathLike, trainable: bool = False) -> Any:
    """A model without adapters and an adapter folder in, the model wrapped with that adapter (a PeftModel) out.

    Reads folders written by `save_adapter` (either format) or by PEFT. A labkit GPT also takes adapters made for
    its Hugging Face twin (GPT-2 or Llama names, e.g. trained with PEFT on `GPT.to_hf()`); a fused GPT-2 c_attn
    adapter becomes q/k/v adapters that compute the same update. trainable: keep the adapter trainable (to continue
    training); False loads it frozen for inference.
    """
    path = os.fspath(path)
    weights = os.path.join(path, "adapter_model.safetensors")
    if not os.path.isfile(os.path.join(path, "adapter_config.json")) or not os.path.isfile(weights):
        raise MissingSourceError(
            f"no adapter_config.json + adapter_model.safetensors in {path!r}; pass a folder written by save_adapter()"
        )
    if not isinstance(model, nn.Module):
        raise InvalidInputError(f"load_adapter needs a torch model (nn.Module), got {type(model).__name__}")
    if is_lora_wrapped(model):
        raise InvalidInputError("this model already has LoRA adapters; load the adapter into a fresh model")
    from peft import PeftModel
    from safetensors.torch import load_file

    tensors = load_file(weights)
    layout = None
    if getattr(getattr(model, "config", None), "arch", None) == "gpt":
        layout = next(
            (lay for lay, pre in _TWIN_PREFIX.items() if any(k.startswith(_ADAPTER_PREFIX + pre) for k in tensors)),
            None,
        )
    if layout is not None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            _import_twin(model, path, tensors, tmp)
            return PeftModel.from_pretrained(model, tmp, is_trainable=trainable)
    modules = dict(model.named_modules())
    for key, a in tensors.items():
        if not key.endswith(".lora_A.weight"):
            continue
        stem = key[len(_ADAPTER_PREFIX) : -len(".lora_A.weight")]
        if stem not in modules:
            raise InvalidInputError(
                f"adapter in {path!r} adapts {stem}, which this {type(model).__name__} does not have; "
                "load it into the kind of model it was saved from"
            )
        module, b = modules[stem], tensors[key.replace("lora_A", "lora_B")]
        if isinstance(module, nn.Linear) and (a.shape[1], b.shape[0]) != (module.in_features, module.out_features):
            raise InvalidInputError(
                f"adapter in {path!r} was saved for a different shape: {stem} maps {a.shape[1]} -> {b.shape[0]} "
                f"there, {module.in_features} -> {module.out_features} here; use a model with the saved config"
            )
    return PeftModel.from_pretrained(model, path, is_trainable=trainable)
