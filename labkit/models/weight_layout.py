"""Weight memory layout for fast decoding on CPUs: same values, same shapes, different strides.

Decoding one token multiplies each weight matrix by a single vector, so its speed
is how fast the matrix streams from memory. On the x86 CPUs we measured (torch's
CPU build, oneDNN/MKL), `F.linear(x, W)` with W stored row-major as
[out_features, in_features] streams a tall matrix at about a third of the speed of
the same W stored column-major (W.t() contiguous): the tied [vocab, n_embd] LM head
of the benchmark model took 1.0 ms instead of 0.37 ms per token
(`python benchmarks/bench_weight_layout.py`). Wide-input matrices (fc_out:
[n_embd, 4 n_embd]) are faster as they are, so only tall and square ones move.

Results differ by rounding only (about 1e-6 relative). `generate()` re-lays out
models that are in eval mode on the CPU; `train()` puts the standard layout back
first, so a training run's numbers never depend on whether the model generated
text before it.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["relayout_for_decoding", "relayout_for_training", "is_column_major"]


def is_column_major(weight: torch.Tensor) -> bool:
    """A 2-D tensor in, True when it is stored column-major (its transpose is contiguous) out."""
    return weight.dim() == 2 and weight.size(0) > 1 and weight.size(1) > 1 and weight.t().is_contiguous()


def _linear_weights(model: nn.Module) -> Iterator[torch.Tensor]:
    """Each distinct `nn.Linear` weight of the model once (a tied embedding/LM head matrix appears once)."""
    seen: set[int] = set()
    for module in model.modules():
        weight = getattr(module, "weight", None) if isinstance(module, nn.Linear) else None
        if isinstance(weight, torch.Tensor) and weight.dim() == 2 and id(weight) not in seen:
            seen.add(id(weight))
            yield weight


def relayout_for_decoding(model: nn.Module) -> int:
    """A model in; every CPU `nn.Linear` weight with out_features >= in_features is stored column-major; returns how many moved.

    Values, shapes, dtypes and the Parameter objects stay the same (optimizers, tied weights such as a shared
    embedding/LM head, and `state_dict()` keep working; checkpoints are written contiguous). Idempotent: a second
    call moves nothing. `generate()`, `stream()` and beam search call it for eval-mode models, so a user never
    has to. Weights on other devices are left alone (GPU matrix kernels are tuned for the standard layout).
    """
    moved = 0
    # inference_mode(False): re-laid-out weights must stay ordinary tensors that can be trained afterwards
    with torch.inference_mode(False), torch.no_grad():
        for weight in _linear_weights(model):
            if weight.device.type == "cpu" and weight.size(0) >= weight.size(1) > 1 and weight.is_contiguous():
                weight.data = weight.data.t().contiguous().t()
                moved += 1
    return moved


def relayout_for_training(model: nn.Module) -> int:
    """A model in; every column-major `nn.Linear` weight goes back to the standard contiguous layout; returns how many moved.

    The inverse of `relayout_for_decoding` (values, shapes and Parameter objects unchanged); `train()` calls it
    before the first step. A model that never generated moves nothing.
    """
    moved = 0
    with torch.inference_mode(False), torch.no_grad():
        for weight in _linear_weights(model):
            if is_column_major(weight):
                weight.data = weight.data.contiguous()
                moved += 1
    return moved
