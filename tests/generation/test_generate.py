"""generate()/stream(): parity with transformers' generate on twin weights, KV cache == recompute, all model kinds."""

from __future__ import annotations

import pytest
import torch

from labkit.errors import InvalidInputError
from labkit.generation import GenerationResult, generate, stream
from labkit.models import GPT, LSTMLM, GPTConfig, LSTMConfig, Seq2Seq, Seq2SeqConfig

transformers = pytest.importorskip("transformers")

V = 61


def tiny_gpt(**overrides) -> GPT:
    # a large init makes the random model's next-token distributions peaked and varied, not near-uniform
    torch.manual_seed(0)
    cfg = dict(vocab_size=V, block_size=48, n_layer=2, n_head=4, n_embd=32, initializer_range=0.3, tie_embeddings=False)
    cfg.update(overrides)
    return GPT(GPTConfig(**cfg)).eval()


def twin(model: GPT, pad: int = 1):
    hf = model.to_hf()
    hf.generation_config.eos_token_id = None
    hf.generation_config.bos_token_id = None
    hf.generation_config.pad_token_id = pad
    return hf


def hf_generate(hf, ids, mask=None, **kwargs):
    with torch.inference_mode():
        return hf.generate(ids, attention_mask=torch.ones_like(ids) if mask is None else mask, **kwargs)


def prompts(seed: int = 0, lengths=(3, 7, 5)) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(2, V, (n,), generator=g).tolist() for n in lengths]


