"""The random generators a run draws from (Python, NumPy, torch CPU and CUDA), captured and restored for exact resume."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["get_rng_state", "set_rng_state"]


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
