"""bertviz's neuron view, offline: a cache with queries, keys and attention in, bertviz's own page out.

The neuron view (Vig, 2019) opens one head: for the query token under the mouse it draws the query vector q,
every key vector k, their elementwise product q x k, the scaled dot product q.k/sqrt(d) and the softmax, so
the reader sees the attention formula computed on real vectors. bertviz computes those vectors with its own
copies of old BERT/GPT-2 classes; here they come from any labkit model's hook points (`hook_q`, `hook_k`,
`hook_pattern`), and bertviz's installed `neuron_view.js` draws them. The page is made offline the same way
as the head and model views (`labkit.viz.bertviz`): require.js, d3 and jQuery inlined from the vendored
copies, bertviz's CDN `require.config` removed, the data written as script-safe JSON (tokens are only ever
set with d3's `.text()`), and the whole page put in an `<iframe srcdoc>`.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from labkit.errors import InvalidInputError, MissingSourceError
from labkit.frontend import json_for_script
from labkit.viz.attention import _tokens, attention_tensor
from labkit.viz.bertviz import _REQUIRE_CONFIG, _RESIZE, WARN_BYTES, BertvizView, _prettify, _vendor_scripts

__all__ = ["bertviz_neuron_view"]

_ROOT = "bertviz-neuron"
# the controls bertviz's script fills in (it looks them up by these ids inside the root element)
_MARKUP = (
    f'<div id="{_ROOT}" style="padding:8px;font-family:\'Helvetica Neue\', Helvetica, Arial, sans-serif;">'
    '<span style="user-select:none"><span class="dropdown-label">Layer: </span><select id="layer"></select> '
    '<span class="dropdown-label">Head: </span><select id="att_head"></select></span><div id="vis"></div></div>'
)


def _script() -> str:
    spec = importlib.util.find_spec(
        "bertviz"
    )  # the file only: importing bertviz pulls in IPython and seconds of imports
    path = Path(list(spec.submodule_search_locations)[0]) / "neuron_view.js" if spec else None
    if path is None or not path.is_file():
        raise MissingSourceError(
            "bertviz is not installed; run: pip install 'bertviz>=1.4,<1.5' (or use labkit.viz.qk_view)"
        )
    code, n = _REQUIRE_CONFIG.subn("", path.read_text(encoding="utf-8"), count=1)
    if n != 1 or "requirejs(['jquery', 'd3']" not in code:
        raise InvalidInputError(
            "bertviz's neuron_view.js does not have the layout labkit expects; install bertviz 1.4.x"
        )
    return code.replace("</script", "<\\/script")


def _vectors(cache: Mapping, name: str, n_layer: int, heads: int, batch_index: int, stack: str | None) -> list:
    out = []
    for i in range(n_layer):
        key = f"{stack + '.' if stack else ''}blocks.{i}.attn.{name}"
        if key not in cache:
            raise InvalidInputError(
                f"the neuron view needs {key} in the cache; capture it with model.run_with_cache(ids, "
                "names=lambda n: n.endswith(('hook_q', 'hook_k', 'hook_pattern')))"
            )
        t = cache[key].detach().float().cpu()
        if t.dim() == 4:
            if not 0 <= batch_index < t.shape[0]:
                raise InvalidInputError(f"batch_index {batch_index} is out of range for {key} (batch {t.shape[0]})")
            t = t[batch_index]
        t = t.transpose(0, 1)  # [pos, head, d_head] -> [head, pos, d_head]
        if t.shape[0] != heads:  # grouped-query attention: each key head serves heads / kv_heads query heads
            t = t.repeat_interleave(heads // t.shape[0], dim=0)
        out.append(t)
    return out


def bertviz_neuron_view(
    cache: Mapping,
    tokens: Sequence[str] | None = None,
    *,
    layer: int = 0,
    head: int = 0,
    display_mode: str = "dark",
    decimals: int | None = 4,
    stack: str | None = None,
    batch_index: int = 0,
    warn_bytes: int = WARN_BYTES,
) -> BertvizView:
    """A cache with hook_q, hook_k and hook_pattern for every layer, and tokens in, bertviz's neuron view out.

    layer / head: the head shown first (the page has selectors for all). display_mode: "dark" or "light".
    decimals: round the numbers in the page (None keeps full precision, a larger page). stack: "encoder" or
    "decoder" for a Seq2Seq cache. batch_index: which example of a batch. warn_bytes: warn above this page size.
    Causal (decoder) attention is detected from the pattern and drawn as bertviz draws GPT-2.
    """
    if not isinstance(cache, Mapping):
        raise InvalidInputError(
            f"bertviz_neuron_view needs an ActivationCache (hook name -> tensor), got {type(cache).__name__}"
        )
    if display_mode not in ("dark", "light"):
        raise InvalidInputError(f"display_mode {display_mode!r} must be 'dark' or 'light'")
    if decimals is not None and (isinstance(decimals, bool) or not isinstance(decimals, int) or not 1 <= decimals <= 8):
        raise InvalidInputError(f"decimals must be None (full precision) or an int in 1..8, got {decimals!r}")
    attention = attention_tensor(cache, stack=stack, batch_index=batch_index)  # [layer, head, q, k]
    L, H, T, K = attention.shape
    if T != K:
        raise InvalidInputError("the neuron view draws self-attention; this cache's attention is not square")
    for name, value, n in (("layer", layer, L), ("head", head, H)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
            raise InvalidInputError(f"{name} {value!r} is out of range; choose 0..{n - 1}")
    toks = [_prettify(t) for t in _tokens(tokens, T, "key")]
    queries = _vectors(cache, "hook_q", L, H, batch_index, stack)
    keys = _vectors(cache, "hook_k", L, H, batch_index, stack)
    if queries[0].shape[1] != T:
        raise InvalidInputError(f"hook_q has {queries[0].shape[1]} positions but the attention has {T}")
    causal = bool((attention.triu(1) == 0).all())

    def numbers(t: torch.Tensor) -> list:
        return (t.round(decimals=decimals) if decimals is not None else t).tolist()

    params = {
        "attention": {
            "all": {
                "attn": numbers(attention),
                "left_text": toks,
                "right_text": toks,
                "queries": [numbers(q) for q in queries],
                "keys": [numbers(k) for k in keys],
            }
        },
        "default_filter": "all",
        "root_div_id": _ROOT,
        "bidirectional": not causal,
        "display_mode": display_mode,
        "layer": layer,
        "head": head,
    }
    background, color = ("#000", "#ccc") if display_mode == "dark" else ("#fff", "#000")
    page = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>bertviz neuron view</title>'
        f"<style>body{{margin:0;padding:4px;background:{background};color:{color}}}</style>"
        f"{_vendor_scripts()}</head><body>{_MARKUP}"
        f"<script>window.bertviz_params = {json_for_script(params)};</script>"
        f"<script>{_script()}</script><script>{_RESIZE}</script></body></html>"
    )
    selected = attention[layer : layer + 1, head : head + 1]  # the static fallback draws the head shown first
    view = BertvizView("neuron", page, selected, toks, 0, min(4000, 160 + math.ceil(26 * T)))
    if view.nbytes > warn_bytes:
        warnings.warn(
            f"bertviz neuron view page is {view.nbytes / 1e6:.0f} MB; use labkit.viz.qk_view (one head, float16)",
            stacklevel=2,
        )
    return view
