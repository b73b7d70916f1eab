"""KVCache: preallocated per-layer key/value buffers for fast incremental decoding."""

from __future__ import annotations

import torch

from labkit.checks import check_int
from labkit.errors import InvalidInputError

__all__ = ["KVCache"]


class KVCache:
    """Per-layer key/value buffers [batch, n_kv_head, max_len, d_head]; new steps are written in place.

    n_layer: number of attention layers. max_len: initial capacity in positions (buffers double when
    exceeded, so generation never re-concatenates the whole past each step).
    """

    def __init__(self, n_layer: int, max_len: int = 256) -> None:
        check_int("n_layer", n_layer)
        check_int("max_len", max_len)
        self.n_layer = n_layer
        self.max_len = max_len
        self._k: list[torch.Tensor | None] = [None] * n_layer
        self._v: list[torch.Tensor | None] = [None] * n_layer
        self._len = [0] * n_layer

    @property
    def seq_len(self) -> int:
        """Number of cached positions (of layer 0, which is updated first in a forward pass)."""
        return self._len[0]

    def get_seq_length(self, layer: int = 0) -> int:
        """Layer index in, number of positions cached for it out (Hugging Face's name)."""
        return self._len[layer]

    def __len__(self) -> int:
        return self.n_layer

    def _grow(self, layer: int, needed: int) -> None:
        k, v = self._k[layer], self._v[layer]
        cap = k.size(2)
        new_cap = max(needed, 2 * cap)
        for store, old in ((self._k, k), (self._v, v)):
            buf = old.new_empty(old.size(0), old.size(1), new_cap, old.size(3))
            buf[:, :, : self._len[layer]] = old[:, :, : self._len[layer]]
            store[layer] = buf

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append new keys/values [batch, n_kv_head, new, d_head] for `layer`; return all of them (views) so far."""
        if not 0 <= layer < self.n_layer:
            raise InvalidInputError(f"layer {layer} out of range for a KVCache of {self.n_layer} layers")
        start, new = self._len[layer], k.size(2)
        if self._k[layer] is None:
            shape = (k.size(0), k.size(1), max(self.max_len, new), k.size(3))
            self._k[layer] = k.new_empty(shape)
            self._v[layer] = v.new_empty(shape)
        elif self._k[layer].size(0) != k.size(0):
            raise InvalidInputError(
                f"KVCache holds batch {self._k[layer].size(0)} but got keys for batch {k.size(0)}; start a new cache"
            )
        elif start + new > self._k[layer].size(2):
            self._grow(layer, start + new)
        self._k[layer][:, :, start : start + new] = k
        self._v[layer][:, :, start : start + new] = v
        self._len[layer] = start + new
        return self._k[layer][:, :, : start + new], self._v[layer][:, :, : start + new]

    def get(self, layer: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Layer index in, its cached (keys, values) views out, or None when empty (cross-attention reuse)."""
        if self._k[layer] is None or self._len[layer] == 0:
            return None
        n = self._len[layer]
        return self._k[layer][:, :, :n], self._v[layer][:, :, :n]

    def reorder(self, beam_indices: torch.Tensor) -> None:
        """Batch indices [new_batch] in; rows of every buffer are gathered in that order (beam search)."""
        for store in (self._k, self._v):
            for i, buf in enumerate(store):
                if buf is not None:
                    store[i] = buf.index_select(0, beam_indices.to(buf.device))

    def crop(self, n: int) -> None:
        """Keep only the first n cached positions (e.g. to roll back speculative or rejected tokens)."""
        check_int("crop length", n, low=0)
        self._len = [min(length, n) for length in self._len]

    def __repr__(self) -> str:
        return f"KVCache(n_layer={self.n_layer}, seq_len={self.seq_len})"
