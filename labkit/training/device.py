"""Device and precision resolution, autocast contexts, the peak-FLOPs table and MFU.

Kept apart from the train loop so the LR finder, LoRA helpers and benchmarks can
resolve "auto" the same way the trainer does.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch
from torch import nn

from labkit.errors import InvalidInputError, UnknownNameError, close_matches

__all__ = ["resolve_device", "resolve_precision", "autocast", "peak_flops", "flops_per_token", "PRECISIONS"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_ALIASES = {"float32": "fp32", "32": "fp32", "bfloat16": "bf16", "float16": "fp16", "16": "fp16", "half": "fp16"}

# Dense peak tensor throughput per GPU, (bf16/fp16, tf32) in FLOP/s, from the vendors' datasheets (no sparsity).
# Matched as a substring of torch.cuda.get_device_name(); the first match wins, so specific names come first.
PEAK_FLOPS: tuple[tuple[str, float, float], ...] = (
    ("H200", 989e12, 494e12),
    ("H100 PCIe", 756e12, 378e12),
    ("H100 NVL", 835e12, 418e12),
    ("H100", 989e12, 494e12),  # SXM
    ("GH200", 989e12, 494e12),
    ("A100", 312e12, 156e12),
    ("A10G", 70e12, 35e12),
    ("A10", 125e12, 62.5e12),
    ("L40S", 362e12, 183e12),
    ("L4", 121e12, 60e12),
    ("RTX 4090", 165e12, 82.6e12),
    ("RTX 3090", 71e12, 35.6e12),
    ("V100", 125e12, 15.7e12),  # V100 has no bf16/tf32; fp16 tensor cores and plain fp32
    ("T4", 65e12, 8.1e12),
)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """A device name ("auto", "cpu", "cuda", "cuda:1", "mps") in, a torch.device out.

    "auto" picks CUDA (the local rank's GPU under torchrun), then Apple MPS, then the CPU.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInputError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(
            f"device {device!r} asked for but CUDA is not available here; use device='cpu' or 'auto'"
        )
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """A precision name and the device in, one of "fp32", "bf16", "fp16" out; errors where the device lacks it.

    "auto" gives bf16 on CUDA GPUs that support it, fp16 on older CUDA GPUs, fp32 elsewhere.
    """
    name = _ALIASES.get(str(precision).lower(), str(precision).lower())
    if name not in PRECISIONS:
        hint = close_matches(str(precision), PRECISIONS + tuple(_ALIASES)) or "choose one of " + ", ".join(PRECISIONS)
        raise UnknownNameError(f"unknown precision {precision!r}; {hint}")
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InvalidInputError(
            f"precision='bf16' is not supported on {torch.cuda.get_device_name(device)}; use precision='fp16' or 'auto'"
        )
    if name == "fp16" and device.type != "cuda":
        raise InvalidInputError(
            f"precision='fp16' needs a CUDA GPU (it trains with a grad scaler); on {device.type} use 'bf16' or 'fp32'"
        )
    return name


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Return the autocast context for `precision` on `device` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def peak_flops(device: torch.device, precision: str) -> float | None:
    """Return the device's dense peak FLOP/s for `precision`, or None when unknown (CPUs, unlisted GPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, half, tf32 in PEAK_FLOPS:
        if key in name:
            return tf32 if precision == "fp32" else half
    return None


def flops_per_token(model: nn.Module, seq_len: int) -> float:
    """Return the training FLOPs per token: 6N, plus the attention term 12 * layers * width * seq_len when the
    model's config has n_layer and n_embd (the PaLM appendix B estimate nanoGPT also uses).

    N counts the parameters that take part in matrix products (`labkit.models.model_summary.matmul_parameters`):
    position tables and untied token embeddings are lookups and are left out; a tied LM head counts once.
    """
    from labkit.models.model_summary import matmul_parameters

    flops = 6.0 * matmul_parameters(model)
    config: Any = getattr(model, "config", None)
    if config is not None and hasattr(config, "n_layer") and hasattr(config, "n_embd"):
        flops += 12.0 * config.n_layer * config.n_embd * seq_len
    return flops
