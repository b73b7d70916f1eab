"""DDP: a 2-process gloo run (torchrun, 2 accumulation micro-steps) ends with the same weights as one process on the same global batches."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from labkit.models.gpt import GPT, GPTConfig

ROOT = Path(__file__).resolve().parents[2]
# SGD, not AdamW: some gradients are analytically zero (attention key biases) and Adam would blow their rounding
# noise up to +-lr, hiding what this test checks: that DDP's averaged gradients equal the one-process gradients.
OPTIONS = dict(
    steps=3,
    optimizer="sgd",
    momentum=0.9,
    lr=0.1,
    schedule="cosine",
    warmup=1,
    log_every=1,
    progress=False,
    device="cpu",
    precision="fp32",
    seed=0,
)


def make_model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig.preset("gpt-nano", vocab_size=32, block_size=12, n_layer=2))


def global_batches() -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(11)
    out = []
    for _ in range(3):
        x = torch.randint(0, 32, (8, 12), generator=gen)
        out.append({"input_ids": x, "labels": x})
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    from safetensors.torch import load_model

    from labkit.training import train

    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        "--master_addr=127.0.0.1",
        str(ROOT / "tests" / "training" / "ddp_worker.py"),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = make_model()
        history = train(single, global_batches(), **OPTIONS)
    finally:
        torch.set_num_threads(threads)
    ddp = make_model()
    load_model(ddp, str(tmp_path / "weights.safetensors"))
    for (name, a), b in zip(single.state_dict().items(), ddp.state_dict().values()):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0, msg=name)
    logged = json.loads((tmp_path / "history.json").read_text())
    assert logged["world"] == 2 and logged["loss"] == pytest.approx(history.loss, abs=1e-5)  # mean over ranks
    assert (tmp_path / "ckpt" / "latest").read_text().strip() == "step-000003"  # rank 0 checkpointed
