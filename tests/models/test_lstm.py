"""LSTMLM: parity with a plain torch LSTM, stateful stepping == full sequence, hooks, training sanity, bad input."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from labkit.errors import InvalidInputError, UnknownNameError
from labkit.models import LSTMLM, LSTMConfig
from labkit.models.outputs import ModelOutput


def tiny(**overrides) -> LSTMLM:
    torch.manual_seed(0)
    return LSTMLM(LSTMConfig.preset("lstm-tiny", vocab_size=17, n_layer=2, **overrides)).eval()


def ids(batch: int = 3, seq: int = 11, vocab: int = 17, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(seed))


def test_matches_plain_torch_lstm_with_same_weights():
    model = tiny()
    cfg = model.config
    emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
    lstm = nn.LSTM(cfg.n_embd, cfg.hidden_size, cfg.n_layer, batch_first=True)
    head = nn.Linear(cfg.hidden_size, cfg.vocab_size)
    emb.weight.data.copy_(model.embed.weight)
    lstm.load_state_dict(model.lstm.state_dict())
    head.load_state_dict(model.lm_head.state_dict())
    x = ids()
    expected = head(lstm(emb(x))[0])
    out = model(x, labels=x)
    assert isinstance(out, ModelOutput)
    torch.testing.assert_close(out.logits, expected, atol=1e-6, rtol=0)
    ref_loss = F.cross_entropy(expected[:, :-1].reshape(-1, cfg.vocab_size), x[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, ref_loss)


def test_step_by_step_with_state_equals_full_sequence():
    model = tiny()
    x = ids(batch=2, seq=9)
    full = model(x).logits
    state, steps = None, []
    for t in range(x.size(1)):
        out = model(x[:, t : t + 1], past_key_values=state, use_cache=True)
        state = out.past_key_values
        steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-6, rtol=0)
    # A prefix in one call, then one token, also continues exactly.
    prefix = model(x[:, :5], use_cache=True)
    rest = model(x[:, 5:], past_key_values=prefix.past_key_values, use_cache=True)
    torch.testing.assert_close(torch.cat([prefix.logits, rest.logits], 1), full, atol=1e-6, rtol=0)
    assert model(x).past_key_values is None


def test_labels_ignore_minus_100_and_right_padding_is_accepted():
    model = tiny()
    x = ids(batch=2, seq=8)
    labels = x.clone()
    labels[1, 5:] = -100
    mask = torch.ones_like(x)
    mask[1, 5:] = 0
    out = model(x, labels=labels, attention_mask=mask)
    logits = model(x).logits
    keep = labels[:, 1:] != -100
    ref = F.cross_entropy(logits[:, :-1][keep], labels[:, 1:][keep])
    torch.testing.assert_close(out.loss, ref)


def test_tied_weights_share_one_matrix():
    model = LSTMLM(LSTMConfig.preset("lstm-tiny", vocab_size=17, n_embd=64, hidden_size=64, tie_weights=True))
    assert model.lm_head.weight is model.embed.weight
    untied = LSTMLM(LSTMConfig.preset("lstm-tiny", vocab_size=17, n_embd=64, hidden_size=64))
    n = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in untied.parameters()) - n == 17 * 64


def test_hooks_expose_embeddings_and_lstm_outputs():
    model = tiny()
    x = ids()
    assert {"hook_embed", "hook_lstm_out"} <= set(model.hook_names())
    out, cache = model.run_with_cache(x)
    torch.testing.assert_close(cache["hook_embed"], model.embed(x))
    assert cache["hook_lstm_out"].shape == (3, 11, model.config.hidden_size)
    # Zeroing the LSTM output leaves only the output bias in the logits.
    zeroed = model.run_with_hooks(x, fwd_hooks=[("hook_lstm_out", lambda t, hook: torch.zeros_like(t))])
    torch.testing.assert_close(zeroed.logits, model.lm_head.bias.expand_as(zeroed.logits))


def test_loss_decreases_on_a_repeating_sequence():
    torch.manual_seed(0)
    model = LSTMLM(LSTMConfig.preset("lstm-tiny", vocab_size=8))
    x = torch.arange(8).repeat(4, 3)  # [4, 24] periodic text: perfectly predictable
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = model(x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_presets_and_config_round_trip():
    names = LSTMConfig.presets()
    assert {"lstm-char", "lstm-tiny"} <= set(names)
    for name in names:
        cfg = LSTMConfig.preset(name)
        assert cfg.arch == "lstm"
        assert LSTMConfig(**json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg
    assert LSTMConfig.preset("lstm-char", vocab_size=100).vocab_size == 100


def test_bad_inputs_raise_one_clear_error():
    model = tiny()
    with pytest.raises(UnknownNameError, match="lstm-char"):
        LSTMConfig.preset("lstm-chr")
    with pytest.raises(UnknownNameError, match="hidden_size"):
        LSTMConfig.preset("lstm-char", hiden_size=3)
    with pytest.raises(InvalidInputError, match="token id 17"):
        model(torch.tensor([[1, 17]]))
    with pytest.raises(InvalidInputError, match="token id -1"):
        model(torch.tensor([[1, -1]]))
    with pytest.raises(InvalidInputError, match="right padding"):
        model(torch.tensor([[1, 2, 3]]), attention_mask=torch.tensor([[0, 1, 1]]))
    with pytest.raises(InvalidInputError, match="batch"):
        model(torch.tensor([1, 2, 3]))
    with pytest.raises(InvalidInputError, match="tie_weights"):
        LSTMConfig(n_embd=10, hidden_size=20, tie_weights=True)
    with pytest.raises(InvalidInputError, match="past_key_values"):
        model(ids(batch=2), past_key_values=model(ids(batch=3), use_cache=True).past_key_values)
    for msg in ("token id 17",):
        try:
            model(torch.tensor([[17]]))
        except InvalidInputError as err:
            assert "\n" not in str(err) and msg in str(err)


def test_generation_style_masks_covering_past_tokens_are_accepted():
    model = tiny()
    x = ids(batch=2, seq=6)
    first = model(x[:, :5], attention_mask=torch.ones(2, 5), use_cache=True)
    step = model(x[:, 5:], attention_mask=torch.ones(2, 6), past_key_values=first.past_key_values, use_cache=True)
    torch.testing.assert_close(step.logits[:, 0], model(x).logits[:, 5], atol=1e-6, rtol=0)
    with pytest.raises(InvalidInputError, match="attention_mask"):
        model(x, attention_mask=torch.ones(2, 3))


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, 11), max_size=4, unique=True))
def test_any_split_into_chunks_continues_exactly(cuts):
    model = tiny()
    x = ids(batch=2, seq=12, seed=7)
    bounds = [0, *sorted(cuts), 12]
    state, parts = None, []
    for lo, hi in zip(bounds, bounds[1:]):
        out = model(x[:, lo:hi], past_key_values=state, use_cache=True)
        state = out.past_key_values
        parts.append(out.logits)
    torch.testing.assert_close(torch.cat(parts, 1), model(x).logits, atol=1e-6, rtol=0)
