"""Exact resume: N uninterrupted steps == N/2 steps, a crash, a resume and N/2 more (losses and weights bit-equal)."""

from __future__ import annotations

import pytest
import torch

from labkit.models.gpt import GPT, GPTConfig
from labkit.training import Callback, train

N = 8
OPTIONS = dict(
    steps=N,
    lr=3e-3,
    schedule="cosine",
    warmup=2,
    optimizer="adamw",
    weight_decay=0.1,
    log_every=3,
    progress=False,
    device="cpu",
    precision="fp32",
    seed=7,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class ShuffledBatches:
    """A deterministic, resumable batch source: reshuffles its batches each epoch from (seed, epoch)."""

    def __init__(self, batches, seed=0):
        self.batches, self.seed, self.epoch, self.pos = batches, seed, 0, 0

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        order = torch.randperm(
            len(self.batches), generator=torch.Generator().manual_seed(self.seed + self.epoch)
        ).tolist()
        while self.pos < len(order):
            self.pos += 1
            yield self.batches[order[self.pos - 1]]
        self.epoch, self.pos = self.epoch + 1, 0

    def state_dict(self):
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state):
        self.epoch, self.pos = state["epoch"], state["pos"]


def _batches(n=6):
    gen = torch.Generator().manual_seed(3)
    out = []
    for _ in range(n):
        x = torch.randint(0, 32, (2, 12), generator=gen)
        out.append({"input_ids": x, "labels": x})
    return out


def _model(seed):
    torch.manual_seed(seed)
    return GPT(
        GPTConfig.preset("gpt-nano", vocab_size=32, block_size=12, n_layer=2, dropout=0.1)
    )  # dropout: RNG matters


def _source(kind):
    return ShuffledBatches(_batches()) if kind == "stateful" else _batches()


class Crash(Callback):
    def __init__(self, step, exc):
        self.step, self.exc = step, exc

    def on_step_end(self, trainer, step, logs):
        if step == self.step:
            raise self.exc


@pytest.mark.parametrize("kind", ["list", "stateful"])
@pytest.mark.parametrize("grad_accum", [1, 2])
def test_resume_after_crash_is_exact(tmp_path, kind, grad_accum):
    full_model = _model(0)
    full = train(full_model, _source(kind), grad_accum=grad_accum, **OPTIONS)

    crashed = _model(0)
    with pytest.raises(RuntimeError, match="power cut"):
        train(
            crashed,
            _source(kind),
            grad_accum=grad_accum,
            checkpoint_dir=tmp_path,
            checkpoint_every=N // 2,
            callbacks=[Crash(N // 2 + 1, RuntimeError("power cut"))],
            **OPTIONS,
        )
    resumed_model = _model(123)  # different init: everything must come from the checkpoint
    resumed = train(
        resumed_model, _source(kind), grad_accum=grad_accum, checkpoint_dir=tmp_path, resume=True, **OPTIONS
    )

    assert resumed.step == full.step == list(range(1, N + 1))
    assert resumed.loss == full.loss and resumed.lr == full.lr
    for (name, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_after_keyboard_interrupt_mid_step_is_exact(tmp_path):
    full_model = _model(0)
    full = train(full_model, ShuffledBatches(_batches()), grad_accum=2, **OPTIONS)
    calls = {"n": 0}

    def loss_fn(model, batch):
        calls["n"] += 1
        if calls["n"] == 2 * (N // 2) + 2:  # second micro-batch of step N/2 + 1: dropout already drew random numbers
            raise KeyboardInterrupt
        return model(**batch).loss

    part = train(
        _model(0), ShuffledBatches(_batches()), grad_accum=2, loss_fn=loss_fn, checkpoint_dir=tmp_path, **OPTIONS
    )
    assert part.interrupted and part.step[-1] == N // 2
    resumed_model = _model(5)
    resumed = train(resumed_model, ShuffledBatches(_batches()), grad_accum=2, resume=tmp_path, **OPTIONS)
    assert resumed.loss == full.loss and not resumed.interrupted
    for a, b in zip(full_model.parameters(), resumed_model.parameters()):
        assert torch.equal(a, b)
