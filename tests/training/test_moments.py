"""Optimizer moments: the hand-written Adam step and the recorder's snapshots against torch.optim's own state."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from labkit.errors import InvalidInputError, UnknownNameError
from labkit.training import MomentRecorder, hand_adam_step, train


def _layer(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(5, 4)


def _steps(layer: nn.Module, optimizer: torch.optim.Optimizer, n: int, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        optimizer.zero_grad()
        x = torch.randn(8, 5, generator=g)
        layer(x).sin().pow(2).sum().backward()
        optimizer.step()


@pytest.mark.parametrize(
    "cls, weight_decay, decoupled",
    [(torch.optim.Adam, 0.0, False), (torch.optim.Adam, 0.05, False), (torch.optim.AdamW, 0.1, True)],
)
def test_hand_written_adam_steps_equal_torch(cls, weight_decay, decoupled):
    layer = _layer()
    w = layer.weight.detach().clone()
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    opt = cls(layer.parameters(), lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(3)
    for t in range(1, 6):
        opt.zero_grad()
        layer(torch.randn(8, 5, generator=g)).sin().pow(2).sum().backward()
        grad = layer.weight.grad.detach().clone()
        opt.step()
        w, m, v = hand_adam_step(w, grad, m, v, t, 0.01, (0.8, 0.95), 1e-6, weight_decay, decoupled)
        torch.testing.assert_close(w, layer.weight.detach(), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(m, opt.state[layer.weight]["exp_avg"], rtol=1e-6, atol=1e-8)
        torch.testing.assert_close(v, opt.state[layer.weight]["exp_avg_sq"], rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("cls, kind", [(torch.optim.Adam, "adam"), (torch.optim.AdamW, "adamw")])
def test_snapshots_hold_torchs_state_and_the_rule_predicts_the_change(cls, kind):
    layer = _layer()
    opt = cls(layer.parameters(), lr=0.02, weight_decay=0.1)
    rec = MomentRecorder("weight", steps=[1, 3]).attach(opt, layer)
    _steps(layer, opt, 3)
    assert [s.step for s in rec.snapshots] == [1, 3] and all(s.kind == kind for s in rec.snapshots)
    last, state = rec.snapshots[-1], opt.state[layer.weight]
    assert torch.equal(last.exp_avg, state["exp_avg"]) and torch.equal(last.exp_avg_sq, state["exp_avg_sq"])
    assert torch.equal(last.new_weight, layer.weight.detach())
    for s in rec.snapshots:  # the update rule written out reproduces the change torch made
        torch.testing.assert_close(s.predicted_update, s.update, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(s.m_hat, s.exp_avg / (1 - 0.9**s.step))
    first = rec.snapshots[0]  # after one step m = (1 - b1) g' and v = (1 - b2) g'^2, g' with Adam's L2 term
    g = first.grad + (0.1 * first.weight if kind == "adam" else 0)
    torch.testing.assert_close(first.exp_avg, 0.1 * g)
    torch.testing.assert_close(first.exp_avg_sq, 0.001 * g * g)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_snapshots_match_the_momentum_rule(momentum):
    layer = _layer()
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=momentum, weight_decay=0.01)
    rec = MomentRecorder(layer.bias).attach(opt, layer)
    _steps(layer, opt, 4)
    assert [s.step for s in rec.snapshots] == [1, 2, 3, 4] and rec.snapshots[0].name == "bias"
    if momentum:
        assert torch.equal(rec.snapshots[-1].exp_avg, opt.state[layer.bias]["momentum_buffer"])
    else:
        assert rec.snapshots[-1].exp_avg is None
    for s in rec.snapshots:
        torch.testing.assert_close(s.predicted_update, s.update, rtol=1e-5, atol=1e-8)
    with pytest.raises(InvalidInputError, match="Adam and AdamW"):
        _ = rec.snapshots[0].v_hat


def test_recorder_in_train_sees_the_clipped_gradient_and_step_numbers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 1))
    batches = [{"x": torch.randn(4, 6), "y": torch.randn(4, 1)} for _ in range(3)]

    def loss_fn(m, b):
        return (m(b["x"]) - b["y"]).pow(2).mean() * 100  # large gradients: clipping is active

    rec = MomentRecorder("0.weight", steps=[2, 5])
    train(model, batches, steps=6, loss_fn=loss_fn, clip_norm=0.1, progress=False, callbacks=[rec], lr=0.01)
    assert [s.step for s in rec.snapshots] == [2, 5]
    for s in rec.snapshots:
        torch.testing.assert_close(s.predicted_update, s.update, rtol=1e-4, atol=1e-7)
        assert float(s.grad.norm()) <= 0.1 + 1e-6  # the gradient Adam used, after clipping
    assert not rec._handles  # detached at the end of the run


def test_recorder_refuses_what_it_cannot_describe():
    layer = _layer()
    with pytest.raises(UnknownNameError, match="weight"):
        MomentRecorder("wieght").attach(torch.optim.Adam(layer.parameters()), layer)
    with pytest.raises(InvalidInputError, match="amsgrad"):
        MomentRecorder("weight").attach(torch.optim.Adam(layer.parameters(), amsgrad=True), layer)
    with pytest.raises(InvalidInputError, match="RMSprop"):
        MomentRecorder("weight").attach(torch.optim.RMSprop(layer.parameters()), layer)
    with pytest.raises(InvalidInputError, match="nesterov"):
        MomentRecorder("weight").attach(torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9, nesterov=True), layer)
    with pytest.raises(InvalidInputError, match="steps"):
        MomentRecorder("weight", steps=[])
    with pytest.raises(InvalidInputError, match="steps entry"):
        MomentRecorder("weight", steps=[0])
    with pytest.raises(InvalidInputError, match="not optimized"):
        MomentRecorder(nn.Linear(2, 2).weight).attach(torch.optim.Adam(layer.parameters()))
