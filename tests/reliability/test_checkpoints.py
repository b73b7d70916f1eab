"""Item 2 of the hardening issue: the manifest, verification on load, fallback to the newest good checkpoint,
refusal of a resume whose run differs, durable writes, and `keep_last >= 1`."""

from __future__ import annotations

import json
import os
import warnings

import pytest
import torch

from labkit.errors import InvalidInputError, LabkitError
from labkit.models.gpt import GPT, GPTConfig
from labkit.training import Callback, Trainer, load_checkpoint, save_checkpoint, train
from labkit.training import checkpoint as ckpt
from labkit.training.history import TrainingDivergedError
from labkit.training.manifest import MANIFEST, CheckpointWarning, CorruptCheckpointError, verify_checkpoint
from labkit.training.options import RESUMABLE, config_hash

QUIET = dict(progress=False, device="cpu", precision="fp32", log_every=2, seed=3)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gpt(**overrides):
    torch.manual_seed(0)
    config = dict(vocab_size=32, block_size=12, n_layer=1, n_head=2, n_embd=16)
    return GPT(GPTConfig.preset("gpt-nano", **{**config, **overrides}))


def _batches(n=4):
    gen = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        x = torch.randint(0, 32, (2, 12), generator=gen)
        out.append({"input_ids": x, "labels": x})
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished 4-step run with a checkpoint every 2 steps (step-000002, step-000004)."""
    root = tmp_path_factory.mktemp("run")
    train(_gpt(), _batches(), steps=4, checkpoint_dir=root, checkpoint_every=2, **QUIET)
    return root


def _copy(run_dir, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(run_dir, target)
    return target


# ---- the manifest -------------------------------------------------------------------------------------------


def test_manifest_lists_every_file_with_its_checksum_and_the_run_config(run_dir):
    folder = run_dir / "step-000004"
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["step"] == 4 and set(manifest["files"]) == {
        "model.safetensors",
        "optimizer.safetensors",
        "meta.json",
    }
    for name, entry in manifest["files"].items():
        import hashlib

        data = (folder / name).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    config = manifest["config"]
    assert config["model.n_head"] == 2 and config["steps"] == 4 and config["lr"] == 1e-3
    assert manifest["config_hash"] == config_hash(config)
    assert not set(RESUMABLE) & set(config)  # what may change on resume is not part of the run's identity


def test_manifest_is_written_last_and_every_file_and_folder_is_fsynced_around_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else str(fd)
        events.append(("fsync", os.path.basename(path)))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(str(dst))))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    save_checkpoint(tmp_path, _gpt(), step=7)
    names = [name for kind, name in events]
    rename = names.index("step-000007")
    before, after = names[:rename], names[rename + 1 :]
    for file in ("model.safetensors", "optimizer.safetensors", "meta.json", MANIFEST):
        assert file in before  # each file on disk before its folder becomes current
    assert before.index(MANIFEST) > max(before.index(f) for f in ("model.safetensors", "meta.json"))
    assert before[-1].startswith(".tmp-step-000007")  # the folder itself, just before the rename
    assert after[0] == tmp_path.name  # the run folder, so the rename itself is durable
    assert "latest" in after and after[-1] == tmp_path.name


def test_keep_last_must_keep_at_least_one(tmp_path):
    with pytest.raises(InvalidInputError, match="keep_last must be an integer >= 1"):
        save_checkpoint(tmp_path, _gpt(), step=1, keep_last=0)
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, _gpt(), step=step, keep_last=1)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["step-000003"]


# ---- verification and fallback ------------------------------------------------------------------------------


def _overwrite_bytes(path):
    data = bytearray(path.read_bytes())
    data[-8:] = bytes(b ^ 0xFF for b in data[-8:])  # same size, other values: only a checksum can tell
    path.write_bytes(bytes(data))


DAMAGE = {
    "overwritten weight bytes": (lambda f: _overwrite_bytes(f / "model.safetensors"), "does not match its checksum"),
    "truncated weights": (lambda f: (f / "model.safetensors").write_bytes(b"\x00" * 10), "has 10 bytes"),
    "emptied optimizer file": (lambda f: (f / "optimizer.safetensors").write_bytes(b""), "has 0 bytes"),
    "missing meta.json": (lambda f: (f / "meta.json").unlink(), "meta.json is missing"),
    "garbage meta.json": (lambda f: (f / "meta.json").write_bytes(b"\xff\xfe{"), "meta.json has"),
    "missing manifest": (lambda f: (f / MANIFEST).unlink(), "no manifest.json"),
    "garbage manifest": (lambda f: (f / MANIFEST).write_bytes(b"\x80not json"), "manifest.json is unreadable"),
    "manifest of another step": (
        lambda f: (f / MANIFEST).write_text((f / MANIFEST).read_text().replace('"step": 4', '"step": 2')),
        "meta.json says step 4",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_is_named_in_one_line_and_resume_falls_back_with_a_notice(damage, run_dir, tmp_path):
    spoil, reason = DAMAGE[damage]
    run = _copy(run_dir, tmp_path)
    spoil(run / "step-000004")
    with pytest.raises(CorruptCheckpointError, match=reason) as err:
        load_checkpoint(run / "step-000004", _gpt())
    assert "\n" not in str(err.value) and "step-000004" in str(err.value)
    model = _gpt()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(CorruptCheckpointError):
        load_checkpoint(run / "step-000004", model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # nothing half-loaded

    with pytest.warns(CheckpointWarning, match=f"step-000004 failed verification .*{reason}.*step-000002"):
        meta = load_checkpoint(run, _gpt())
    assert meta["step"] == 2
    with pytest.warns(CheckpointWarning, match="resuming from .*step-000002' \\(step 2\\)"):
        resumed = train(_gpt(), _batches(), steps=4, checkpoint_dir=run, resume=True, **QUIET)
    uninterrupted = train(_gpt(), _batches(), steps=4, **QUIET)
    assert resumed.loss == uninterrupted.loss  # the fallback resume is still exact
    verify_checkpoint(run / "step-000004")  # and it wrote a good step 4 over the damaged one


def test_a_named_step_folder_that_fails_is_refused_and_so_is_a_run_with_no_good_checkpoint(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    _overwrite_bytes(run / "step-000004" / "model.safetensors")
    with pytest.raises(CorruptCheckpointError, match="resume from its run folder to fall back"):
        train(_gpt(), _batches(), steps=4, resume=run / "step-000004", **QUIET)
    _overwrite_bytes(run / "step-000002" / "optimizer.safetensors")
    with pytest.raises(CorruptCheckpointError, match="no checkpoint in .* passes verification") as err:
        train(_gpt(), _batches(), steps=4, resume=run, **QUIET)
    assert "step-000004 failed" in str(err.value) and "step-000002 failed" in str(err.value)


def test_a_garbage_latest_file_falls_back_to_the_step_folders(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    for garbage in (b"\xff\xfe\x00 not text", b"../../etc", b"step-000099"):
        (run / "latest").write_bytes(garbage)
        assert load_checkpoint(run, _gpt())["step"] == 4


def test_a_damaged_safetensors_header_without_verification_is_still_one_clear_line(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    (run / "step-000004" / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(InvalidInputError, match="unreadable model.safetensors") as err:
        load_checkpoint(run / "step-000004", _gpt(), verify=False)
    assert "\n" not in str(err.value)


# ---- the resumed run must be the same run -------------------------------------------------------------------


@pytest.mark.parametrize(
    "model_overrides,options,field",
    [
        (dict(n_head=4), {}, "n_head"),  # the same tensor shapes: it used to load silently
        (dict(n_layer=2), {}, "n_layer"),
        (dict(dropout=0.2), {}, "model.dropout"),  # loads fine for inference, but changes the training run
        ({}, dict(steps=8), "steps"),
        ({}, dict(epochs=2, steps=None), "steps"),
        ({}, dict(lr=1e-2), "lr"),
        ({}, dict(schedule="linear"), "schedule"),
        ({}, dict(warmup=1), "warmup"),
        ({}, dict(grad_accum=2, steps=2), "grad_accum"),
        ({}, dict(clip_norm=None), "clip_norm"),
        ({}, dict(optimizer="sgd"), "optimizer"),
        ({}, dict(betas=(0.9, 0.99)), "betas"),
        ({}, dict(seed=4), "seed"),
    ],
)
def test_resume_refuses_another_run_naming_the_field(model_overrides, options, field, run_dir):
    options = {**QUIET, "steps": 4, **options}
    with pytest.raises(InvalidInputError, match=f"{field}=") as err:
        train(_gpt(**model_overrides), _batches(), resume=run_dir, **options)
    message = str(err.value)
    assert "\n" not in message and "step-000004" in message


def test_resumable_options_may_change(run_dir, tmp_path):
    history = train(
        _gpt(),
        _batches(),
        resume=run_dir,
        checkpoint_dir=tmp_path / "elsewhere",
        checkpoint_every=1,
        keep_last=5,
        val_batches=_batches(1),
        eval_every=1,
        callbacks=[Callback()],
        loss_fn=lambda model, batch: model(**batch).loss,
        **{**QUIET, "log_every": 1, "steps": 4},
    )
    assert history.step == [1, 2, 3, 4]


def test_load_checkpoint_refuses_a_model_config_that_changes_what_the_weights_mean(run_dir):
    with pytest.raises(InvalidInputError, match="trained with n_head=2 but the model has n_head=4"):
        load_checkpoint(run_dir, _gpt(n_head=4))
    load_checkpoint(run_dir, _gpt(dropout=0.3))  # dropout does not change what the weights mean


# ---- a NaN names a checkpoint that is really good -----------------------------------------------------------


def test_training_diverged_names_the_newest_checkpoint_that_verifies(tmp_path):
    class SpoilThenNaN(Callback):
        def on_checkpoint(self, trainer, path):
            if trainer.step == 4:
                _overwrite_bytes(path / "model.safetensors")  # the disk damages the newest checkpoint

        def on_step_end(self, trainer, step, logs):
            if step == 5:
                with torch.no_grad():
                    next(trainer.model.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingDivergedError) as err:
        train(
            _gpt(),
            _batches(),
            steps=8,
            checkpoint_dir=tmp_path,
            checkpoint_every=2,
            callbacks=[SpoilThenNaN()],
            **QUIET,
        )
    assert err.value.last_checkpoint == tmp_path / "step-000002"
    assert "the last good checkpoint is" in str(err.value) and "step-000002" in str(err.value)


def test_a_failed_save_is_never_named_as_the_last_good_checkpoint(tmp_path, monkeypatch):
    class FullDisk(Callback):
        def on_step_end(self, trainer, step, logs):
            if step == 3:

                def boom(*args, **kwargs):
                    raise OSError(28, "No space left on device")

                monkeypatch.setattr(ckpt, "write_durable", boom)

    trainer = Trainer(
        _gpt(), _batches(), steps=6, checkpoint_dir=tmp_path, checkpoint_every=2, callbacks=[FullDisk()], **QUIET
    )
    with pytest.raises(OSError, match="No space left"):
        trainer.fit()
    assert trainer.history.last_checkpoint == tmp_path / "step-000002"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["step-000002"]
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        assert load_checkpoint(tmp_path, _gpt())["step"] == 2
    assert isinstance(CorruptCheckpointError("x"), LabkitError)
