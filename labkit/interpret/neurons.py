"""Neuron activations: what an MLP hidden unit responds to over a corpus, and which tokens it pushes up.

An MLP computes `W_out act(W_in x)`; unit `i` of the hidden layer (hook `blocks.{l}.mlp.hook_post`, after the
activation; for SwiGLU, `silu(gate) * up`) writes `a_i * W_out[:, i]` into the residual stream. Two ways to
read a unit:

- input side: record `a_i` on every token of a corpus and list the contexts where it is largest;
- output side: push `W_out[:, i]` through the final norm's gain and the unembedding; the tokens with the largest
  (smallest) scores are the ones the unit promotes (suppresses) directly. This ignores the norm's per-token
  scale and everything the later layers do with the vector, so it is a first look, not the whole story.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from labkit.checks import check_int
from labkit.errors import InvalidInputError
from labkit.interpret.common import as_batch, decoder_parts, eval_mode, n_layers, token_texts

__all__ = ["NeuronActivations", "Context", "neuron_activations", "neuron_logit_effect", "TokenEffect"]


@dataclass
class Context:
    """One place in the corpus where a neuron fired: the text, the position, the activation and the tokens around it."""

    text_index: int
    position: int
    activation: float
    tokens: list[str]  # a window of tokens around the position
    activations: list[float]  # the neuron's activation on each token of the window
    center: int  # index of `position` inside the window


@dataclass
class NeuronActivations:
    """One layer's MLP hidden activations over a corpus: `acts[i]` is [seq_i, n_inner] for text i, with its tokens."""

    layer: int
    acts: list[torch.Tensor]  # per text: [seq_i, n_inner] float32
    tokens: list[list[str]]  # per text: its tokens' text

    @property
    def n_neurons(self) -> int:
        """Width of the MLP hidden layer."""
        return int(self.acts[0].shape[-1])

    def _neuron(self, neuron: int) -> int:
        return check_int(
            "neuron", neuron, low=0, high=self.n_neurons - 1, fix=f"layer {self.layer} has {self.n_neurons} MLP units"
        )

    def of(self, neuron: int) -> list[torch.Tensor]:
        """One neuron's activation on every token, as one [seq_i] tensor per text."""
        n = self._neuron(neuron)
        return [a[:, n] for a in self.acts]

    def top_contexts(self, neuron: int, k: int = 10, window: int = 8) -> list[Context]:
        """The k tokens (across the corpus) where the neuron is largest, each with `window` tokens either side."""
        n = self._neuron(neuron)
        k = check_int("k", k, low=1)
        window = check_int("window", window, low=0)
        flat = torch.cat([a[:, n] for a in self.acts])
        owners = torch.cat([torch.full((a.size(0),), i) for i, a in enumerate(self.acts)])
        starts = torch.tensor([0] + [a.size(0) for a in self.acts]).cumsum(0)
        out = []
        for j in flat.topk(min(k, flat.numel())).indices.tolist():
            i = int(owners[j])
            pos = j - int(starts[i])
            lo, hi = max(0, pos - window), min(len(self.tokens[i]), pos + window + 1)
            out.append(
                Context(i, pos, float(flat[j]), self.tokens[i][lo:hi], self.acts[i][lo:hi, n].tolist(), pos - lo)
            )
        return out

    def strongest(self, k: int = 10) -> list[tuple[int, float]]:
        """The k neurons with the largest maximum activation over the corpus, as (neuron, max activation)."""
        peak = torch.stack([a.max(0).values for a in self.acts]).max(0).values
        top = peak.topk(min(check_int("k", k, low=1), peak.numel()))
        return list(zip(top.indices.tolist(), top.values.tolist()))

    def selectivity(self) -> torch.Tensor:
        """Per neuron: (max activation) / (mean |activation|) over all tokens: high = fires rarely and strongly."""
        allacts = torch.cat(self.acts)
        return allacts.max(0).values / allacts.abs().mean(0).clamp_min(1e-8)