def left_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(map(len, rows))
    ids = torch.tensor([[pad] * (n - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (n - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


@pytest.fixture(scope="module")
def gpt():
    model = tiny_gpt()
    return model, twin(model)


@pytest.fixture(scope="module")
def llama():
    model = tiny_gpt(positions="rotary", norm="rmsnorm", mlp="swiglu", bias=False, n_kv_head=2, n_inner=48)
    return model, twin(model)


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_greedy_equals_transformers_generate(family, gpt, llama):
    model, hf = gpt if family == "gpt" else llama
    ids = torch.tensor([prompts(1)[1]])
    ours = generate(model, ids, max_new_tokens=30)
    assert len(set(ours[0, 7:].tolist())) > 3  # a varied continuation, not one repeated token
    assert torch.equal(ours, hf_generate(hf, ids, max_new_tokens=30, do_sample=False))


def test_greedy_stops_on_eos_like_transformers(gpt):
    model, hf = gpt
    ids = torch.tensor([prompts(2)[1]])
    free = generate(model, ids, max_new_tokens=20)
    eos = int(free[0, 7 + 5])  # a token the model does produce, so eos is really hit
    ours = generate(model, ids, max_new_tokens=20, eos_token_id=eos)
    assert ours[0, -1] == eos and ours.size(1) < free.size(1)
    assert torch.equal(ours, hf_generate(hf, ids, max_new_tokens=20, do_sample=False, eos_token_id=eos))


@pytest.mark.parametrize("with_eos", [False, True])
def test_left_padded_batch_equals_rows_alone_and_transformers(gpt, with_eos):
    model, hf = gpt
    rows, pad = prompts(3), 1
    eos = int(generate(model, [rows[0]], max_new_tokens=4)[0, -1]) if with_eos else None
    batch = generate(model, rows, max_new_tokens=12, eos_token_id=eos, pad_token_id=pad)
    assert batch.size(1) == 7 + 12 or with_eos
    for r, row in enumerate(rows):
        alone = generate(model, [row], max_new_tokens=12, eos_token_id=eos)[0, len(row) :].tolist()
        got = batch[r, 7:].tolist()
        assert got[: len(alone)] == alone and all(t == pad for t in got[len(alone) :])
    ids, mask = left_pad(rows, pad)
    ref = hf_generate(hf, ids, mask, max_new_tokens=12, do_sample=False, eos_token_id=eos, pad_token_id=pad)
    assert torch.equal(batch, ref)


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_kv_cache_equals_full_recompute(family, gpt, llama):
    model = (gpt if family == "gpt" else llama)[0]
    rows = prompts(4)
    cached = generate(model, rows, max_new_tokens=15, return_details=True)
    recomputed = generate(model, rows, max_new_tokens=15, use_cache=False, return_details=True)
    assert torch.equal(cached.sequences, recomputed.sequences)
    torch.testing.assert_close(cached.scores, recomputed.scores, atol=1e-5, rtol=0)


def test_sampling_equals_transformers_with_the_same_seed(gpt):
    model, hf = gpt
    ids = torch.tensor([prompts(5)[2]])
    kw = dict(temperature=0.8, top_k=12, top_p=0.9, repetition_penalty=1.3)
    ours = generate(model, ids, max_new_tokens=25, seed=7, **kw)
    torch.manual_seed(7)  # transformers draws from the global generator; ours from a local one with the same seed
    ref = hf_generate(hf, ids, max_new_tokens=25, do_sample=True, **kw)
    assert torch.equal(ours, ref)
    assert torch.equal(ours, generate(model, ids, max_new_tokens=25, seed=7, **kw))
    assert not torch.equal(ours, generate(model, ids, max_new_tokens=25, seed=8, **kw))


def test_details_hold_candidates_logprobs_and_the_attention_of_each_step(gpt):
    model, hf = gpt
    ids = torch.tensor([prompts(6)[1]])
    res = generate(model, ids, max_new_tokens=6, return_details=True, output_attentions=True, top_candidates=4)
    assert (
        isinstance(res, GenerationResult) and len(res.steps) == 6 and torch.equal(res.new_tokens, res.sequences[:, 7:])
    )
    with torch.inference_mode():
        ref = hf.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=6,
            do_sample=False,
            return_dict_in_generate=True,
            output_logits=True,
        )
        full = model(res.sequences[:, :-1], output_attentions=True).attentions
    logits = torch.stack(ref.logits, dim=1)
    expected = torch.log_softmax(logits, -1).gather(-1, res.new_tokens[..., None])[..., 0]
    torch.testing.assert_close(res.logprobs, expected, atol=1e-5, rtol=0)
    for i, step in enumerate(res.steps):
        assert step["top_ids"][0, 0] == step["token_ids"][0] == res.new_tokens[0, i]
        assert step["top_probs"].shape == (1, 4) and bool((step["top_probs"].diff() <= 0).all())
        q = 7 + i - 1  # the query that predicted token i
        for layer, att in enumerate(step["attentions"]):
            assert att.shape == (1, 4, 1, q + 1)
            torch.testing.assert_close(att[:, :, 0], full[layer][:, :, q, : q + 1], atol=1e-5, rtol=0)


def test_sliding_window_goes_past_the_context_and_matches_refeeding():
    model = tiny_gpt(block_size=12)
    ids = torch.tensor([prompts(7)[1]])
    with pytest.raises(InvalidInputError) as info:
        generate(model, ids, max_new_tokens=20)
    msg = str(info.value)
    assert "20" in msg and "block_size=12" in msg and "sliding_window=True" in msg and "\n" not in msg
    out = generate(model, ids, max_new_tokens=20, sliding_window=True)
    seq = ids
    with torch.no_grad():
        for _ in range(20):
            nxt = model(seq[:, -12:]).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
    assert torch.equal(out, seq)


def test_lstm_state_carrying_equals_recompute():
    torch.manual_seed(0)
    model = LSTMLM(
        LSTMConfig.preset("lstm-tiny", vocab_size=V, dropout=0.3)
    )  # train mode on purpose: generate uses eval
    ids = torch.tensor(prompts(8, lengths=(5, 5)))
    for kw in (dict(), dict(temperature=1.2, top_k=20, seed=3)):
        a = generate(model, ids, max_new_tokens=20, return_details=True, **kw)
        b = generate(model, ids, max_new_tokens=20, use_cache=False, return_details=True, **kw)
        assert torch.equal(a.sequences, b.sequences)
        torch.testing.assert_close(a.scores, b.scores, atol=1e-5, rtol=0)
    assert model.training
    with pytest.raises(InvalidInputError, match="different lengths"):
        generate(model, prompts(8), max_new_tokens=3)


def test_seq2seq_greedy_cache_equals_recompute_and_a_reference_loop():
    torch.manual_seed(0)
    model = Seq2Seq(
        Seq2SeqConfig.preset("transformer-tiny", src_vocab_size=30, tgt_vocab_size=40, dropout=0.0, block_size=32)
    ).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(4.0)  # tied with the target embedding: sharper, more varied outputs
    src = [torch.randint(2, 30, (n,), generator=torch.Generator().manual_seed(n)).tolist() for n in (6, 9, 4)]
    out = generate(model, src, max_new_tokens=10, return_details=True)
    nocache = generate(model, src, max_new_tokens=10, use_cache=False, return_details=True)
    assert torch.equal(out.sequences, nocache.sequences) and (out.sequences[:, 0] == 1).all()
    torch.testing.assert_close(out.scores, nocache.scores, atol=1e-5, rtol=0)
    for r, row in enumerate(src):
        dec = torch.tensor([[1]])
        with torch.no_grad():
            for _ in range(10):
                nxt = model(torch.tensor([row]), decoder_input_ids=dec).logits[:, -1].argmax(-1, keepdim=True)
                dec = torch.cat([dec, nxt], dim=1)
        assert torch.equal(out.sequences[r], dec[0])


class ByteTokenizer:
    """A byte-level tokenizer stand-in: id i is byte (i % 2 == 0 ? 0xC3 : 0xA9), so 'é' spans two tokens."""

    eos_id = None

    def encode(self, text: str) -> list[int]:
        return [b % V for b in text.encode("utf-8", errors="ignore")]

    def decode(self, ids: list[int]) -> str:
        return bytes(0xC3 if i % 2 == 0 else 0xA9 for i in ids).decode("utf-8", errors="replace")


def test_stream_yields_the_same_tokens_and_whole_characters(gpt):
    model, _ = gpt
    ids = torch.tensor(prompts(9)[1])
    for kw in (dict(), dict(temperature=0.9, seed=4)):
        ref = generate(model, ids, max_new_tokens=24, **kw)
        items = list(stream(model, ids, max_new_tokens=24, tokenizer=ByteTokenizer(), **kw))
        assert [it["id"] for it in items] == ref[0, 7:].tolist()
        text = "".join(it["text"] for it in items)
        assert text == ByteTokenizer().decode(ref[0, 7:].tolist()) and "é" in text
    eos = ref[0, 7 + 6].item()
    items = list(stream(model, ids, max_new_tokens=24, eos_token_id=eos, **kw))
    assert items[-1]["id"] == eos and items[-1]["finished"] and len(items) <= 7
    assert torch.is_grad_enabled()


def test_text_prompts_and_stop_sequences():
    class CharTokenizer:
        eos_id, pad_id = None, 0

        def encode(self, text):
            return [ord(c) - 60 for c in text]

        def decode(self, ids):
            return "".join(chr(i + 60) for i in ids)

    model, tok = tiny_gpt(), CharTokenizer()
    res = generate(model, "hello", max_new_tokens=12, tokenizer=tok)
    assert isinstance(res, GenerationResult) and res.text == tok.decode(res.new_tokens[0].tolist())
    stop_ids = res.new_tokens[0, 3:5].tolist()
    cut = generate(model, "hello", max_new_tokens=12, tokenizer=tok, stop=[stop_ids])
    assert cut.new_tokens[0].tolist() == res.new_tokens[0, :5].tolist() and cut.text == res.text[:5]
    by_text = generate(model, ["hello", "hello"], max_new_tokens=12, tokenizer=tok, stop=[res.text[3:5]])
    assert by_text.text == [res.text[:5]] * 2


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(top_k=0), "top_k"),
        (dict(temperature=-1.0), "temperature"),
        (dict(num_beams=0), "num_beams"),
        (dict(repetition_penalty=0.0), "repetition_penalty"),
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(stop=["x"]), "tokenizer"),
        (dict(input_ids="text"), "tokenizer"),
        (dict(attention_mask=torch.tensor([[1, 1, 0]])), "left"),
    ],
)
def test_bad_inputs_raise_one_line_errors(gpt, kwargs, fragment):
    args = dict(input_ids=torch.tensor([[3, 4, 5]]), max_new_tokens=4) | kwargs
    with pytest.raises(InvalidInputError) as info:
        generate(gpt[0], **args)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InvalidInputError, match="one prompt"):
        stream(gpt[0], [[3, 4], [5, 6]])


