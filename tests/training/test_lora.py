"""LoRA through PEFT: counts match PEFT, merge/unmerge keep logits, adapters round-trip and export to the HF twin exactly."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

from labkit.errors import InvalidInputError, MissingSourceError, UnknownNameError  # noqa: E402
from labkit.models import GPT, GPTConfig  # noqa: E402
from labkit.models.encoder import Encoder, EncoderConfig  # noqa: E402
from labkit.models.outputs import ModelOutput  # noqa: E402
from labkit.models.seq2seq import Seq2Seq, Seq2SeqConfig  # noqa: E402
from labkit.training.lora import load_adapter, lora, save_adapter, trainable_parameters  # noqa: E402

VOCAB = 100
GPT2_STYLE: dict = {}
LLAMA_STYLE = dict(positions="rotary", norm="rmsnorm", mlp="swiglu", bias=False, n_kv_head=1, n_inner=48)


def _gpt(**overrides) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=32, n_layer=2, n_head=2, n_embd=32, **overrides)).eval()


def _ids(batch: int = 2, seq: int = 10) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(1))


def _randomize_b(peft_model: nn.Module, seed: int = 2) -> None:
    """PEFT starts B at zero (a no-op adapter); random B makes every parity check below able to fail."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    return (a - b).abs().max().item() <= tol


def _expected_lora_params(model: nn.Module, names: list[str], r: int) -> int:
    """Independent oracle: each adapted Linear(in, out) adds A [r, in] and B [out, r]."""
    modules = dict(model.named_modules())
    return sum(r * (modules[n].in_features + modules[n].out_features) for n in names)


@pytest.mark.parametrize(
    "targets, suffixes",
    [
        (("attn",), ("q_proj", "k_proj", "v_proj")),
        ("qv", ("q_proj", "v_proj")),
        (("attn-out", "mlp"), ("out_proj", "fc_in", "fc_out")),
        ("all-linear", ("q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out")),
    ],
)
def test_trainable_count_matches_peft(targets, suffixes, capsys):
    model, reference = _gpt(), _gpt()
    names = [n for n, m in reference.named_modules() if isinstance(m, nn.Linear) and n.rsplit(".", 1)[-1] in suffixes]
    expected = _expected_lora_params(reference, names, r=4)
    wrapped = lora(model, r=4, alpha=8, targets=targets)
    printed = capsys.readouterr().out.strip()
    direct = peft.get_peft_model(reference, peft.LoraConfig(r=4, lora_alpha=8, target_modules=list(suffixes)))
    assert (
        trainable_parameters(wrapped) == wrapped.get_nb_trainable_parameters() == direct.get_nb_trainable_parameters()
    )
    assert trainable_parameters(wrapped)[0] == expected
    direct.print_trainable_parameters()
    assert printed == capsys.readouterr().out.strip()
    assert all("lora_" in n for n, p in wrapped.named_parameters() if p.requires_grad)


def test_hf_models_get_their_own_names():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0
    )
    hf, reference = transformers.GPT2LMHeadModel(cfg), transformers.GPT2LMHeadModel(cfg)
    wrapped = lora(hf, r=4, alpha=8, targets="attn", verbose=False)
    # PEFT's own default for GPT-2 is c_attn (q, k, v fused) with fan_in_fan_out for its Conv1D layers
    direct = peft.get_peft_model(
        reference, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True)
    )
    assert (
        trainable_parameters(wrapped) == wrapped.get_nb_trainable_parameters() == direct.get_nb_trainable_parameters()
    )
    assert sorted(n for n, p in wrapped.named_parameters() if p.requires_grad) == sorted(
        n for n, p in direct.named_parameters() if p.requires_grad
    )
    assert wrapped.peft_config["default"].fan_in_fan_out
    llama = transformers.LlamaForCausalLM(
        transformers.LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
    )
    wrapped = lora(llama, r=2, targets=("qv", "attn-out"), verbose=False)
    adapted = {n.rsplit(".", 1)[-1] for n, m in wrapped.named_modules() if hasattr(m, "lora_A") and m.lora_A}
    assert adapted == {"q_proj", "v_proj", "o_proj"}