def neuron_activations(
    model: Any,
    texts: Any,
    *,
    layer: int,
    tokenizer: Any = None,
    max_length: int = 64,
    batch_size: int = 16,
) -> NeuronActivations:
    """A model, texts (with a tokenizer) or id sequences, and a layer in, that layer's MLP activations on every token out.

    texts: a list of strings (needs tokenizer) or of id lists / 1-D tensors. max_length: tokens kept per text.
    batch_size: texts per forward pass (texts run unpadded in groups of equal length, so masks never matter).
    """
    L = n_layers(model)
    layer = check_int("layer", layer, low=-L, high=L - 1, fix=f"the model has {L} blocks") % L
    max_length = check_int("max_length", max_length, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    if isinstance(texts, (str, torch.Tensor)) or not hasattr(texts, "__iter__"):
        texts = [texts]
    sequences: list[list[int]] = []
    for i, t in enumerate(texts):
        if isinstance(t, str):
            if tokenizer is None:
                raise InvalidInputError("texts are strings; pass tokenizer= to encode them (or pass id lists)")
            ids = tokenizer.encode(t, add_special_tokens=False)
        else:
            ids = as_batch(t, f"texts[{i}]", batch=False)[0].tolist()
        if not ids:
            raise InvalidInputError(f"texts[{i}] has no tokens; drop empty texts")
        sequences.append(ids[:max_length])
    if not sequences:
        raise InvalidInputError("no texts given; pass at least one text")
    name = f"blocks.{layer}.mlp.hook_post"
    acts: list[torch.Tensor | None] = [None] * len(sequences)
    by_len: dict[int, list[int]] = {}
    for i, s in enumerate(sequences):
        by_len.setdefault(len(s), []).append(i)
    with torch.no_grad(), eval_mode(model):
        for group in by_len.values():
            for start in range(0, len(group), batch_size):
                idx = group[start : start + batch_size]
                ids = torch.tensor([sequences[i] for i in idx])
                _, cache = model.run_with_cache(ids, names=[name])
                for row, i in enumerate(idx):
                    acts[i] = cache[name][row].float().clone()
    return NeuronActivations(layer, acts, [token_texts(tokenizer, s) for s in sequences])  # type: ignore[arg-type]


@dataclass
class TokenEffect:
    """Tokens a neuron pushes up (`promoted`) and down (`suppressed`) directly, as (token text, score) pairs."""

    layer: int
    neuron: int
    promoted: list[tuple[str, float]]
    suppressed: list[tuple[str, float]]
    promoted_ids: list[int]
    suppressed_ids: list[int]


def neuron_logit_effect(model: Any, layer: int, neuron: int, *, tokenizer: Any = None, k: int = 10) -> TokenEffect:
    """A GPT, a layer and an MLP unit in, the tokens its output weights promote and suppress through the unembedding out.

    Score of token t: `W_U[t] . (g * w)` with `w` the unit's column of the MLP output matrix (centred first
    for LayerNorm) and `g` the final norm's gain.
    """
    norm, head = decoder_parts(model, "neuron_logit_effect")
    L = n_layers(model)
    layer = check_int("layer", layer, low=-L, high=L - 1) % L
    fc_out = model.blocks[layer].mlp.fc_out
    neuron = check_int(
        "neuron", neuron, low=0, high=fc_out.in_features - 1, fix=f"layer {layer} has {fc_out.in_features} MLP units"
    )
    k = check_int("k", k, low=1)
    with torch.no_grad():
        w = fc_out.weight[:, neuron].float()
        if isinstance(norm, torch.nn.LayerNorm):
            w = w - w.mean()
        gain = getattr(norm, "weight", None)
        if gain is not None:
            w = w * gain.float()
        scores = head.weight.float() @ w
    up, down = scores.topk(min(k, scores.numel())), (-scores).topk(min(k, scores.numel()))
    return TokenEffect(
        layer,
        neuron,
        list(zip(token_texts(tokenizer, up.indices), up.values.tolist())),
        list(zip(token_texts(tokenizer, down.indices), (-down.values).tolist())),
        up.indices.tolist(),
        down.indices.tolist(),
    )
