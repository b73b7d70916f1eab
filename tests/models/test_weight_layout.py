"""relayout_for_decoding: tall CPU weights stored column-major, with values, shapes, ties and training unchanged."""

from __future__ import annotations

import copy

import pytest
import torch

from labkit.generation import generate
from labkit.models import GPT, LSTMLM, GPTConfig, LSTMConfig, relayout_for_decoding, relayout_for_training
from labkit.models.weight_layout import is_column_major
from labkit.training import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_gpt(**overrides) -> GPT:
    torch.manual_seed(0)
    cfg = dict(vocab_size=97, block_size=32, n_layer=2, n_head=2, n_embd=16, initializer_range=0.2)
    cfg.update(overrides)
    return GPT(GPTConfig(**cfg))


def test_moves_tall_and_square_weights_only_and_keeps_values_shapes_and_ties():
    model = small_gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = {n: p for n, p in model.named_parameters()}
    moved = relayout_for_decoding(model)
    # per block: q, k, v, out_proj (16x16) and fc_in (64x16); plus the tied LM head / embedding, counted once
    assert moved == 2 * 5 + 1
    assert model.lm_head.weight is model.wte.weight and is_column_major(model.wte.weight)
    block = model.blocks[0]
    assert all(is_column_major(m.weight) for m in (block.attn.q_proj, block.attn.out_proj, block.mlp.fc_in))
    assert block.mlp.fc_out.weight.is_contiguous()  # [16, 64]: wide input, faster as it is
    assert {n: p for n, p in model.named_parameters()} == params  # the same Parameter objects
    for name, value in model.state_dict().items():
        assert value.shape == before[name].shape and torch.equal(value, before[name]), name
    assert relayout_for_decoding(model) == 0  # idempotent


def test_same_tokens_and_logits_within_rounding_after_relayout():
    model = small_gpt().eval()
    other = copy.deepcopy(model)
    assert relayout_for_decoding(other) > 0
    ids = torch.randint(0, 97, (3, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(other(ids).logits, model(ids).logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(other(ids[:, :1]).logits, model(ids[:, :1]).logits, atol=1e-5, rtol=1e-5)


def test_train_restores_the_standard_layout_so_runs_match_bit_for_bit():
    model = small_gpt()
    other = copy.deepcopy(model)
    with torch.inference_mode():  # called from inside inference mode, the weights must still be trainable afterwards
        relayout_for_decoding(other)
    g = torch.Generator().manual_seed(2)
    batches = [{"input_ids": (ids := torch.randint(0, 97, (4, 16), generator=g)), "labels": ids} for _ in range(3)]
    kwargs = dict(steps=6, lr=3e-3, log_every=1, progress=False, precision="fp32", device="cpu", seed=0)
    h1 = train(model, batches, **kwargs)
    h2 = train(other, batches, **kwargs)
    assert h2.loss == h1.loss
    for (name, a), b in zip(model.named_parameters(), other.parameters()):
        assert b.is_contiguous() and torch.equal(a, b), name
    assert relayout_for_training(other) == 0


def test_relayout_for_training_undoes_relayout_for_decoding():
    model = small_gpt()
    moved = relayout_for_decoding(model)
    assert relayout_for_training(model) == moved
    assert all(p.is_contiguous() for p in model.parameters())


@pytest.mark.parametrize("tie", [True, False])
def test_save_and_load_after_relayout(tmp_path, tie):
    model = small_gpt(tie_embeddings=tie)
    relayout_for_decoding(model)
    model.save_pretrained(tmp_path / "m")
    loaded = GPT.from_pretrained(tmp_path / "m")
    assert (loaded.lm_head.weight is loaded.wte.weight) == tie
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), name


def test_load_accepts_the_shared_matrix_under_the_lm_head_name(tmp_path):
    from safetensors.torch import save_file

    model = small_gpt()
    model.save_pretrained(tmp_path / "m")
    tensors = {k: v.contiguous() for k, v in model.state_dict().items() if k != "wte.weight"}
    save_file(tensors, tmp_path / "m" / "model.safetensors")  # how earlier versions stored the tied pair
    loaded = GPT.from_pretrained(tmp_path / "m")
    assert torch.equal(loaded.wte.weight, model.wte.weight) and loaded.lm_head.weight is loaded.wte.weight


def test_load_names_missing_weights(tmp_path):
    from safetensors.torch import save_file

    from labkit.errors import InvalidInputError

    model = small_gpt()
    model.save_pretrained(tmp_path / "m")
    tensors = {k: v.contiguous() for k, v in model.state_dict().items() if k not in ("lm_head.weight", "ln_f.bias")}
    save_file(tensors, tmp_path / "m" / "model.safetensors")
    with pytest.raises(InvalidInputError, match="missing \\['ln_f.bias'\\]"):
        GPT.from_pretrained(tmp_path / "m")


def test_generate_relayouts_eval_models_and_lstm_heads():
    model = small_gpt().eval()
    assert model.lm_head.weight.is_contiguous()
    generate(model, torch.tensor([[1, 2, 3]]), max_new_tokens=3)
    assert is_column_major(model.lm_head.weight)
    torch.manual_seed(0)
    lstm = LSTMLM(LSTMConfig(vocab_size=50, n_embd=8, hidden_size=16, n_layer=1)).eval()
    generate(lstm, torch.tensor([[1, 2]]), max_new_tokens=2)
    assert is_column_major(lstm.lm_head.weight)


def test_generate_leaves_a_model_in_training_mode_as_it_is():
    model = small_gpt().train()  # e.g. a dashboard sampling between training steps
    generate(model, torch.tensor([[1, 2, 3]]), max_new_tokens=3)
    assert model.training and all(p.is_contiguous() for p in model.parameters())


def test_generate_leaves_layout_alone_under_torch_distributed(monkeypatch):
    model = small_gpt().eval()
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    generate(model, torch.tensor([[1, 2, 3]]), max_new_tokens=2)
    assert model.lm_head.weight.is_contiguous()


def test_weights_off_the_cpu_are_left_alone():
    with torch.device("meta"):
        model = GPT(GPTConfig(vocab_size=97, block_size=32, n_layer=1, n_head=2, n_embd=16))
    assert relayout_for_decoding(model) == 0


def test_load_without_weights_file_says_which_folder(tmp_path):
    from labkit.errors import MissingSourceError

    small_gpt().save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(MissingSourceError, match="no model.safetensors in"):
        GPT.from_pretrained(tmp_path / "m")
