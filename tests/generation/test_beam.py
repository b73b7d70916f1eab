"""Beam search: equals transformers' beam search on twin weights; exact on a tiny Seq2Seq against exhaustive search."""

from __future__ import annotations

import itertools

import pytest
import torch

from labkit.errors import InvalidInputError
from labkit.generation import beam_search, generate
from labkit.models import GPT, LSTMLM, GPTConfig, LSTMConfig, Seq2Seq, Seq2SeqConfig

transformers = pytest.importorskip("transformers")

V = 61


def tiny_gpt(**overrides) -> GPT:
    torch.manual_seed(0)
    cfg = dict(vocab_size=V, block_size=48, n_layer=2, n_head=4, n_embd=32, initializer_range=0.3, tie_embeddings=False)
    cfg.update(overrides)
    return GPT(GPTConfig(**cfg)).eval()


def twin(model: GPT):
    hf = model.to_hf()
    hf.generation_config.eos_token_id = None
    hf.generation_config.bos_token_id = None
    hf.generation_config.pad_token_id = 1
    return hf


def hf_beam(hf, ids, mask=None, **kwargs):
    with torch.inference_mode():
        return hf.generate(
            ids,
            attention_mask=torch.ones_like(ids) if mask is None else mask,
            do_sample=False,
            pad_token_id=1,
            **kwargs,
        )


@pytest.fixture(scope="module")
def gpt():
    model = tiny_gpt()
    return model, twin(model)


PROMPT = torch.tensor([[5, 17, 33, 2, 48, 9]])


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(length_penalty=0.0, num_return_sequences=3),
        dict(length_penalty=2.0, early_stopping=True),
        dict(length_penalty=-0.5, early_stopping="never", num_return_sequences=2),
    ],
)
@pytest.mark.parametrize("with_eos", [False, True])
def test_beam_search_equals_transformers(gpt, options, with_eos):
    model, hf = gpt

    def run(eos):
        return beam_search(
            model,
            PROMPT,
            num_beams=4,
            max_new_tokens=8,
            eos_token_id=eos,
            pad_token_id=1,
            **options,
        )

    eos = None
    if with_eos:  # a token of the eos-free output that, as eos, ends a returned hypothesis: eos is really hit
        eos = next(t for t in run(None)[0, 6:].tolist() if t in run(t)[0, 6:].tolist())
    ours = run(eos)
    ref = hf_beam(hf, PROMPT, num_beams=4, max_new_tokens=8, eos_token_id=eos, **options)
    assert torch.equal(ours, ref)
    via_generate = generate(model, PROMPT, max_new_tokens=8, num_beams=4, eos_token_id=eos, pad_token_id=1, **options)
    assert torch.equal(via_generate, ours)


def test_left_padded_batch_and_llama_equal_transformers():
    model = tiny_gpt(positions="rotary", norm="rmsnorm", mlp="swiglu", bias=False, n_kv_head=2, n_inner=48)
    hf = twin(model)
    rows = [[7, 8, 9], [20, 30, 40, 50, 60], [3, 4, 5, 6]]
    ids = torch.tensor([[1] * (5 - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (5 - len(r)) + [1] * len(r) for r in rows])
    eos = int(beam_search(model, [rows[0]], num_beams=3, max_new_tokens=6)[0, 3 + 1])
    ours = beam_search(
        model, rows, num_beams=3, max_new_tokens=6, eos_token_id=eos, pad_token_id=1, num_return_sequences=2
    )
    assert torch.equal(
        ours, hf_beam(hf, ids, mask, num_beams=3, max_new_tokens=6, eos_token_id=eos, num_return_sequences=2)
    )
    cached = beam_search(model, rows, num_beams=3, max_new_tokens=6, eos_token_id=eos, pad_token_id=1, use_cache=False)
    assert torch.equal(cached, ours[::2])


def tiny_seq2seq(tgt_vocab: int = 40) -> Seq2Seq:
    torch.manual_seed(0)
    model = Seq2Seq(
        Seq2SeqConfig.preset(
            "transformer-tiny", src_vocab_size=30, tgt_vocab_size=tgt_vocab, dropout=0.0, block_size=16
        )
    ).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(4.0)  # sharper distributions than the near-uniform random init
    return model


def test_seq2seq_beam_is_exact_against_exhaustive_search():
    model, eos, steps = tiny_seq2seq(tgt_vocab=4), 2, 3
    src = torch.tensor([[5, 9, 13, 2, 7]])
    result = beam_search(
        model, src, num_beams=4**steps, max_new_tokens=steps, eos_token_id=eos, length_penalty=0.0, return_details=True
    )
    candidates = []
    for n in range(1, steps + 1):
        for tail in itertools.product(range(4), repeat=n):
            if eos in tail[:-1] or (n < steps and tail[-1] != eos):
                continue
            dec = torch.tensor([[1, *tail]])
            with torch.no_grad():
                logp = torch.log_softmax(model(src, decoder_input_ids=dec[:, :-1]).logits, -1)
            candidates.append((float(logp[0].gather(-1, dec[0, 1:, None]).sum()), [1, *tail]))
    best_score, best = max(candidates)
    assert result.sequences[0].tolist() == best
    assert abs(float(result.sequence_scores[0]) - best_score) < 1e-4


def test_seq2seq_one_beam_is_greedy_and_cache_equals_recompute():
    model = tiny_seq2seq()
    src = [[5, 9, 13, 2, 7], [3, 4, 8]]
    greedy = generate(model, src, max_new_tokens=8)
    assert torch.equal(beam_search(model, src, num_beams=1, max_new_tokens=8, length_penalty=0.0), greedy)
    a = beam_search(model, src, num_beams=3, max_new_tokens=8, eos_token_id=3, return_details=True)
    b = beam_search(model, src, num_beams=3, max_new_tokens=8, eos_token_id=3, use_cache=False, return_details=True)
    assert torch.equal(a.sequences, b.sequences)
    torch.testing.assert_close(a.sequence_scores, b.sequence_scores, atol=1e-5, rtol=0)


def test_lstm_beam_cache_equals_recompute():
    torch.manual_seed(0)
    model = LSTMLM(LSTMConfig.preset("lstm-tiny", vocab_size=V))
    ids = torch.tensor([[4, 8, 15, 16, 23, 42]])
    a = beam_search(model, ids, num_beams=4, max_new_tokens=7, num_return_sequences=4)
    b = beam_search(model, ids, num_beams=4, max_new_tokens=7, num_return_sequences=4, use_cache=False)
    assert torch.equal(a, b) and len({tuple(r) for r in a.tolist()}) == 4


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(num_beams=0), "num_beams"),
        (dict(num_return_sequences=5), "num_return_sequences"),
        (dict(early_stopping="sometimes"), "early_stopping"),
        (dict(max_new_tokens=60), "block_size"),
    ],
)
def test_bad_arguments_raise_one_line_errors(gpt, kwargs, fragment):
    args = dict(num_beams=4, max_new_tokens=4) | kwargs
    with pytest.raises(InvalidInputError) as info:
        beam_search(gpt[0], PROMPT, **args)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InvalidInputError, match="num_beams=1"):
        generate(gpt[0], PROMPT, num_beams=2, temperature=0.7)
