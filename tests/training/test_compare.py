"""compare_optimizers: each run is exactly the train() run it stands for; the comparison refuses what it cannot do."""

from __future__ import annotations

import pytest
import torch

from labkit.data import RandomBlockBatches
from labkit.errors import InvalidInputError
from labkit.models import GPT, GPTConfig
from labkit.training import DEFAULT_OPTIMIZERS, MomentRecorder, compare_optimizers, train

VOCAB = 23


def _model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig.preset("gpt-nano", vocab_size=VOCAB, block_size=16, n_layer=1))


def _batches() -> RandomBlockBatches:
    ids = torch.randint(0, VOCAB, (400,), generator=torch.Generator().manual_seed(3))
    return RandomBlockBatches(ids, 16, 4, seed=1)


def test_each_run_equals_train_with_its_options_and_the_model_is_untouched():
    model, batches = _model(), _batches()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    chosen = {"SGD + momentum": DEFAULT_OPTIMIZERS["SGD + momentum"], "AdamW": DEFAULT_OPTIMIZERS["AdamW"]}
    result = compare_optimizers(model, batches, chosen, steps=6, seed=4)
    assert list(result.runs) == list(chosen) and len(result) == 2
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), "the given model must not train"
    for name, options in chosen.items():
        reference = _model()
        history = train(reference, _batches(), steps=6, seed=4, progress=False, log_every=1, **options)
        run = result[name]
        assert run.history.loss == history.loss, name  # same initial weights, batches, seed: the same run
        for (k, a), b in zip(run.model.state_dict().items(), reference.state_dict().values()):
            assert torch.equal(a, b), (name, k)
        assert len(run.wall_s) == len(run.history.step) == 6
        assert all(b >= a for a, b in zip(run.wall_s, run.wall_s[1:])) and run.seconds > 0
    assert result["AdamW"].history.loss != result["SGD + momentum"].history.loss  # the optimizers really differ
    table = result.summary().splitlines()
    assert table[0].split()[0] == "optimizer" and [line.split("  ")[0].strip() for line in table[1:]] == list(chosen)
    frame = result.to_pandas()
    assert len(frame) == 12 and set(frame.optimizer) == set(chosen)


def test_labels_and_per_run_callbacks():
    recorder = MomentRecorder("blocks.0.ln_1.weight", steps=[1, 3])
    result = compare_optimizers(_model(), _batches(), ["Adam"], steps=3, callbacks={"Adam": [recorder]})
    assert [s.step for s in recorder.snapshots] == [1, 3]
    assert result["Adam"].callbacks == [recorder]
    assert result.histories["Adam"] is result["Adam"].history


@pytest.mark.parametrize(
    "optimizers, options, message",
    [
        (["Adagrad"], {}, "unknown optimizer label 'Adagrad'"),
        ("Adam", {}, "must be a dict or a list of labels"),
        ({}, {}, "no optimizers to compare"),
        ({"mine": {"lr": 0.1}}, {}, "run 'mine' names no optimizer"),
        (["Adam"], {"seed": 3, "checkpoint_dir": "x"}, "cannot be set per comparison run"),
        (["Adam"], {"callbacks": {"SGD": []}}, "callbacks for unknown runs"),
    ],
)
def test_bad_input_fails_before_training(optimizers, options, message):
    with pytest.raises(InvalidInputError, match=message):
        compare_optimizers(_model(), _batches(), optimizers, steps=2, **options)


def test_a_one_shot_iterator_is_refused_and_an_unknown_run_named():
    with pytest.raises(InvalidInputError, match="one-shot iterator"):
        compare_optimizers(_model(), iter([]), ["Adam"], steps=2)
    result = compare_optimizers(_model(), _batches(), ["Adam"], steps=1)
    with pytest.raises(InvalidInputError, match="no run named 'SGD'; the runs are Adam"):
        result["SGD"]
