"""Data-parallel training under torchrun: rank/world helpers, process-group setup, DDP wrapping, batch sharding.

`train()` calls `init_from_env()` itself, so the same script runs alone or as
`torchrun --nproc_per_node=N script.py`: NCCL on GPUs, gloo on CPUs.
Outside torchrun every helper answers as a single process (rank 0 of 1).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "is_distributed",
    "rank",
    "local_rank",
    "world_size",
    "is_main_process",
    "init_from_env",
    "wrap_model",
    "barrier",
    "all_reduce_mean",
    "shard_batches",
    "no_sync",
    "destroy",
]


def is_distributed() -> bool:
    """True when a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 outside distributed runs)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", 0))


def local_rank() -> int:
    """This process's rank on its machine (torchrun's LOCAL_RANK; 0 when absent)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def world_size() -> int:
    """Number of processes (1 outside distributed runs)."""
    return (
        dist.get_world_size() if dist.is_available() and dist.is_initialized() else int(os.environ.get("WORLD_SIZE", 1))
    )


def is_main_process() -> bool:
    """True on rank 0: the one process that logs, shows progress and writes checkpoints."""
    return rank() == 0


def init_from_env(backend: str | None = None, timeout_s: float = 1800.0) -> bool:
    """Start the process group from torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT); return whether one runs.

    backend: None picks "nccl" when CUDA is available, else "gloo". Does nothing when WORLD_SIZE is absent or 1,
    or when a group is already initialised.
    """
    if not dist.is_available() or int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return False
    if dist.is_initialized():
        return True
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank() % torch.cuda.device_count())
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return True


def destroy() -> None:
    """Tear the process group down (call at the end of a torchrun script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Wrap `model` (already on `device`) in DistributedDataParallel when a group runs; else return it unchanged."""
    if not is_distributed():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def no_sync(model: nn.Module, skip: bool) -> contextlib.AbstractContextManager:
    """Context that skips DDP's gradient all-reduce when `skip` (accumulation micro-steps); a no-op otherwise."""
    if skip and isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def barrier() -> None:
    """Wait for every process (no-op outside distributed runs)."""
    if is_distributed():
        dist.barrier()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Return the mean of `tensor` over processes (the tensor itself outside distributed runs)."""
    if not is_distributed():
        return tensor
    out = tensor.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / world_size()


class _EveryNth:
    """Re-iterable view taking batches rank, rank + world, rank + 2 * world, ... of a batch source."""

    def __init__(self, source: Iterable[Any], rank_: int, world: int) -> None:
        self.source, self.rank, self.world = source, rank_, world

    def __iter__(self) -> Iterator[Any]:
        for i, batch in enumerate(self.source):
            if i % self.world == self.rank:
                yield batch

    def __len__(self) -> int:
        return len(self.source) // self.world  # type: ignore[arg-type]  # TypeError for streams, as len() should


class _EveryNthStateful(_EveryNth):
    """The same view over a source with state_dict()/load_state_dict(): every rank reads all of it, so one state fits all."""

    def state_dict(self) -> dict[str, Any]:
        return self.source.state_dict()  # type: ignore[attr-defined]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.source.load_state_dict(state)  # type: ignore[attr-defined]


def shard_batches(source: Iterable[Any], rank_: int | None = None, world: int | None = None) -> Iterable[Any]:
    """A batch source in, this rank's share out: `source.shard(rank, world)` when it offers one, else every world-th batch.

    Every rank then sees different batches; with equal-sized batches the DDP average of their gradients equals
    the gradient of one process over all of them.
    """
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    if world <= 1:
        return source
    if callable(getattr(source, "shard", None)):
        return source.shard(rank_, world)  # type: ignore[attr-defined]
    stateful = callable(getattr(source, "state_dict", None)) and callable(getattr(source, "load_state_dict", None))
    return (_EveryNthStateful if stateful else _EveryNth)(source, rank_, world)