def _specials_first(char) -> GPT:
    """A GPT over `char`'s vocabulary whose output layer favours every special token but eos above any character."""
    model = tiny_gpt(vocab_size=char.vocab_size)
    with torch.no_grad():
        for i in char.special_ids - {char.eos_id}:
            model.lm_head.weight[i] *= 50
    return model


@pytest.mark.parametrize("sampled", [False, True])
def test_a_labkit_tokenizer_special_tokens_are_never_generated_but_eos(sampled):
    from labkit.data import train_tokenizer

    char = train_tokenizer(["to be or not to be, that is the question"], kind="char")
    model = _specials_first(char)
    options = dict(max_new_tokens=40, seed=0, **({"temperature": 1.5} if sampled else {}))
    prompt = torch.tensor([char.encode("to be")])
    without = generate(model, prompt, **options)[0, prompt.size(1) :].tolist()
    assert set(without) & (char.special_ids - {char.eos_id}), "the model should favour special tokens"
    # with tokenizer=, only eos (which ends the row) and ordinary characters can come out
    out = generate(model, prompt, tokenizer=char, return_details=True, **options)
    new = out.new_tokens[0].tolist()
    new = new[: new.index(char.eos_id) + 1] if char.eos_id in new else new  # pad fills the row after eos
    assert len(new) > 5 and not set(new) & (char.special_ids - {char.eos_id}), new
    assert "<pad>" not in out.text[0] and "<unk>" not in out.text[0]
    # eos stays possible: made the strongest, it ends the row at once
    with torch.no_grad():
        model.lm_head.weight[char.eos_id] *= 100
    first = generate(model, prompt, tokenizer=char, return_details=True, **options)
    assert first.sequences[0, prompt.size(1)].item() == char.eos_id and first.text == [""]


def test_pretrained_kind_special_tokens_stay_possible():
    from labkit.generation.decoding import never_generated_ids

    class Pretrained:  # a wrapped Hugging Face tokenizer: its chat markers are real outputs
        kind, special_ids = "pretrained", frozenset({0, 1, 2})

    assert never_generated_ids(Pretrained(), eos=[2]) == []
    assert never_generated_ids(None, eos=[]) == []
