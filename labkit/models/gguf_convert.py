"""A Llama-architecture GGUF file in, a labkit GPT (float32) and a labkit Tokenizer out, without transformers.

Weights: GGUF names (`blk.{i}.attn_q.weight`, ...) map onto labkit's (`blocks.{i}.attn.q_proj.weight`, ...).
llama.cpp's converter reorders the rows of each query and key head from the half-split rotary layout
(first half of the head's features rotate with the second half: what Hugging Face and labkit use) to the
interleaved layout (feature pairs 2j, 2j+1), so those rows are put back here: within each head, row
`2j + k` of the file is row `k * d_head / 2 + j` of the model.

Tokenizer: a "gpt2" (byte-level BPE) vocabulary is rebuilt from the file's tokens and merges with
Hugging Face `tokenizers`, the tokens the file marks as control (`<|im_end|>`, ...) added as special tokens,
and the file's bos/eos/unk/pad ids and chat template kept; other vocabularies go through transformers.
The parity tests compare both halves against transformers' own GGUF loader on the packaged SmolLM2.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from labkit.errors import InvalidInputError, MissingSourceError
from labkit.models.gguf_file import GGUFFile

__all__ = ["gguf_config", "gguf_state", "gguf_tokenizer", "byte_alphabet"]

# GGUF suffixes under blk.{i}. -> labkit suffixes under blocks.{i}.
GGUF_WEIGHT_NAMES = {
    "attn_norm.weight": "ln_1.weight",
    "attn_q.weight": "attn.q_proj.weight",
    "attn_k.weight": "attn.k_proj.weight",
    "attn_v.weight": "attn.v_proj.weight",
    "attn_output.weight": "attn.out_proj.weight",
    "ffn_norm.weight": "ln_2.weight",
    "ffn_gate.weight": "mlp.fc_gate.weight",
    "ffn_up.weight": "mlp.fc_in.weight",
    "ffn_down.weight": "mlp.fc_out.weight",
}
_BYTE_LEVEL_PRE = ("default", "gpt-2", "gpt2", "smollm")  # split like GPT-2; other pre-tokenizers need transformers


def gguf_config(file: GGUFFile) -> Any:
    """A parsed GGUF file in, the GPTConfig of its (Llama-architecture) model out; unsupported variants raise."""
    from labkit.models.gpt import GPTConfig

    md = file.metadata
    arch = md.get("general.architecture")
    if arch != "llama":
        raise InvalidInputError(
            f"{file.path.name} holds a {arch!r} model; labkit reads Llama-architecture GGUF files (SmolLM2, TinyLlama, ...)"
        )

    def key(name: str, default: Any = None) -> Any:
        value = md.get(f"llama.{name}", default)
        if value is None:
            raise InvalidInputError(f"{file.path.name} lacks llama.{name}; is the file complete?")
        return value

    n_embd, n_head = int(key("embedding_length")), int(key("attention.head_count"))
    d_head = n_embd // n_head
    if md.get("llama.rope.scaling.type", "none") not in ("none", None) or "rope_freqs.weight" in file.tensors:
        raise InvalidInputError(f"{file.path.name} uses RoPE scaling; labkit supports plain RoPE only")
    if (
        int(md.get("llama.rope.dimension_count", d_head)) != d_head
        or int(md.get("llama.attention.key_length", d_head)) != d_head
    ):
        raise InvalidInputError(f"{file.path.name} rotates or sizes only part of each head; not supported")
    tokens = md.get("tokenizer.ggml.tokens")
    return GPTConfig(
        vocab_size=len(tokens) if tokens else int(key("vocab_size")),
        block_size=int(key("context_length")),
        n_layer=int(key("block_count")),
        n_head=n_head,
        n_kv_head=int(key("attention.head_count_kv", n_head)),
        n_embd=n_embd,
        n_inner=int(key("feed_forward_length")),
        positions="rotary",
        rope_theta=float(md.get("llama.rope.freq_base", 10000.0)),
        norm="rmsnorm",
        mlp="swiglu",
        bias=False,
        layer_norm_eps=float(key("attention.layer_norm_rms_epsilon")),
        tie_embeddings="output.weight" not in file.tensors,
    )


def _unpermute(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows of a query/key matrix in llama.cpp's interleaved rotary order in, half-split order out."""
    rows, cols = w.shape
    return w.reshape(heads, rows // heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def gguf_state(file: GGUFFile, config: Any, progress: bool = True) -> dict[str, torch.Tensor]:
    """A parsed GGUF file and its GPTConfig in, the labkit state dict (float32, tied matrix once) out.

    progress: show a progress bar on stderr while tensors are dequantized.
    """
    plan = {"token_embd.weight": "wte.weight", "output_norm.weight": "ln_f.weight"}
    if not config.tie_embeddings:
        plan["output.weight"] = "lm_head.weight"
    for i in range(config.n_layer):
        for src, dst in GGUF_WEIGHT_NAMES.items():
            plan[f"blk.{i}.{src}"] = f"blocks.{i}.{dst}"
    missing = [name for name in plan if name not in file.tensors]
    if missing:
        raise InvalidInputError(f"{file.path.name} lacks tensors {missing[:3]}; is it a complete Llama GGUF file?")
    from tqdm import tqdm

    state = {}
    bar = tqdm(
        plan.items(),
        desc=f"converting {file.path.name}",
        unit="tensor",
        file=sys.stderr,
        disable=not progress,
        mininterval=0.5,
    )
    for src, dst in bar:
        w = file.tensor(src)
        if src.endswith("attn_q.weight"):
            w = _unpermute(w, config.n_head)
        elif src.endswith("attn_k.weight"):
            w = _unpermute(w, config.n_kv_head or config.n_head)
        state[dst] = w.contiguous()
    return state


def byte_alphabet() -> dict[int, str]:
    """GPT-2's byte-level alphabet: each byte 0..255 in, the printable character that spells it in vocabularies out.

    Bytes that are printable Latin-1 characters stand for themselves; the others take the characters from
    U+0100 on, in byte order, so that no vocabulary entry contains whitespace or control characters.
    """
    keep = {*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1), *range(ord("\u00ae"), 256)}
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