@pytest.mark.parametrize("style", [GPT2_STYLE, LLAMA_STYLE], ids=["gpt2", "llama"])
def test_merged_unmerged_and_unloaded_logits_agree(style):
    ids = _ids()
    base = _gpt(**style)
    with torch.no_grad():
        base_logits = base(ids).logits
    wrapped = lora(base, r=4, alpha=8, targets=("attn", "attn-out", "mlp"), verbose=False)
    _randomize_b(wrapped)
    with torch.no_grad():
        ref = wrapped(input_ids=ids).logits
        assert not _close(ref, base_logits, 1e-3)  # the adapter does change the output
        wrapped.merge_adapter()
        merged = wrapped(input_ids=ids).logits
        wrapped.unmerge_adapter()
        unmerged = wrapped(input_ids=ids).logits
        plain = wrapped.merge_and_unload()
        unloaded = plain(ids).logits
    assert type(plain) is GPT and not any(hasattr(m, "lora_A") for m in plain.modules())
    assert _close(merged, ref) and _close(unmerged, ref) and _close(unloaded, ref)


@pytest.mark.parametrize(
    "style, targets",
    [(GPT2_STYLE, ("attn", "attn-out", "mlp")), (GPT2_STYLE, "qv"), (LLAMA_STYLE, ("attn", "attn-out", "mlp"))],
    ids=["gpt2", "gpt2-qv", "llama"],
)
def test_hf_twin_export_matches_and_loads_back(style, targets, tmp_path):
    ids = _ids()
    model = _gpt(**style)
    twin, fresh = model.to_hf(), copy.deepcopy(model)  # the twin holds the base weights, made before LoRA wraps `model`
    with torch.no_grad():
        base_logits = model(ids).logits
    wrapped = lora(model, r=4, alpha=8, targets=targets, verbose=False)
    _randomize_b(wrapped)
    save_adapter(wrapped, tmp_path / "twin", hf_twin=True)
    loaded = peft.PeftModel.from_pretrained(twin, str(tmp_path / "twin")).eval()
    back = load_adapter(fresh, tmp_path / "twin")
    with torch.no_grad():
        ref = wrapped(input_ids=ids).logits
        hf_logits = loaded(input_ids=ids).logits
        back_logits = back(input_ids=ids).logits
    assert not _close(ref, base_logits, 1e-3)
    assert _close(hf_logits, ref) and _close(back_logits, ref)
    # the block-diagonal c_attn adapter splits back into the original rank-r q/k/v adapters
    assert sum(p.numel() for n, p in back.named_parameters() if "lora_" in n) == trainable_parameters(wrapped)[0]


def test_adapter_trained_with_peft_on_gpt2_loads_into_labkit(tmp_path):
    ids = _ids()
    model = _gpt()
    hf = peft.get_peft_model(
        model.to_hf(), peft.LoraConfig(r=3, lora_alpha=5, target_modules=["c_attn", "c_fc"], fan_in_fan_out=True)
    )
    _randomize_b(hf)
    hf.save_pretrained(str(tmp_path / "hf"))
    back = load_adapter(model, tmp_path / "hf")
    with torch.no_grad():
        assert _close(back(input_ids=ids).logits, hf(input_ids=ids).logits)


def test_native_round_trip_and_hooks(tmp_path):
    ids = _ids()
    wrapped = lora(_gpt(), r=4, alpha=8, targets="attn", verbose=False)
    _randomize_b(wrapped)
    save_adapter(wrapped, tmp_path / "native")
    frozen = load_adapter(_gpt(), tmp_path / "native")
    training = load_adapter(_gpt(), tmp_path / "native", trainable=True)
    with torch.no_grad():
        ref = wrapped(input_ids=ids).logits
        assert _close(frozen(input_ids=ids).logits, ref)
    assert trainable_parameters(frozen)[0] == 0
    assert trainable_parameters(training) == trainable_parameters(wrapped)
    out, cache = wrapped.run_with_cache(ids, names=["blocks.0.attn.hook_q", "blocks.1.hook_resid_post"])
    assert isinstance(out, ModelOutput) and list(cache) == ["blocks.0.attn.hook_q", "blocks.1.hook_resid_post"]
    assert wrapped.hook_names() == _gpt().hook_names()


