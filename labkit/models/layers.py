"""The shared Transformer ladder: norms, positions, MultiHeadAttention, MLPs and a pre-/post-LN Block.

Shapes follow one convention: activations are [batch, pos, n_embd]; per-head
tensors on hook points are [batch, pos, head, d_head]; attention scores and
patterns are [batch, head, q_pos, k_pos]. Softmax and norm statistics run in
fp32 even under autocast, so bf16/fp16 training stays stable.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from labkit.errors import InvalidInputError, UnknownNameError, close_matches
from labkit.models.hooks import HookPoint
from labkit.models.kv_cache import KVCache

__all__ = [
    "ACTIVATIONS",
    "RMSNorm",
    "make_norm",
    "RotaryEmbedding",
    "apply_rotary",
    "sinusoidal_positions",
    "SinusoidalPositions",
    "MultiHeadAttention",
    "MLP",
    "SwiGLUMLP",
    "make_mlp",
    "Block",
    "is_tracing",
]


def is_tracing() -> bool:
    """True while torch.jit traces or torch.export (and so torch.onnx.export) captures the model.

    Model code then takes paths that hold for every input size: no Python branch on a size, no host-side checks.
    """
    return torch.jit.is_tracing() or torch.compiler.is_exporting()


# "gelu_new" is GPT-2's tanh approximation: exact GELU would drift ~1e-4 from GPT-2 weights' outputs.
ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
}


def _activation(name: str):
    if name not in ACTIVATIONS:
        raise UnknownNameError(
            f"unknown activation {name!r}; {close_matches(name, ACTIVATIONS) or 'choose one of ' + ', '.join(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]


class RMSNorm(nn.Module):
    """Root-mean-square norm (Llama): x [..., dim] in, x / rms(x) * weight out, statistics in fp32."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}"


def make_norm(kind: str, dim: int, eps: float = 1e-5, bias: bool = True) -> nn.Module:
    """A norm name ("layernorm" | "rmsnorm") and width in, the norm module out (LayerNorm runs in fp32 under autocast)."""
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return RMSNorm(dim, eps=eps)
    raise UnknownNameError(f"unknown norm {kind!r}; choose 'layernorm' or 'rmsnorm'")


class RotaryEmbedding(nn.Module):
    """Rotary position embedding tables (RoFormer, Llama's half-split layout): position ids in, (cos, sin) out.

    d_head: per-head width (even). theta: base of the frequencies (10000 in RoFormer, 100000 in SmolLM2).
    """

    def __init__(self, d_head: int, theta: float = 10000.0) -> None:
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, d_head, 2, dtype=torch.float32) / d_head))
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # derived, so not saved in checkpoints

    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Position ids [batch, seq] in, (cos, sin) each [batch, seq, d_head] in fp32 out."""
        freqs = position_ids.float().unsqueeze(-1) * self.inv_freq.float().to(position_ids.device)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Queries or keys [batch, head, pos, d_head] and (cos, sin) [batch, pos, d_head] in, rotated x out."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return (x.float() * cos + _rotate_half(x.float()) * sin).to(x.dtype)


def sinusoidal_positions(n_pos: int, dim: int) -> torch.Tensor:
    """Length and width in, the fixed sin/cos position table [n_pos, dim] of Vaswani et al. (2017) out."""
    pos = torch.arange(n_pos, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n_pos, dim)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)[:, : dim // 2]
    return table


class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal positions: position ids [batch, seq] in, embeddings [batch, seq, dim] out."""

    def __init__(self, max_len: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_positions(max_len, dim), persistent=False)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return self.table[position_ids]


