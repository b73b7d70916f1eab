"""lr_find: the sweep equals a by-hand loop, the model comes back bit for bit, the suggestion sits before the blow-up."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labkit.errors import InvalidInputError, UnknownNameError
from labkit.models import GPT, GPTConfig
from labkit.training.lr_finder import LRFinderResult, lr_find


def _regression(n_batches: int = 4):
    torch.manual_seed(0)
    w = torch.randn(6, 1)
    batches = []
    for _ in range(n_batches):
        # unnormalised inputs so a large lr really diverges; 128 rows so batches differ little and the curve is clean
        x = torch.randn(128, 6) * 3
        batches.append((x, x @ w + 0.1 * torch.randn(128, 1)))
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    return model, batches


def _mse(model, batch):
    x, y = batch
    return F.mse_loss(model(x), y)


def test_sweep_equals_a_by_hand_loop_and_restores_everything():
    model, batches = _regression()
    model[2].bias.requires_grad_(False)  # frozen parameters stay frozen and untouched
    model[0].weight.grad = torch.full_like(model[0].weight, 0.5)  # a pending gradient is not lost
    model.eval()
    before = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()
    start, end, steps = 1e-4, 50.0, 40
    result = lr_find(
        model,
        batches,
        start_lr=start,
        end_lr=end,
        num_steps=steps,
        smooth=0.9,
        optimizer=lambda params: torch.optim.SGD(params, lr=0.0),
        loss_fn=_mse,
    )

    assert isinstance(result, LRFinderResult)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(model[0].weight.grad, torch.full_like(model[0].weight, 0.5)) and model[2].weight.grad is None
    assert not model[2].bias.requires_grad and model[0].weight.requires_grad and not model.training
    assert torch.equal(torch.get_rng_state(), rng)

    # the same sweep by hand: exponential schedule, batches cycled, plain SGD
    n = len(result.lrs)
    assert 2 <= n <= steps and len(result.losses) == len(result.smoothed) == n
    expected_lrs = np.geomspace(start, end, steps)[:n]
    np.testing.assert_allclose(result.lrs, expected_lrs, rtol=1e-10)
    twin = copy.deepcopy(model)
    twin[0].weight.grad = None
    opt = torch.optim.SGD([p for p in twin.parameters() if p.requires_grad], lr=0.0)
    by_hand = []
    for i, lr in enumerate(expected_lrs):
        loss = _mse(twin, batches[i % len(batches)])
        by_hand.append(loss.item())
        opt.param_groups[0]["lr"] = float(lr)
        opt.zero_grad()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(result.losses, by_hand, rtol=1e-5)
    # smoothed = bias-corrected EMA of the raw losses
    avg, smoothed = 0.0, []
    for i, v in enumerate(result.losses):
        avg = 0.9 * avg + 0.1 * v
        smoothed.append(avg / (1 - 0.9 ** (i + 1)))
    np.testing.assert_allclose(result.smoothed, smoothed, rtol=1e-10)

    # lr up to 50 on unnormalised regression blows up: stopped early, suggestion before the blow-up
    assert result.diverged and n < steps
    assert result.smoothed[-1] > 4 * min(result.smoothed[:-1])
    assert start <= result.suggestion < result.lrs[-1]
    at = result.lrs.index(result.suggestion)
    assert min(result.smoothed[at:]) < 0.9 * result.smoothed[0]  # from the suggestion on, training makes progress


def test_tiny_gpt_adamw_with_a_one_shot_iterator():
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=32, block_size=16, n_layer=1, n_head=2, n_embd=16, dropout=0.1))
    ids = [torch.randint(0, 32, (4, 12)) for _ in range(3)]
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lr_find(model, iter({"input_ids": x, "labels": x} for x in ids), start_lr=1e-5, end_lr=10.0, num_steps=30)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and all(p.grad is None for p in model.parameters())
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) <= 30
    assert result.losses[0] == pytest.approx(np.log(32), rel=0.1)  # a fresh model starts near uniform
    assert 1e-5 <= result.suggestion <= 10.0
    if result.diverged:
        assert result.suggestion < result.lrs[-1]
    frame = result.to_pandas()
    assert list(frame.columns) == ["lr", "loss", "smoothed_loss"] and len(frame) == len(result.lrs)
    fig = result.plot()
    assert fig.layout.xaxis.type == "log"
    assert any(list(t.x) == [result.suggestion] for t in fig.data)


def test_weights_restored_when_the_sweep_fails_midway():
    model, batches = _regression()
    before = copy.deepcopy(model.state_dict())
    calls = []

    def failing(m, batch):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("boom")
        return _mse(m, batch)

    with pytest.raises(RuntimeError, match="boom"):
        lr_find(model, batches, num_steps=10, loss_fn=failing)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_inputs_raise_one_clear_error():
    model, batches = _regression()
    with pytest.raises(InvalidInputError, match="end_lr"):
        lr_find(model, batches, start_lr=1.0, end_lr=1.0, loss_fn=_mse)
    with pytest.raises(InvalidInputError, match="num_steps"):
        lr_find(model, batches, num_steps=1, loss_fn=_mse)
    with pytest.raises(UnknownNameError, match="adamw"):
        lr_find(model, batches, optimizer="adam", loss_fn=_mse)
    with pytest.raises(InvalidInputError, match="empty"):
        lr_find(model, [], loss_fn=_mse)
    with pytest.raises(InvalidInputError, match="loss_fn"):
        lr_find(model, batches)  # tuples are not dicts: the message says to pass loss_fn
    with pytest.raises(InvalidInputError, match="smooth"):
        lr_find(model, batches, smooth=1.0, loss_fn=_mse)


def test_sweep_runs_with_gradients_switched_off_by_the_caller():
    model, batches = _regression()
    with torch.no_grad():
        result = lr_find(model, batches, loss_fn=_mse, num_steps=12)
        assert not torch.is_grad_enabled()
    assert len(result.losses) == 12 and all(np.isfinite(result.losses[:5]))
