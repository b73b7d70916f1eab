"""GenerationPlayground without a kernel: its tokens, candidates and attention agree with labkit.generation and with a
full forward pass; tokens stream as messages; controls are validated; hostile token text stays inert."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
import tokenizers
import torch

from labkit.data.tokenizer import Tokenizer, train_tokenizer
from labkit.errors import InvalidInputError
from labkit.frontend import asset_text, module_text
from labkit.generation import SamplingOptions, generate
from labkit.generation.beam import beam_search
from labkit.models.gpt import GPT, GPTConfig
from labkit.models.lstm import LSTMLM, LSTMConfig
from labkit.models.seq2seq import Seq2Seq, Seq2SeqConfig
from labkit.widgets.playground import GenerationPlayground

HOSTILE = "</script><img src=x onerror=alert(1)>"
TEXT = "the cat sat on the mat. the dog ate the bone. " * 10


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXT, kind="char")


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    return GPT(GPTConfig.preset("gpt-nano", vocab_size=tok.vocab_size, block_size=32, n_layer=2)).eval()


def _play(model, tok, **controls) -> tuple[GenerationPlayground, list]:
    play = GenerationPlayground(model, tok, **controls)
    sent: list = []
    play.send = lambda content, buffers=None: sent.append(content)  # what the page would receive
    return play, sent


def _prompt(tok, text="the ") -> torch.Tensor:
    return torch.tensor([tok.encode(text)])


@pytest.mark.parametrize(
    "controls, reference",
    [
        (dict(temperature=0.0), dict()),
        (dict(temperature=0.9, seed=7), dict(temperature=0.9, seed=7)),
        (dict(temperature=1.3, top_k=5, top_p=0.8, seed=3), dict(temperature=1.3, top_k=5, top_p=0.8, seed=3)),
    ],
)
def test_tokens_and_candidates_match_generate(model, tok, controls, reference):
    play, _ = _play(model, tok, prompt="the ", max_new_tokens=12, top_candidates=6, **controls)
    text = play.generate()
    ref = generate(model, _prompt(tok), 12, return_details=True, top_candidates=6, tokenizer=tok, **reference)
    assert [t["id"] for t in play.tokens] == ref.new_tokens[0].tolist()
    assert text == play.text == tok.decode(ref.new_tokens[0].tolist())
    assert play.prompt_tokens == ["t", "h", "e", " "]
    for i, step in enumerate(ref.steps):
        assert [c[2] for c in play.candidates[i]] == step["top_ids"][0].tolist()
        assert [c[1] for c in play.candidates[i]] == pytest.approx(step["top_probs"][0].tolist(), abs=1e-6)
        assert [c[0] for c in play.candidates[i]] == [tok.decode([j]) for j in step["top_ids"][0].tolist()]
        assert play.tokens[i]["p"] == pytest.approx(math.exp(float(ref.logprobs[0, i])), abs=1e-6)


def test_sampling_options_drive_the_playground_as_they_drive_generate(model, tok):
    options = SamplingOptions(temperature=1.1, top_k=6, repetition_penalty=1.4, seed=5)
    play, _ = _play(model, tok, prompt="the ", max_new_tokens=10, sampling=options)
    assert (play.temperature, play.top_k, play.top_p, play.repetition_penalty, play.seed) == (1.1, 6, 1.0, 1.4, 5)
    play.generate()
    ref = generate(model, _prompt(tok), 10, sampling=options, tokenizer=tok)  # the playground never samples <pad> etc.
    assert [t["id"] for t in play.tokens] == ref[0, 4:].tolist()
    assert "repetition penalty 1.4" in play.status
    play.sampling = SamplingOptions()  # greedy
    assert play.temperature == 0 and play.sampling.samples is False
    play.generate()
    assert [t["id"] for t in play.tokens] == generate(model, _prompt(tok), 10, tokenizer=tok)[0, 4:].tolist()
    with pytest.raises(InvalidInputError, match="pass sampling= or the controls temperature, not both"):
        GenerationPlayground(model, tok, sampling=options, temperature=0.5)


def test_each_steps_attention_equals_a_full_forward_pass(model, tok):
    play, _ = _play(model, tok, prompt="the c", max_new_tokens=8, temperature=0.0)
    play.generate()
    seq = torch.tensor([tok.encode("the c") + [t["id"] for t in play.tokens]])
    with torch.no_grad():
        full = model(seq, output_attentions=True).attentions  # per layer [1, head, q, k]
    p = len(play.prompt_tokens)
    assert (play.n_layer, play.n_head) == (2, 3) and play.header["arrays"]["attn"]["shape"] == [2, 3, 8, p + 7]
    for i in range(8):
        got = play.step_attention(i)  # [layer, head, key], the query that chose token i
        want = torch.stack([a[0, :, p - 1 + i, : p + i] for a in full])
        torch.testing.assert_close(got, want, atol=2e-3, rtol=2e-3)  # float16 on the wire


def test_beams_match_beam_search_and_read_attention_from_the_result(model, tok):
    play, sent = _play(model, tok, prompt="the ", max_new_tokens=6, num_beams=3)
    play.generate()
    ref = beam_search(model, _prompt(tok), num_beams=3, max_new_tokens=6)
    assert [t["id"] for t in play.tokens] == ref[0, 4:].tolist()
    assert "beam search (3 beams" in play.status
    assert [m["type"] for m in sent] == ["start", "done"]  # beam search cannot stream
    seq = ref[:, : 4 + len(play.tokens)]
    with torch.no_grad():
        out = model(seq, output_attentions=True)
    probs = torch.softmax(out.logits[0], -1)
    for i, tokn in enumerate(play.tokens):
        assert tokn["p"] == pytest.approx(float(probs[3 + i, tokn["id"]]), abs=1e-6)
        torch.testing.assert_close(
            play.step_attention(i), torch.stack([a[0, :, 3 + i, : 4 + i] for a in out.attentions]), atol=2e-3, rtol=2e-3
        )


def test_tokens_stream_as_messages_then_land_in_the_traits(model, tok):
    play, sent = _play(model, tok, prompt="the ", max_new_tokens=5, temperature=0.8, seed=1)
    play._on_custom_msg(play, {"type": "generate"}, [])  # the page's Generate button
    assert [m["type"] for m in sent] == ["start"] + ["token"] * 5 + ["done"]
    assert sent[0]["prompt_tokens"] == play.prompt_tokens
    assert [m["token"] for m in sent[1:-1]] == play.tokens
    assert [m["candidates"] for m in sent[1:-1]] == play.candidates
    assert [m["index"] for m in sent[1:-1]] == list(range(5))
    assert not play.running and play.error == ""


def test_a_failing_run_from_the_page_shows_the_error(model, tok):
    play, _ = _play(model, tok, prompt="the cat sat on the mat", max_new_tokens=20)
    play._on_custom_msg(play, {"type": "generate"}, [])
    assert play.status == "failed" and "exceeds the context of 32" in play.error
    with pytest.raises(InvalidInputError, match="exceeds the context of 32"):  # from Python it raises
        play.generate()


def test_large_attention_is_pruned_to_the_budget(model, tok):
    play, _ = _play(model, tok, prompt="t", max_new_tokens=30, temperature=0.0, max_bytes=1024)
    play.generate()
    spec = play.header["arrays"]["attn"]
    assert spec["top_k"] is not None and len(play.payload) <= 1024
    full = play.step_attention(29)
    assert (full > 0).sum(-1).max() <= spec["top_k"]


def test_lstm_generates_without_attention(tok):
    torch.manual_seed(0)
    lstm = LSTMLM(LSTMConfig.preset("lstm-tiny", vocab_size=tok.vocab_size)).eval()
    play, _ = _play(lstm, tok, prompt="the ", max_new_tokens=4, temperature=0.0)
    play.generate()
    ref = generate(lstm, _prompt(tok), 4, tokenizer=tok)
    assert [t["id"] for t in play.tokens] == ref[0, 4:].tolist()
    assert play.n_layer == 0 and play.header == {} and play.payload == b""
    with pytest.raises(InvalidInputError, match="recorded no attention"):
        play.step_attention(0)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("temperature", -0.5, r"^temperature must be a finite number >= 0, got -0.5; 0 = greedy$"),
        ("temperature", float("nan"), "temperature must be a finite number >= 0"),
        ("top_k", -1, r"^top_k must be an integer >= 0, got -1; 0 = off$"),
        ("top_p", 0.0, r"^top_p must be a finite number in \(0, 1\], got 0.0; 1 = off$"),
        ("top_p", 1.5, r"top_p must be a finite number in \(0, 1\]"),
        ("repetition_penalty", 0.0, r"^repetition_penalty must be a finite number > 0, got 0.0; 1 = off$"),
        ("max_new_tokens", 0, r"^max_new_tokens must be an integer in \[1, 31\], got 0; the context holds 32 tokens"),
        ("max_new_tokens", 32, r"max_new_tokens must be an integer in \[1, 31\]"),
        ("num_beams", 0, r"num_beams must be an integer in \[1, 16\]"),
        ("num_beams", 17, r"num_beams must be an integer in \[1, 16\]"),
        ("top_candidates", 0, r"top_candidates must be an integer in \[1, 50\]"),
        ("seed", -1, r"^seed must be an integer >= 0 \(or None\), got -1"),
        ("selected", 0, r"^selected must be None until a run has generated tokens, got 0; generate first$"),
    ],
)
def test_controls_are_validated_on_the_traits(model, tok, name, value, message):
    play, _ = _play(model, tok)
    before = getattr(play, name)
    with pytest.raises(InvalidInputError, match=message):
        setattr(play, name, value)
    assert getattr(play, name) == before or (isinstance(before, float) and math.isnan(before))
    with pytest.raises(InvalidInputError, match=message):
        GenerationPlayground(model, tok, **{name: value})


def test_selection_layer_and_head_are_checked_against_the_run(model, tok):
    play, _ = _play(model, tok, prompt="the ", max_new_tokens=3, temperature=0.0)
    play.generate()
    play.selected, play.layer, play.head = 2, 1, 2
    for name, value, message in [
        ("selected", 3, r"^selected must be an integer in \[0, 2\] \(or None\), got 3; 3 tokens"),
        ("layer", 2, r"^layer must be an integer in \[0, 1\], got 2; the model has 2 layers$"),
        ("head", 3, r"^head must be an integer in \[0, 2\] \(or None\), got 3; the model has 3 heads"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            setattr(play, name, value)
    assert "step 2: chose" in play.to_svg()


def test_bad_models_tokenizers_and_controls_fail_early(model, tok):
    torch.manual_seed(0)
    s2s = Seq2Seq(
        Seq2SeqConfig.preset("transformer-tiny", src_vocab_size=tok.vocab_size, tgt_vocab_size=tok.vocab_size)
    )
    with pytest.raises(InvalidInputError, match="drives decoder-only models"):
        GenerationPlayground(s2s, tok)
    with pytest.raises(InvalidInputError, match="generate needs a labkit GPT"):
        GenerationPlayground(torch.nn.Linear(2, 2), tok)
    with pytest.raises(InvalidInputError, match="tokenizer must have encode"):
        GenerationPlayground(model, None)
    with pytest.raises(InvalidInputError, match=r"unknown control\(s\) \['temprature'\]"):
        GenerationPlayground(model, tok, temprature=1.0)
    play = GenerationPlayground(model, tok)
    assert play._esm == module_text("playground.js") and "export default" in play._esm and play._css
    assert {"prompt", "temperature", "top_k", "top_p", "max_new_tokens", "num_beams", "seed"} <= set(
        play.traits(sync=True)
    )


def test_hostile_token_text_stays_inert():
    vocab = {HOSTILE: 0, "a": 1, "b": 2, "<eos>": 3}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="a"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    hostile_tok = Tokenizer(backend, "pretrained", {"eos": "<eos>"})
    torch.manual_seed(0)
    gpt = GPT(GPTConfig.preset("gpt-nano", vocab_size=4, block_size=16, n_layer=1)).eval()
    with torch.no_grad():
        # The final norm ignores its input (weight 0) and outputs its bias, all ones; the LM head reads that with
        # row 0 = ones and the other rows 0. So every step's logits are exactly [48, 0, 0, 0]: the hostile token
        # wins by 48 nats whatever the blocks compute, not by float noise.
        gpt.ln_f.weight.zero_()
        gpt.ln_f.bias.fill_(1.0)
        gpt.lm_head.weight.zero_()
        gpt.lm_head.weight[0] = 1.0
    play, sent = _play(gpt, hostile_tok, prompt="a b", max_new_tokens=3, temperature=0.0)
    play.generate()
    assert [c[2] for c in play.candidates[0]][:1] == [0] and play.candidates[0][0][1] == pytest.approx(1.0)
    assert [t["text"] for t in play.tokens] == [HOSTILE] * 3  # the data keeps the real text
    assert play.candidates[0][0][0] == HOSTILE
    bundle, _ = play._repr_mimebundle_()
    for mime in ("text/plain", "image/svg+xml"):
        assert "<img" not in bundle[mime] and "</script" not in bundle[mime], mime
    ET.fromstring(bundle["image/svg+xml"])
    assert "\\u003cimg" in bundle["text/plain"]
    js = asset_text("playground.js")
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js  # the page writes text through textContent only