def test_training_moves_only_lora_weights():
    wrapped = lora(_gpt(), r=4, alpha=8, targets=("attn", "mlp"), verbose=False)
    before = {n: p.detach().clone() for n, p in wrapped.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in wrapped.parameters() if p.requires_grad], lr=1e-2)
    optimizer_all = torch.optim.AdamW(wrapped.parameters(), lr=1e-2, weight_decay=0.1)  # as a naive loop would build it
    wrapped.train()
    ids = _ids(4, 16)
    for opt in (optimizer, optimizer_all):
        for _ in range(3):
            loss = wrapped(input_ids=ids, labels=ids).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    after = dict(wrapped.named_parameters())
    for name, old in before.items():
        moved = not torch.equal(old, after[name])
        assert moved == ("lora_" in name), name
    assert "base_model.model.blocks.0.attn.q_proj.base_layer.weight" in wrapped.state_dict()


def test_encoder_and_seq2seq_take_adapters():
    torch.manual_seed(0)
    enc = Encoder(
        EncoderConfig(
            vocab_size=VOCAB,
            block_size=16,
            n_layer=2,
            n_head=2,
            n_embd=16,
            n_inner=32,
            head="classification",
            num_labels=3,
        )
    )
    wrapped = lora(enc, r=2, targets="all-linear", modules_to_save=["classifier"], verbose=False)
    out = wrapped(input_ids=_ids(2, 8), labels=torch.tensor([0, 2]))
    assert isinstance(out, ModelOutput) and out.loss is not None
    trainable = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    assert any("classifier" in n for n in trainable) and not any("lora_" in n and "classifier" in n for n in trainable)
    s2s = Seq2Seq(
        Seq2SeqConfig(
            src_vocab_size=VOCAB,
            tgt_vocab_size=VOCAB,
            block_size=16,
            n_layer=1,
            n_decoder_layer=1,
            n_head=2,
            n_embd=16,
            n_inner=32,
        )
    )
    wrapped = lora(s2s, r=2, targets="attn", verbose=False)
    adapted = [n for n, m in wrapped.get_base_model().named_modules() if hasattr(m, "lora_A") and m.lora_A]
    assert any(".cross_attn." in n for n in adapted) and len(adapted) == 9  # 3 encoder self + 3 decoder self + 3 cross
    assert wrapped(input_ids=_ids(2, 8), labels=_ids(2, 6)).loss is not None


@pytest.mark.parametrize(
    "kwargs, error, text",
    [
        (dict(r=0), InvalidInputError, "r must be"),
        (dict(r=2.5), InvalidInputError, "r must be"),
        (dict(alpha=0), InvalidInputError, "alpha"),
        (dict(dropout=1.0), InvalidInputError, "dropout"),
        (dict(targets="q_porj"), UnknownNameError, "q_proj"),
        (dict(targets=["v_prj"]), UnknownNameError, "v_proj"),
        (dict(targets=["blocks.0.attn"]), InvalidInputError, "q_proj"),
        (dict(targets=[]), InvalidInputError, "targets"),
    ],
)
def test_bad_arguments_fail_in_one_line(kwargs, error, text):
    with pytest.raises(error) as info:
        lora(_gpt(), **kwargs)
    assert text in str(info.value) and "\n" not in str(info.value)


def test_other_errors(tmp_path):
    wrapped = lora(_gpt(), verbose=False)
    with pytest.raises(InvalidInputError, match="already has LoRA"):
        lora(wrapped)
    with pytest.raises(InvalidInputError, match="already has LoRA"):
        lora(wrapped.get_base_model())
    with pytest.raises(InvalidInputError, match="returned by lora"):
        save_adapter(_gpt(), tmp_path / "x")
    with pytest.raises(MissingSourceError):
        load_adapter(_gpt(), tmp_path / "missing")
    hf = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0
        )
    )
    with pytest.raises(UnknownNameError, match="c_attn fuses"):
        lora(hf, targets="qv")
    enc = lora(
        Encoder(EncoderConfig(vocab_size=VOCAB, block_size=16, n_layer=1, n_head=2, n_embd=16, n_inner=32)),
        verbose=False,
    )
    with pytest.raises(InvalidInputError, match="labkit GPT"):
        save_adapter(enc, tmp_path / "enc", hf_twin=True)
    save_adapter(enc, tmp_path / "enc")
    with pytest.raises(InvalidInputError, match="different shape"):
        load_adapter(_gpt(), tmp_path / "enc")
    with pytest.raises(InvalidInputError, match="does not have"):
        load_adapter(nn.Sequential(nn.Linear(2, 2)), tmp_path / "enc")
