"""Item 1 and 3 of the hardening issue: every training option is checked, for range as well as type, before
any work; a checkpoint folder that cannot be used fails at the start, not after training has run."""

from __future__ import annotations

import os

import pytest
import torch

from labkit.errors import InvalidInputError, LabkitError, UnknownNameError
from labkit.models.gpt import GPT, GPTConfig
from labkit.training import Callback, train

QUIET = dict(progress=False, device="cpu", precision="fp32")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gpt(**overrides):
    torch.manual_seed(0)
    return GPT(GPTConfig.preset("gpt-nano", vocab_size=32, block_size=12, n_layer=1, **overrides))


class CountingBatches:
    """A batch source that counts how often it is read: a refused option must not read it once."""

    def __init__(self, n=4):
        gen = torch.Generator().manual_seed(1)
        self.batches = []
        for _ in range(n):
            x = torch.randint(0, 32, (2, 12), generator=gen)
            self.batches.append({"input_ids": x, "labels": x})
        self.reads = 0

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for b in self.batches:
            self.reads += 1
            yield b


BAD = [
    (dict(clip_norm=-1.0), "clip_norm must be a finite number > 0"),
    (dict(clip_norm=0), "clip_norm must be a finite number > 0"),
    (dict(clip_norm=float("nan")), "clip_norm"),
    (dict(lr=0), "lr must be a finite number > 0"),
    (dict(lr=-1e-3), "lr must be"),
    (dict(lr=float("inf")), "lr must be"),
    (dict(lr="1e-3"), "lr must be"),
    (dict(weight_decay=-0.1), "weight_decay must be"),
    (dict(betas=(0.9, 1.0)), r"betas\[1\] must be"),
    (dict(betas=(-0.1, 0.99)), r"betas\[0\] must be"),
    (dict(betas=0.9), "betas must be a pair"),
    (dict(momentum=1.5), "momentum must be"),
    (dict(warmup=-1), "warmup must be an integer >= 0"),
    (dict(warmup=1.5), "warmup must be"),
    (dict(warmup=100), "warmup=100 is longer than the run"),
    (dict(min_lr_ratio=1.5), "min_lr_ratio must be"),
    (dict(grad_accum=0), "grad_accum must be an integer >= 1"),
    (dict(grad_accum=2.0), "grad_accum must be an integer"),
    (dict(grad_accum=True), "grad_accum must be an integer"),
    (dict(log_every=0), "log_every must be"),
    (dict(steps=-3), "steps must be"),
    (dict(steps=2.5), "steps must be"),
    (dict(epochs=0), "epochs must be"),
    (dict(steps=2, epochs=1), "not both"),
    (dict(eval_every=0, val_batches=[]), "eval_every must be"),
    (dict(eval_every=2), "eval_every=2 needs something to evaluate"),
    (dict(eval_batches=-1), "eval_batches must be"),
    (dict(checkpoint_every=0), "checkpoint_every must be"),
    (dict(checkpoint_every=2), "checkpoint_every=2 needs a place to write"),
    (dict(keep_last=0), "keep_last must be an integer >= 1"),
    (dict(keep_last=-2), "keep_last must be"),
    (dict(seed=-1), "seed must be an integer"),
    (dict(seed=2**40), "seed must be an integer"),
    (dict(seed="0"), "seed must be an integer"),
    (dict(compile="yes"), "compile must be True or False"),
    (dict(progress=1), "progress must be True or False"),
    (dict(optimizer="adamw2"), "did you mean 'adamw'"),
    (dict(optimizer=3), "optimizer must be a name"),
    (dict(schedule="cosin"), "did you mean 'cosine'"),
    (dict(schedule=5), "schedule must be a name"),
    (dict(precision="bf61"), "did you mean 'bf16'"),
    (dict(precision=16), "precision must be one of"),
    (dict(loss_fn="mse"), "loss_fn must be a function"),
    (dict(resume=3), "resume must be a checkpoint"),
    (dict(resume=True), "resume=True resumes from checkpoint_dir"),
    (dict(resume="/nonexistent/run"), "no checkpoint"),
    (dict(device="gpu9"), "device"),
]


@pytest.mark.parametrize("options,match", BAD, ids=[str(o) for o, _ in BAD])
def test_a_bad_option_fails_in_one_line_before_any_work(options, match):
    model, data = _gpt(), CountingBatches()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(LabkitError, match=match) as err:
        train(model, data, **{**QUIET, "steps": 3, **options})
    assert "\n" not in str(err.value)
    assert data.reads == 0  # refused before a single batch was read
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_negative_clip_norm_no_longer_reverses_the_update():
    # the review's case: clip_norm=-1 was accepted and sent the loss from 2.8 to 18; now it is refused, and a
    # positive clip_norm keeps the loss going down
    with pytest.raises(InvalidInputError, match="None turns clipping off"):
        train(_gpt(), CountingBatches(), steps=4, lr=1e-2, clip_norm=-1.0, **QUIET)
    history = train(_gpt(), CountingBatches(1), steps=20, lr=1e-2, clip_norm=1.0, log_every=1, **QUIET)
    assert history.loss[-1] < history.loss[0]


@pytest.mark.parametrize("ok", [dict(clip_norm=None), dict(warmup=0.1), dict(keep_last=None), dict(seed=None)])
def test_the_documented_special_values_are_accepted(ok, tmp_path):
    history = train(_gpt(), CountingBatches(), steps=2, checkpoint_dir=tmp_path, **QUIET, **ok)
    assert history.step == [1, 2]


def test_checkpoint_dir_that_is_a_file_fails_before_training(tmp_path):
    in_the_way = tmp_path / "run"
    in_the_way.write_text("notes")

    class Never(Callback):
        def on_train_begin(self, trainer):
            raise AssertionError("training started")

    for bad, match in (
        (in_the_way, "is a file, not a folder"),
        (in_the_way / "sub", "cannot be created: .* is a file"),
    ):
        data = CountingBatches()
        with pytest.raises(InvalidInputError, match=match) as err:
            train(_gpt(), data, steps=2, checkpoint_dir=bad, callbacks=[Never()], **QUIET)
        assert "\n" not in str(err.value) and data.reads == 0
    assert in_the_way.read_text() == "notes"  # nothing lost


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; the permission check cannot fail")
def test_checkpoint_dir_without_write_permission_fails_before_training(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(InvalidInputError, match="is not writable"):
            train(_gpt(), CountingBatches(), steps=2, checkpoint_dir=locked, **QUIET)
    finally:
        locked.chmod(0o700)


def test_checkpoint_dir_on_a_read_only_file_system_fails_before_training():
    # /proc is read-only for everyone, root included: the write probe fails there
    with pytest.raises(InvalidInputError, match="checkpoint_dir '/proc.*(cannot be created|not writable)"):
        train(_gpt(), CountingBatches(), steps=2, checkpoint_dir="/proc/labkit-run", **QUIET)


def test_unknown_names_are_unknown_name_errors():
    with pytest.raises(UnknownNameError):
        train(_gpt(), CountingBatches(), steps=2, optimizer="sgdd", **QUIET)
