"""Worker for test_ddp.py: `torchrun --nproc_per_node=2 ddp_worker.py OUT` trains a tiny GPT with DDP on gloo.

Global batch 8 = 2 ranks x 2 accumulation micro-steps x 2 samples (the gradient all-reduce is skipped on the
first micro-step), so global step k sees the same 8 samples as step k of the single-process run in the test. Rank 0 writes the final weights and History.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from labkit.training import (
    distributed,  # noqa: E402
    train,  # noqa: E402
)
from tests.training.test_ddp import OPTIONS, global_batches, make_model  # noqa: E402


def main(out: Path) -> None:
    torch.set_num_threads(1)
    distributed.init_from_env(backend="gloo")
    micro = []
    for (
        batch
    ) in global_batches():  # every 8-sample batch -> 4 micro-batches of 2; rank r takes micro-batches r and r + 2
        micro += [{k: v[i : i + 2] for k, v in batch.items()} for i in range(0, 8, 2)]
    model = make_model()
    history = train(model, micro, grad_accum=2, checkpoint_dir=out / "ckpt", **OPTIONS)
    if distributed.rank() == 0:
        from safetensors.torch import save_model

        save_model(model, str(out / "weights.safetensors"))
        (out / "history.json").write_text(json.dumps({"loss": history.loss, "world": distributed.world_size()}))
    distributed.barrier()
    distributed.destroy()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
