"""make_optimizer / make_schedule: parameter groups, names, and lr curves against torch's schedulers and closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from labkit.errors import InvalidInputError, UnknownNameError
from labkit.models.gpt import GPT, GPTConfig
from labkit.training.optim import lr_multiplier, make_optimizer, make_schedule


def _lrs(scheduler, steps):
    out = []
    for _ in range(steps):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def _opt(lr=0.5):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def test_adamw_decays_only_matrices_and_counts_tied_weights_once():
    model = GPT(GPTConfig.preset("gpt-nano", vocab_size=40, block_size=16))
    opt = make_optimizer(model, "adamw", lr=1e-3, weight_decay=0.1)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len({id(p) for p in model.parameters()})
    assert id(model.wte.weight) in {id(p) for p in decay["params"]}  # embeddings decay, as in nanoGPT
    assert isinstance(opt, torch.optim.AdamW) and not opt.defaults.get("fused")  # CPU: no fused kernels


def test_sgd_momentum_class_and_instance_pass_through():
    model = torch.nn.Linear(3, 2)
    sgd = make_optimizer(model, "sgd", lr=0.1, momentum=0.8)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.8
    rms = make_optimizer(model, torch.optim.RMSprop, lr=0.01, weight_decay=0.2)
    assert isinstance(rms, torch.optim.RMSprop) and [g["weight_decay"] for g in rms.param_groups] == [0.2, 0.0]
    assert make_optimizer(model, sgd) is sgd


def test_unknown_optimizer_and_schedule_names_suggest_close_matches():
    with pytest.raises(UnknownNameError, match="did you mean 'adamw'"):
        make_optimizer(torch.nn.Linear(2, 2), "adamw2")
    with pytest.raises(UnknownNameError, match="did you mean 'cosine'"):
        make_schedule(_opt(), "cosin", total_steps=10)
    with pytest.raises(InvalidInputError, match="total_steps"):
        make_schedule(_opt(), "linear")
    with pytest.raises(InvalidInputError, match="lr must be"):
        make_optimizer(torch.nn.Linear(2, 2), "sgd", lr=-1.0)


@pytest.mark.parametrize("total,ratio", [(20, 0.1), (37, 0.0)])
def test_cosine_matches_torch_cosine_annealing(total, ratio):
    ours = _lrs(make_schedule(_opt(), "cosine", total_steps=total, min_lr_ratio=ratio), total + 1)
    ref_sched = torch.optim.lr_scheduler.CosineAnnealingLR(_opt(), T_max=total, eta_min=0.5 * ratio)
    ref = _lrs(ref_sched, total + 1)
    assert ours == pytest.approx(ref, rel=1e-6, abs=1e-9)


def test_linear_matches_torch_linear_lr():
    ours = _lrs(make_schedule(_opt(), "linear", total_steps=25, min_lr_ratio=0.2), 30)
    ref = _lrs(torch.optim.lr_scheduler.LinearLR(_opt(), start_factor=1.0, end_factor=0.2, total_iters=25), 30)
    assert ours == pytest.approx(ref, rel=1e-6)


def test_warmup_then_cosine_closed_form_as_in_nanogpt():
    lr, warmup, total, min_lr = 1e-3, 10, 50, 1e-4
    ours = _lrs(make_schedule(_opt(lr), "cosine", total_steps=total, warmup=warmup, min_lr_ratio=min_lr / lr), total)
    expected = []
    for it in range(total):  # nanoGPT's get_lr with lr_decay_iters = total
        if it < warmup:
            expected.append(lr * (it + 1) / (warmup + 1))
        else:
            ratio = (it - warmup) / (total - warmup)
            expected.append(min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (lr - min_lr))
    assert ours == pytest.approx(expected, rel=1e-9)


def test_constant_and_onecycle_shapes():
    assert _lrs(make_schedule(_opt(), "constant", warmup=3), 6) == pytest.approx(
        [0.5 * 1 / 4, 0.5 * 2 / 4, 0.5 * 3 / 4, 0.5, 0.5, 0.5]
    )
    total = 100
    lrs = _lrs(make_schedule(_opt(2.0), "onecycle", total_steps=total), total + 1)
    assert lrs[0] == pytest.approx(2.0 / 25)
    assert max(lrs) == pytest.approx(2.0) and lrs.index(max(lrs)) == 30  # 30% warmup by default, like OneCycleLR
    assert lrs[-1] == pytest.approx(2.0 / 25 / 1e4)
    assert lrs[65] == pytest.approx(2.0 * lr_multiplier("onecycle", 65, total, 30))


def test_fraction_warmup_and_state_dict_is_plain():
    sched = make_schedule(_opt(), "linear", total_steps=100, warmup=0.1)
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(0.5 / 11)
    state = sched.state_dict()
    import json

    json.dumps(state)  # JSON-able: checkpoints store it without pickle
