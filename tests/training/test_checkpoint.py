"""Checkpoints: safetensors + JSON round trips, atomic writes, pruning, key normalisation, mismatch errors."""

from __future__ import annotations

import json
import os

import pytest
import torch

from labkit.errors import InvalidInputError, MissingSourceError
from labkit.models.gpt import GPT, GPTConfig
from labkit.models.lstm import LSTMLM, LSTMConfig
from labkit.training import checkpoint as ckpt
from labkit.training.checkpoint import load_checkpoint, save_checkpoint
from labkit.training.history import History
from labkit.training.optim import make_optimizer, make_schedule

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gpt(seed=0, vocab=40):
    torch.manual_seed(seed)
    return GPT(GPTConfig.preset("gpt-nano", vocab_size=vocab, block_size=16, n_layer=2))


def _trained(seed=0):
    model = _gpt(seed)
    opt = make_optimizer(model, "adamw", lr=1e-2)
    sched = make_schedule(opt, "cosine", total_steps=10, warmup=2)
    x = torch.randint(0, 40, (2, 16))
    for _ in range(3):
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    return model, opt, sched


def test_round_trip_restores_weights_optimizer_and_schedule(tmp_path):
    model, opt, sched = _trained()
    hist = History()
    hist.append_step(1, 2.5, 1e-3, 0.7)
    path = save_checkpoint(tmp_path, model, opt, sched, step=3, epoch=1, data_state={"index": 7}, history=hist)
    assert path == tmp_path / "step-000003" and (tmp_path / "latest").read_text().strip() == "step-000003"
    assert sorted(os.listdir(path)) == ["manifest.json", "meta.json", "model.safetensors", "optimizer.safetensors"]

    model2, opt2, sched2 = _trained(seed=1)
    meta = load_checkpoint(tmp_path, model2, opt2, sched2)  # the run folder resolves to its latest
    assert meta["step"] == 3 and meta["epoch"] == 1 and meta["data"] == {"index": 7}
    assert History.from_dict(meta["history"]).loss == [2.5]
    for (k, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert torch.equal(a, b), k
    assert model2.lm_head.weight is model2.wte.weight  # tying survives loading
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for i in s1["state"]:
        for name, value in s1["state"][i].items():
            assert torch.equal(value, s2["state"][i][name])
    assert sched.state_dict() == sched2.state_dict()


def test_keys_do_not_depend_on_compile_or_ddp_wrappers(tmp_path):
    model = _gpt()
    compiled = torch.compile(model)  # wrapping only; nothing is compiled until it is called
    assert any(k.startswith("_orig_mod.") for k in compiled.state_dict())
    save_checkpoint(tmp_path / "a", compiled, step=1)
    save_checkpoint(tmp_path / "b", model, step=1)
    from safetensors import safe_open

    keys = []
    for run in ("a", "b"):
        with safe_open(os.fspath(tmp_path / run / "step-000001" / "model.safetensors"), "pt") as fh:
            keys.append(sorted(fh.keys()))
    assert keys[0] == keys[1] and not any("_orig_mod" in k or k.startswith("module.") for k in keys[0])
    other = _gpt(seed=3)
    load_checkpoint(tmp_path / "a", torch.compile(other))
    assert torch.equal(other.wte.weight, model.wte.weight)


def test_crash_while_writing_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model, opt, sched = _trained()
    first = save_checkpoint(tmp_path, model, opt, sched, step=5)
    before = {p: p.read_bytes() for p in first.iterdir()}

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "write_durable", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, model, opt, sched, step=6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-000005"]  # no partial folder left
    assert (tmp_path / "latest").read_text().strip() == "step-000005"
    assert {p: p.read_bytes() for p in first.iterdir()} == before
    monkeypatch.undo()
    assert load_checkpoint(tmp_path, _gpt(seed=2))["step"] == 5


def test_keep_last_prunes_oldest_and_latest_points_to_newest(tmp_path):
    model = _gpt()
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, model, step=step, keep_last=2)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["step-000003", "step-000004"]
    assert ckpt.resolve_checkpoint(tmp_path).name == "step-000004"
    save_checkpoint(tmp_path, model, step=4, keep_last=2)  # saving the same step again replaces it in place
    assert ckpt.resolve_checkpoint(tmp_path).name == "step-000004"


def test_rng_states_round_trip(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    save_checkpoint(tmp_path, _gpt(), step=1)
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.rand(10), random.random(), np.random.rand(4)  # move every generator on
    load_checkpoint(tmp_path, rng=True)
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(expected[0], got[0]) and expected[1:] == got[1:]


def test_other_architecture_or_vocabulary_is_refused_in_one_line(tmp_path):
    save_checkpoint(tmp_path, _gpt(vocab=40), step=1)
    with pytest.raises(InvalidInputError, match=r"holds a GPT \('gpt'\) model but got a LSTMLM \('lstm'\)") as err:
        load_checkpoint(tmp_path, LSTMLM(LSTMConfig.preset("lstm-tiny", vocab_size=40)))
    assert "\n" not in str(err.value)
    target = _gpt(vocab=50)
    before = target.wte.weight.clone()
    with pytest.raises(InvalidInputError, match="vocab_size=40 but the model has vocab_size=50"):
        load_checkpoint(tmp_path, target)
    assert torch.equal(target.wte.weight, before)  # nothing was overwritten
    with pytest.raises(InvalidInputError, match="trained with n_layer=2 but the model has n_layer=3"):
        load_checkpoint(tmp_path, GPT(GPTConfig.preset("gpt-nano", vocab_size=40, block_size=16, n_layer=3)))


def test_missing_checkpoint_and_no_pickle_anywhere(tmp_path):
    with pytest.raises(MissingSourceError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing-here")
    model, opt, sched = _trained()
    path = save_checkpoint(tmp_path, model, opt, sched, step=1)
    json.loads((path / "meta.json").read_text())
    for name in ("model.safetensors", "optimizer.safetensors"):
        header_len = int.from_bytes(
            (path / name).read_bytes()[:8], "little"
        )  # safetensors: 8-byte length + JSON header
        json.loads((path / name).read_bytes()[8 : 8 + header_len])
    source = open(ckpt.__file__, encoding="utf-8").read()
    assert "torch.load" not in source and "import pickle" not in source