class MultiHeadAttention(nn.Module):
    """Multi-head (optionally grouped-query, rotary, cross-) attention: [batch, pos, n_embd] in, same shape out.

    n_embd: model width. n_head: query heads. n_kv_head: key/value heads (None = n_head; fewer = GQA).
    causal: mask future keys. bias: biases on q/k/v/out projections. dropout: on the pattern and the output.
    kv_dim: width of the sequence keys/values come from in cross-attention (None = n_embd).
    layer_idx: which KVCache layer this attention reads and writes.
    Uses torch's fused scaled_dot_product_attention unless the pattern is wanted (output_attentions or a
    hook on hook_scores/hook_pattern); then the explicit path computes the same result.
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        n_kv_head: int | None = None,
        *,
        causal: bool = True,
        bias: bool = True,
        dropout: float = 0.0,
        kv_dim: int | None = None,
        layer_idx: int = 0,
    ) -> None:
        super().__init__()
        self.n_head, self.n_kv_head = n_head, n_kv_head or n_head
        self.d_head = n_embd // n_head
        self.causal, self.dropout, self.layer_idx = causal, dropout, layer_idx
        kv_dim = kv_dim or n_embd
        self.q_proj = nn.Linear(n_embd, n_head * self.d_head, bias=bias)
        self.k_proj = nn.Linear(kv_dim, self.n_kv_head * self.d_head, bias=bias)
        self.v_proj = nn.Linear(kv_dim, self.n_kv_head * self.d_head, bias=bias)
        self.out_proj = nn.Linear(n_head * self.d_head, n_embd, bias=bias)
        self.resid_drop = nn.Dropout(dropout)
        self.hook_q = HookPoint()  # [batch, pos, head, d_head]
        self.hook_k = HookPoint()  # [batch, pos, kv_head, d_head]
        self.hook_v = HookPoint()  # [batch, pos, kv_head, d_head]
        self.hook_scores = HookPoint()  # [batch, head, q_pos, k_pos] scaled, masked logits
        self.hook_pattern = HookPoint()  # [batch, head, q_pos, k_pos] softmax probabilities
        self.hook_z = HookPoint()  # [batch, pos, head, d_head] pattern-weighted values, before out_proj

    def _heads(self, x: torch.Tensor, proj: nn.Linear, n: int, hook: HookPoint) -> torch.Tensor:
        b, t, _ = x.shape
        return hook(proj(x).view(b, t, n, self.d_head)).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        kv_input: torch.Tensor | None = None,
        *,
        attention_mask: torch.Tensor | None = None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        past_key_values: KVCache | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Hidden states [batch, q_pos, n_embd] in, (output [batch, q_pos, n_embd], pattern or None) out.

        kv_input: [batch, k_pos, kv_dim] for cross-attention (None = self-attention).
        attention_mask: key padding [batch, k_pos] (1 = real, 0 = pad; k_pos counts cached keys too), or a
        boolean [batch, 1 | head, q_pos, k_pos] mask (True = may attend). rope: (cos, sin) for the new positions
        (self-attention only).
        past_key_values: a KVCache; self-attention appends to it, cross-attention fills it once and reuses it.
        output_attentions: return the pattern [batch, head, q_pos, k_pos].
        """
        q = self._heads(x, self.q_proj, self.n_head, self.hook_q)
        cross = kv_input is not None
        cached = past_key_values.get(self.layer_idx) if (cross and past_key_values is not None) else None
        if cached is not None:
            k, v = cached
        else:
            src = kv_input if cross else x
            k = self._heads(src, self.k_proj, self.n_kv_head, self.hook_k)
            v = self._heads(src, self.v_proj, self.n_kv_head, self.hook_v)
            if rope is not None and not cross:
                q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
            if past_key_values is not None:
                k, v = past_key_values.update(self.layer_idx, k, v)
        if self.n_kv_head != self.n_head:
            rep = self.n_head // self.n_kv_head
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        explicit = output_attentions or self.hook_pattern.has_hooks or self.hook_scores.has_hooks
        causal = self.causal and not cross
        if is_tracing():
            # a traced or exported graph must hold for every length: no Python branch on a (symbolic) size, and
            # SDPA's is_causal must be a plain bool, so the causal mask is always built from positions
            use_is_causal = False
            mask = self._traceable_mask(q.size(2), k.size(2), attention_mask, causal=causal, device=q.device)
        else:
            # SDPA's own causal mode (flash attention on GPUs skips the masked half) wherever it means the same:
            # no padding and as many queries as keys; otherwise an explicit boolean mask
            use_is_causal = (
                not explicit and causal and attention_mask is None and q.size(2) == k.size(2) and q.size(2) > 1
            )
            mask = (
                None
                if use_is_causal
                else self._mask(q.size(2), k.size(2), attention_mask, causal=causal, device=q.device)
            )
        p = self.dropout if self.training else 0.0
        pattern = None
        if explicit:
            scores = (q.float() @ k.float().transpose(-2, -1)) / math.sqrt(self.d_head)
            if mask is not None:
                scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            pattern = self.hook_pattern(torch.softmax(self.hook_scores(scores), dim=-1))
            z = F.dropout(pattern, p, self.training).to(v.dtype) @ v
        else:
            additive = None
            if mask is not None:
                # an additive mask instead of a boolean one: rows with no visible key (left padding) stay finite
                additive = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(
                    ~mask, torch.finfo(q.dtype).min
                )
            z = F.scaled_dot_product_attention(q, k, v, attn_mask=additive, dropout_p=p, is_causal=use_is_causal)
        b, _, t, _ = z.shape
        z = self.hook_z(z.transpose(1, 2))
        out = self.resid_drop(self.out_proj(z.reshape(b, t, self.n_head * self.d_head)))
        return out, (pattern if output_attentions else None)

    @staticmethod
    def _traceable_mask(
        q_len: Any, k_len: Any, attention_mask: torch.Tensor | None, causal: bool, device: torch.device
    ) -> torch.Tensor | None:
        """The boolean mask of `_mask`, computed from positions with no branch on the lengths (for export)."""
        mask = None
        if causal:
            # the queries are the last q_len of k_len positions: query i sees keys 0 .. k_len - q_len + i
            q_pos = torch.arange(q_len, device=device) + (k_len - q_len)
            mask = (torch.arange(k_len, device=device)[None, :] <= q_pos[:, None])[None, None]
        if attention_mask is not None:
            am = attention_mask.to(device).bool()
            am = am[:, None, None, :] if am.dim() == 2 else am
            mask = am if mask is None else (mask & am)
        return mask

    @staticmethod
    def _mask(
        q_len: int, k_len: int, attention_mask: torch.Tensor | None, causal: bool, device: torch.device
    ) -> torch.Tensor | None:
        """Boolean [batch | 1, 1 | head, q, k] mask (True = may attend), or None when nothing is masked."""
        mask = None
        if causal and not (q_len == 1):
            # queries are the last q_len positions of k_len keys (the rest are cached)
            offset = k_len - q_len
            mask = torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(diagonal=offset)[None, None]
        if attention_mask is not None:
            am = attention_mask.to(device)
            if am.dim() == 2:
                am = am.bool()[:, None, None, :]
            elif am.dim() != 4:
                raise InvalidInputError(
                    f"attention_mask must be [batch, k_pos] or [batch, head, q_pos, k_pos], got shape {tuple(am.shape)}"
                )
            am = am.bool()
            mask = am if mask is None else (mask & am)
        return mask


