"""Parity with TransformerLens on the same GPT-2-shaped weights: logit lens and activation patching agree to 1e-5.

TransformerLens (a test-only dependency, installed by scripts/setup.sh with --no-deps) wraps the Hugging Face
GPT2LMHeadModel that `GPT.to_hf()` makes from our tiny random GPT. Its own patching tests check shapes and
finiteness; these compare every value. The patched metric is a logit difference far from zero, and the
prompts differ at position 3, so the positions before it (which labkit skips) are compared too.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from labkit.interpret import activation_patching, lens_logits, logit_lens

pytestmark = pytest.mark.slow  # booting TransformerLens and its one-run-per-patch sweeps take ~20-40 s on 2 cores

TOL = 1e-5
TL_VERSION = "4.3.0"


@pytest.fixture(scope="module")
def bridge(gpt2_like, char_tokenizer, tmp_path_factory):
    if importlib.util.find_spec("transformer_lens") is None:
        pytest.fail(
            f"transformer-lens is not installed; run: pip install --no-deps transformer-lens=={TL_VERSION} "
            "(scripts/setup.sh does)",
            pytrace=False,
        )
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tokenizer")
    PreTrainedTokenizerFast(tokenizer_object=char_tokenizer.backend, unk_token="<unk>").save_pretrained(folder)
    hf = gpt2_like.to_hf().eval()
    # the name only selects the GPT-2 adapter: weights and tokenizer come from here, nothing is downloaded
    return TransformerBridge.boot_transformers(
        "gpt2", hf_model=hf, tokenizer=AutoTokenizer.from_pretrained(folder), device="cpu"
    )


@pytest.fixture(scope="module")
def prompts(char_tokenizer):
    clean = torch.tensor([char_tokenizer.encode("the cat "), char_tokenizer.encode("a bird f")])
    corrupted = clean.clone()
    corrupted[:, 3] = torch.tensor(char_tokenizer.encode("xz"))  # one changed token per prompt, at position 3
    return clean, corrupted


def test_the_bridge_runs_our_weights(bridge, gpt2_like, prompts):
    clean, _ = prompts
    assert (bridge(clean) - gpt2_like(clean).logits).abs().max() < TOL


def test_logit_lens_matches_accumulated_resid_then_unembed(bridge, gpt2_like, prompts, char_tokenizer):
    clean, _ = prompts
    _, cache = bridge.run_with_cache(clean)
    theirs = bridge.unembed(cache.accumulated_resid(apply_ln=True))  # [n_layer + 1, batch, pos, vocab]
    ours = lens_logits(gpt2_like, clean)
    assert ours.shape == theirs.shape == (3, 2, clean.size(1), char_tokenizer.vocab_size)
    assert ours.abs().max() > 1.0  # far from zero, so the tolerance means something
    assert (ours - theirs).abs().max() < TOL
    lens = logit_lens(gpt2_like, clean[1], top_k=3)
    probs = torch.softmax(theirs[:, 1], dim=-1).topk(3, dim=-1)
    assert torch.equal(lens.top_ids, probs.indices)
    assert (lens.top_probs - probs.values).abs().max() < TOL


def _metric(answer, wrong):
    def metric(logits):
        last = logits[:, -1]
        return (last.gather(-1, answer[:, None]) - last.gather(-1, wrong[:, None])).mean()

    return metric


# resid_mid is compared below, not here: TransformerLens 4.3's bridge aliases hook_resid_mid to ln2.hook_in.
CASES = [
    ("get_act_patch_resid_pre", "resid_pre", "layer_pos"),
    ("get_act_patch_attn_out", "attn_out", "layer_pos"),
    ("get_act_patch_mlp_out", "mlp_out", "layer_pos"),
    ("get_act_patch_attn_head_out_by_pos", "head_out", "head_pos"),
    ("get_act_patch_attn_head_out_all_pos", "head_out", "head"),
]


@pytest.mark.parametrize("function, hook, by", CASES, ids=[c[0] for c in CASES])
def test_patching_matches_transformer_lens(bridge, gpt2_like, prompts, function, hook, by):
    from transformer_lens import patching

    clean, corrupted = prompts
    answer, wrong = torch.tensor([5, 9]), torch.tensor([7, 2])
    metric = _metric(answer, wrong)
    _, clean_cache = bridge.run_with_cache(clean)
    theirs = getattr(patching, function)(bridge, corrupted, clean_cache, metric)
    ours = activation_patching(gpt2_like, clean, corrupted, hook=hook, by=by, metric=metric, batch_size=7)
    assert ours.scores.shape == theirs.shape
    assert (theirs - theirs.flatten()[0]).abs().max() > 0.05  # patches differ in effect: a real comparison
    assert (ours.scores - theirs).abs().max() < TOL
    # the same sweep through answer=/wrong= instead of a metric function
    again = activation_patching(
        gpt2_like, clean, corrupted, hook=hook, by=by, answer=answer.tolist(), wrong=wrong.tolist()
    )
    assert (again.scores - theirs).abs().max() < TOL


def test_resid_mid_agrees_and_transformer_lens_patches_only_the_mlp_input(bridge, gpt2_like, prompts):
    """The cached resid_mid values agree; TransformerLens 4.3's resid_mid patch equals patching the MLP's input alone.

    Its bridge names ln2.hook_in "hook_resid_mid", so a patch there changes what the MLP reads but not the
    residual stream that skips past the MLP; labkit (like the older HookedTransformer) patches the stream.
    If a later TransformerLens patches the stream, the second check fails: then move resid_mid into CASES.
    """
    from transformer_lens import patching

    clean, corrupted = prompts
    metric = _metric(torch.tensor([5, 9]), torch.tensor([7, 2]))
    _, theirs_cache = bridge.run_with_cache(clean)
    _, ours_cache = gpt2_like.run_with_cache(clean, names=lambda n: n.endswith("hook_resid_mid"))
    for layer in range(2):
        name = f"blocks.{layer}.hook_resid_mid"
        assert (theirs_cache[name] - ours_cache[name]).abs().max() < TOL
    theirs = patching.get_act_patch_resid_mid(bridge, corrupted, theirs_cache, metric)
    mlp_input_only = torch.zeros_like(theirs)
    for layer in range(2):
        for pos in range(clean.size(1)):

            def swap(module, args, pos=pos, layer=layer):
                x = args[0].clone()
                x[:, pos] = ours_cache[f"blocks.{layer}.hook_resid_mid"][:, pos]
                return (x,)

            handle = gpt2_like.blocks[layer].ln_2.register_forward_pre_hook(swap)
            with torch.no_grad():
                mlp_input_only[layer, pos] = metric(gpt2_like(corrupted).logits)
            handle.remove()
    assert (mlp_input_only - theirs).abs().max() < TOL
    stream = activation_patching(gpt2_like, clean, corrupted, hook="resid_mid", metric=metric).scores
    assert (stream - theirs).abs().max() > 0.01  # a different experiment, as explained above