def gguf_tokenizer(file: GGUFFile) -> Any:
    """A parsed GGUF file in, a labkit Tokenizer with the file's vocabulary, special roles and chat template out."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    from labkit.data import Tokenizer as LabkitTokenizer

    md = file.metadata
    kind, pre = md.get("tokenizer.ggml.model"), md.get("tokenizer.ggml.pre", "default")
    tokens = md.get("tokenizer.ggml.tokens")
    if not tokens:
        raise InvalidInputError(f"{file.path.name} carries no tokenizer (no tokenizer.ggml.tokens)")
    if kind != "gpt2" or pre not in _BYTE_LEVEL_PRE or "tokenizer.ggml.merges" not in md:
        return _tokenizer_via_transformers(file)
    alphabet = set(byte_alphabet().values())
    spell = byte_alphabet()
    # a token written outside the byte alphabet (a mislabelled one) is respelled from its UTF-8 bytes
    vocab = {t if set(t) <= alphabet else "".join(spell[b] for b in t.encode("utf-8")): i for i, t in enumerate(tokens)}
    merges = [tuple(m.split(" ", 1)) for m in md["tokenizer.ggml.merges"]]
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    types = md.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    # 3 = control (special, kept whole), 4 = user-defined (kept whole, decoded as text)
    backend.add_special_tokens(
        [AddedToken(t, normalized=False, special=True) for t, k in zip(tokens, types) if k == 3 and set(t) <= alphabet]
    )
    backend.add_tokens([AddedToken(t, normalized=False, special=False) for t, k in zip(tokens, types) if k == 4])
    roles = {}
    for role, field in (
        ("bos", "bos_token_id"),
        ("eos", "eos_token_id"),
        ("unk", "unknown_token_id"),
        ("pad", "padding_token_id"),
    ):
        idx = md.get(f"tokenizer.ggml.{field}")
        if isinstance(idx, int) and 0 <= idx < len(tokens):
            roles[role] = tokens[idx]
    if md.get("tokenizer.ggml.add_bos_token") and "bos" in roles:
        bos = roles["bos"]
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, vocab[bos])]
        )
    else:
        backend.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B:1", special_tokens=[])
    return LabkitTokenizer(backend, "pretrained", roles, chat_template=md.get("tokenizer.chat_template"))


def _tokenizer_via_transformers(file: GGUFFile) -> Any:
    """Vocabularies labkit does not rebuild itself (SentencePiece, other pre-tokenizers): transformers' converter."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise MissingSourceError(
            f"{file.path.name} has a {file.metadata.get('tokenizer.ggml.model')!r} tokenizer, which labkit converts "
            "through transformers; run: pip install 'labkit[pretrained]'"
        ) from None
    from labkit.data import Tokenizer as LabkitTokenizer

    hf = AutoTokenizer.from_pretrained(str(file.path.parent), gguf_file=file.path.name)
    roles = {r: getattr(hf, f"{r}_token") for r in ("bos", "eos", "unk", "pad") if getattr(hf, f"{r}_token", None)}
    template = hf.chat_template if isinstance(getattr(hf, "chat_template", None), str) else None
    return LabkitTokenizer(hf.backend_tokenizer, "pretrained", roles, chat_template=template)