class MLP(nn.Module):
    """Feed-forward block: [batch, pos, n_embd] in, fc_out(act(fc_in(x))) out. activation: see ACTIVATIONS."""

    def __init__(
        self, n_embd: int, n_inner: int, activation: str = "gelu_new", bias: bool = True, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.act = _activation(activation)
        self.activation = activation
        self.fc_in = nn.Linear(n_embd, n_inner, bias=bias)
        self.fc_out = nn.Linear(n_inner, n_embd, bias=bias)
        self.drop = nn.Dropout(dropout)
        self.hook_pre = HookPoint()  # [batch, pos, n_inner] before the activation
        self.hook_post = HookPoint()  # [batch, pos, n_inner] after the activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc_out(self.hook_post(self.act(self.hook_pre(self.fc_in(x))))))


class SwiGLUMLP(nn.Module):
    """Gated feed-forward (Llama): [batch, pos, n_embd] in, fc_out(silu(fc_gate(x)) * fc_in(x)) out."""

    def __init__(self, n_embd: int, n_inner: int, bias: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc_gate = nn.Linear(n_embd, n_inner, bias=bias)
        self.fc_in = nn.Linear(n_embd, n_inner, bias=bias)
        self.fc_out = nn.Linear(n_inner, n_embd, bias=bias)
        self.drop = nn.Dropout(dropout)
        self.hook_pre = HookPoint()  # [batch, pos, n_inner] gate before silu
        self.hook_post = HookPoint()  # [batch, pos, n_inner] silu(gate) * up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc_out(self.hook_post(F.silu(self.hook_pre(self.fc_gate(x))) * self.fc_in(x))))


def make_mlp(kind: str, n_embd: int, n_inner: int, bias: bool = True, dropout: float = 0.0) -> nn.Module:
    """An MLP kind ("swiglu" or an activation name such as "gelu_new", "gelu", "relu") in, the module out."""
    if kind == "swiglu":
        return SwiGLUMLP(n_embd, n_inner, bias=bias, dropout=dropout)
    return MLP(n_embd, n_inner, activation=kind, bias=bias, dropout=dropout)


class Block(nn.Module):
    """One Transformer layer: [batch, pos, n_embd] in, (same shape, self pattern | None, cross pattern | None) out.

    Pre-LN (GPT, Llama): x + attn(ln_1(x)), then x + mlp(ln_2(x)). Post-LN (BERT, Vaswani): ln_1(x + attn(x)),
    then ln_2(x + mlp(x)). With cross_attention=True a cross-attention sublayer (norm `ln_cross`) sits between.
    n_inner: MLP width (None = 4 * n_embd). mlp: "swiglu" or an activation name. norm: "layernorm" | "rmsnorm".
    attn_dropout: on attention probabilities (None = dropout). kv_dim: width of the cross-attended sequence.
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        *,
        n_kv_head: int | None = None,
        n_inner: int | None = None,
        mlp: str = "gelu_new",
        norm: str = "layernorm",
        norm_eps: float = 1e-5,
        pre_norm: bool = True,
        causal: bool = True,
        bias: bool = True,
        dropout: float = 0.0,
        attn_dropout: float | None = None,
        cross_attention: bool = False,
        kv_dim: int | None = None,
        layer_idx: int = 0,
    ) -> None:
        super().__init__()
        self.pre_norm = pre_norm
        self.ln_1 = make_norm(norm, n_embd, norm_eps, bias)

        def attention(causal: bool, kv_dim: int | None = None) -> MultiHeadAttention:
            attn = MultiHeadAttention(
                n_embd,
                n_head,
                n_kv_head,
                causal=causal,
                bias=bias,
                dropout=dropout if attn_dropout is None else attn_dropout,
                kv_dim=kv_dim,
                layer_idx=layer_idx,
            )
            attn.resid_drop.p = dropout  # attn_dropout is for the probabilities; the sublayer output gets dropout
            return attn

        self.attn = attention(causal)
        if cross_attention:
            self.ln_cross = make_norm(norm, n_embd, norm_eps, bias)
            self.cross_attn = attention(False, kv_dim)
        self.ln_2 = make_norm(norm, n_embd, norm_eps, bias)
        self.mlp = make_mlp(mlp, n_embd, n_inner or 4 * n_embd, bias=bias, dropout=dropout)
        self.hook_resid_pre = HookPoint()  # [batch, pos, n_embd] block input
        self.hook_attn_out = HookPoint()  # [batch, pos, n_embd] attention sublayer output
        self.hook_resid_mid = HookPoint()  # [batch, pos, n_embd] after the attention sublayer(s)
        self.hook_mlp_out = HookPoint()  # [batch, pos, n_embd] MLP output
        self.hook_resid_post = HookPoint()  # [batch, pos, n_embd] block output

    def _sublayer(self, x: torch.Tensor, norm: nn.Module, fn) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pre_norm:
            out = fn(norm(x))
            return x + out, out
        out = fn(x)
        return norm(x + out), out

    def forward(
        self,
        x: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        past_key_values: KVCache | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cross_past_key_values: KVCache | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """See the class docstring; masks/rope/caches are passed to MultiHeadAttention.forward unchanged."""
        x = self.hook_resid_pre(x)
        patterns: list[torch.Tensor | None] = [None, None]

        def self_attn(h: torch.Tensor) -> torch.Tensor:
            out, patterns[0] = self.attn(
                h,
                attention_mask=attention_mask,
                rope=rope,
                past_key_values=past_key_values,
                output_attentions=output_attentions,
            )
            return self.hook_attn_out(out)

        x, _ = self._sublayer(x, self.ln_1, self_attn)
        if encoder_hidden_states is not None:

            def cross_attn(h: torch.Tensor) -> torch.Tensor:
                out, patterns[1] = self.cross_attn(
                    h,
                    encoder_hidden_states,
                    attention_mask=encoder_attention_mask,
                    past_key_values=cross_past_key_values,
                    output_attentions=output_attentions,
                )
                return out

            x, _ = self._sublayer(x, self.ln_cross, cross_attn)
        x = self.hook_resid_mid(x)
        x, _ = self._sublayer(x, self.ln_2, lambda h: self.hook_mlp_out(self.mlp(h)))
        return self.hook_resid_post(x), patterns[0], patterns[1]
