"""bertviz's own head and model views, made to render offline and in JupyterLab 4: labkit attention in, a page out.

bertviz (1.4) emits HTML that loads require.js, d3 5.7.0 and jQuery from a CDN and calls the global
`require`: offline it renders blank, and in JupyterLab 4 (which has no global `require`) it fails with
"require is not defined". This module asks bertviz for its HTML (`html_action='return'`), then rewrites it:

- the CDN `<script src>` and the `require.config({paths: ...})` block are removed;
- d3, jQuery and require.js (pinned copies from `labkit.frontend`, fetched by `labkit vendor fetch`,
  never committed) are inlined once per view: d3 and jQuery first, so they become plain globals, then
  require.js, then `define('d3', ...)` / `define('jquery', ...)` hand those globals to bertviz's `requirejs([...])`;
- bertviz's parameters (its attention JSON) are parsed, tokens are put back (bertviz only ever sees
  placeholders, so hostile token text never reaches its string templates), weights are rounded to
  `decimals`, and the JSON is written with `<`, `>`, `&` escaped so a token cannot end the script;
- the whole page goes into an `<iframe srcdoc>`: its own document, so the inlined require.js/`define`
  cannot clash with a host's AMD loader (Notebook 7, classic Notebook, VS Code) and the host needs no
  script execution of its own. A tiny script in the frame grows the frame to fit its content.

Size: bertviz ships attention as JSON text, and its template writes that JSON twice (once more inside a
comment); labkit drops the copy. Packaged MiniLM (6 layers x 12 heads) at 64 tokens: bertviz's own head
view 13.3 MB; labkit's page 2.4 MB with the default `decimals=4`, 6.7 MB with `decimals=None` (both with
~0.4 MB of libraries). It grows with layers x heads x tokens^2; past `WARN_BYTES` a one-line warning suggests
`labkit.viz.head_view`, which ships float16 binary and stays under 5 MB at 256 tokens.
"""

from __future__ import annotations

import html
import json
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from labkit.checks import check_int
from labkit.errors import InvalidInputError, MissingSourceError
from labkit.frontend import json_for_script, plain_token, safe_text
from labkit.viz.attention import _tokens, attention_tensor, model_view

__all__ = ["to_bertviz", "BertvizView", "bertviz_head_view", "bertviz_model_view", "WARN_BYTES"]

WARN_BYTES = 20_000_000  # a page this large makes a notebook slow to open and save
_LIBRARIES = ("d3.js", "jquery.js", "require.js")  # order matters: plain globals first, then the AMD loader
_AMD_SHIMS = "define('d3',[],function(){return window.d3;});define('jquery',[],function(){return window.jQuery;});"
_CDN_SCRIPT = re.compile(r"<script[^>]*\bsrc=[\"']https?://[^\"']*[\"'][^>]*>\s*</script>", re.I)
_REQUIRE_CONFIG = re.compile(r"require(?:js)?\.config\(\s*\{\s*paths\s*:\s*\{[^{}]*\}\s*,?\s*\}\s*\)\s*;?")
_PARAMS = re.compile(r"const\s+params\s*=\s*")
_PLACEHOLDER = "labkit-token-{}"
# grows the iframe to its content; frameElement is reachable because srcdoc frames share the host's origin
_RESIZE = (
    "(function(){function fit(){try{var f=window.frameElement;if(!f)return;"
    "var sb=Math.max(0,window.innerHeight-document.documentElement.clientHeight);"
    "var h=Math.ceil(document.body.getBoundingClientRect().height)+sb+12;if(Math.abs(f.offsetHeight-h)>2)f.style.height=h+'px';}"
    "catch(e){}}fit();if(window.ResizeObserver)new ResizeObserver(fit).observe(document.body);"
    "window.addEventListener('load',fit);setTimeout(fit,300);})();"
)


def to_bertviz(
    attention: Any,
    tokens: Sequence[str] | None = None,
    *,
    stack: str | None = None,
    cross: bool = False,
    batch_index: int = 0,
) -> tuple[tuple[torch.Tensor, ...], list[str]]:
    """Any attention source labkit reads in, bertviz's input out: (tuple of [1, head, q, k] tensors per layer, tokens).

    attention: an `ActivationCache` with `blocks.{i}.attn.hook_pattern`, a model output with `attentions`
    (labkit or Hugging Face), Hugging Face's `output_attentions` tuple, or the [layer, head, q, k] tensor of
    `labkit.viz.attention.attention_tensor`. tokens: one string per key position (default "0", "1", ...).
    stack / cross / batch_index: which stack of a Seq2Seq cache, cross-attention, and which example of a batch.
    """
    t = attention_tensor(attention, stack=stack, cross=cross, batch_index=batch_index)
    toks = _tokens(tokens, t.shape[3], "key")
    if not cross and t.shape[2] != t.shape[3]:
        raise InvalidInputError(
            f"self-attention must be square, got {t.shape[2]} queries x {t.shape[3]} keys; pass cross=True for cross-attention"
        )
    return tuple(layer.unsqueeze(0) for layer in t), toks


def _prettify(tok: str) -> str:
    # the same clean-up bertviz applies (GPT-2's "Ġ" space marker, SentencePiece's "▁", BPE's "</w>")
    return tok.replace("\u0120", " ").replace("\u2581", " ").replace("</w>", "")


@dataclass
class BertvizView:
    """bertviz's head or model view as a self-contained page; display it, `save_html(path)` it, or read `page`."""

    kind: str  # "head" | "model" | "neuron"
    page: str = field(repr=False)  # the full HTML document that runs bertviz (put in the iframe's srcdoc)
    attention: torch.Tensor = field(repr=False)  # float32 [layer, head, q, k], for the static fallback
    tokens: list[str] = field(default_factory=list)
    bertviz_bytes: int = 0  # size of the HTML bertviz itself returned (CDN links, full-precision JSON)
    height: int = 600  # initial frame height in pixels (the frame then fits its content)

    @property
    def nbytes(self) -> int:
        """Size of the page in bytes (UTF-8), libraries included."""
        return len(self.page.encode("utf-8"))

    def summary(self) -> str:
        """A text/plain summary: shapes, page size, tokens (escaped)."""
        L, H, Q, K = self.attention.shape
        toks = " ".join(plain_token(t) for t in self.tokens[:24]) + (" ..." if len(self.tokens) > 24 else "")
        own = f" (bertviz's own output {self.bertviz_bytes:,} bytes)" if self.bertviz_bytes else ""
        return (
            f"BertvizView({self.kind}): {L} layers x {H} heads, {Q} x {K} tokens; page {self.nbytes:,} bytes{own}"
            f"\n  tokens: {toks}"
        )

    def __repr__(self) -> str:
        return self.summary()

    def to_svg(self, standalone: bool = True) -> str:
        """The static fallback: labkit's SVG heatmap of layer 0, mean over heads, with escaped token labels.

        standalone: include the SVG namespace declaration (needed for an .svg file, not inside HTML).
        """
        return _mean_heatmap_svg(self.attention, self.tokens, self.kind, standalone)

    def to_html(self) -> str:
        """An HTML fragment: an `<iframe srcdoc>` holding the page (isolated from the host's scripts)."""
        return (
            f'<iframe class="labkit-bertviz labkit-bertviz-{self.kind}" srcdoc="{html.escape(safe_text(self.page), quote=True)}" '
            f'style="width:100%;height:{self.height}px;border:0;overflow:auto" '
            f'title="bertviz {self.kind} view"></iframe>'
        )

    def save_html(self, path: str | Path) -> Path:
        """Write the page as a standalone HTML file (works offline, from disk) and return its path."""
        from labkit.checks import check_output_file

        path = check_output_file("path", path)
        path.write_text(safe_text(self.page), encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        return self.to_html()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": safe_text(self.summary()), "text/html": self.to_html(), "image/svg+xml": self.to_svg()}


def _mean_heatmap_svg(t: torch.Tensor, tokens: list[str], kind: str, standalone: bool) -> str:
    # labkit's own fallback: layer 0, mean over heads (only layer 0 is packed: the SVG needs nothing else)
    return model_view(t[:1], tokens, title=f"bertviz {kind} view").to_svg(standalone=standalone)


def _vendor_scripts() -> str:
    from labkit.frontend import vendor_text

    parts = []
    for name in _LIBRARIES:
        # none of the pinned files contains "</script"; the replacement only guards a future version
        code = re.sub(r"</(script)", r"<\\/\1", vendor_text(name), flags=re.I)
        parts.append(f"<script>{code}</script>")
    return "".join(parts) + f"<script>{_AMD_SHIMS}</script>"


def _check_layers(name: str, values: Sequence[int] | None, n: int) -> list[int] | None:
    if values is None:
        return None
    values = list(values)
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n]
    if bad or not values:
        raise InvalidInputError(f"{name} {values!r} must be a non-empty list of indices in 0..{n - 1}")
    return values


def _rewrite(raw: str, tokens: list[str], decimals: int | None) -> str:
    """bertviz's HTML (made with placeholder tokens) in, the body of an offline page out (see module docstring)."""
    body = _CDN_SCRIPT.sub("", raw)
    body, n_config = _REQUIRE_CONFIG.subn("", body)
    m = _PARAMS.search(body)
    if n_config != 1 or m is None:
        raise InvalidInputError(
            "bertviz's HTML does not have the layout labkit rewrites (require.config + const params); "
            "install bertviz 1.4.x (pip install 'bertviz>=1.4,<1.5')"
        )
    params, end = json.JSONDecoder().raw_decode(body, m.end())
    lookup = {_PLACEHOLDER.format(i): _prettify(t) for i, t in enumerate(tokens)}

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            return lookup.get(value, value)
        if isinstance(value, float):
            return round(value, decimals) if decimals is not None else value
        if isinstance(value, list):
            return [fix(v) for v in value]
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        return value

    # bertviz's template names PYTHON_PARAMS again in the trailing comment, so its JSON is there a second time
    rest = re.sub(r"^\s*;[ \t]*//[^\n]*", ";", body[end:], count=1)
    body = body[: m.end()] + json_for_script(fix(params)) + rest
    if re.search(r"[\"'(=]\s*https?://", body):  # a URL in code or markup (the licence comment may keep one)
        raise InvalidInputError("bertviz's HTML still refers to a URL after the rewrite; install bertviz 1.4.x")
    return body


def _render(
    kind: str,
    attention: Any,
    tokens: Sequence[str] | None,
    options: dict,
    stack: str | None,
    batch_index: int,
    decimals: int | None,
    warn_bytes: int,
) -> BertvizView:
    layers, toks = to_bertviz(attention, tokens, stack=stack, batch_index=batch_index)
    L, H, T = len(layers), layers[0].shape[1], layers[0].shape[-1]
    check_int("decimals", decimals, high=8, allow_none=True, fix="None keeps full precision")
    check_int("sentence_b_start", options.get("sentence_b_start"), high=T - 1, allow_none=True)
    options["include_layers"] = _check_layers("include_layers", options.get("include_layers"), L)
    if kind == "model":
        options["include_heads"] = _check_layers("include_heads", options.get("include_heads"), H)
    else:
        options["heads"] = _check_layers("heads", options.get("heads"), H)
        layer = options.get("layer")
        shown = options["include_layers"] if options["include_layers"] is not None else list(range(L))
        if layer is not None and layer not in shown:
            raise InvalidInputError(f"layer {layer!r} is not among the shown layers {shown}; pick one of them")
    scripts = _vendor_scripts()  # fails first (one line: run labkit vendor fetch) when the libraries are missing
    try:
        import bertviz  # imports IPython and torch; only needed here
    except ImportError:
        raise MissingSourceError(
            "bertviz is not installed; run: pip install 'bertviz>=1.4,<1.5' (or use labkit.viz.head_view)"
        ) from None

    render = bertviz.head_view if kind == "head" else bertviz.model_view
    placeholders = [_PLACEHOLDER.format(i) for i in range(T)]
    raw = render(list(layers), placeholders, prettify_tokens=False, html_action="return", **options).data
    body = _rewrite(raw, toks, decimals)
    page = (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>bertviz {kind} view</title>'
        f"<style>body{{margin:0;padding:4px;background:{'#000' if options.get('display_mode') == 'dark' else '#fff'};"
        f"color:{'#ccc' if options.get('display_mode') == 'dark' else '#000'}}}</style>"
        f"{scripts}</head><body>{body}<script>{_RESIZE}</script></body></html>"
    )
    n_layers = len(options["include_layers"] or range(L))
    n_heads = len(options.get("include_heads") or range(H))
    # first guess of the frame height; the frame then fits itself (head view: one row per token; model view: a grid)
    height = 80 + math.ceil(22.5 * T) if kind == "head" else 60 + math.ceil(n_layers * (970 / (n_heads + 1) + 10))
    view = BertvizView(
        kind, page, torch.stack([x[0] for x in layers]), toks, len(raw.encode("utf-8")), min(height, 4000)
    )
    if view.nbytes > warn_bytes:
        warnings.warn(
            f"bertviz {kind} view page is {view.nbytes / 1e6:.0f} MB (bertviz sends attention as JSON); "
            "use labkit.viz.head_view / model_view (float16 binary, < 5 MB) or include_layers=[...]",
            stacklevel=3,
        )
    return view


def bertviz_head_view(
    attention: Any,
    tokens: Sequence[str] | None = None,
    *,
    layer: int | None = None,
    heads: Sequence[int] | None = None,
    include_layers: Sequence[int] | None = None,
    sentence_b_start: int | None = None,
    decimals: int | None = 4,
    stack: str | None = None,
    batch_index: int = 0,
    warn_bytes: int = WARN_BYTES,
) -> BertvizView:
    """Attention (cache, HF output or tuple, or tensor) and tokens in, bertviz's head view as an offline `BertvizView` out.

    layer / heads: initially selected layer and heads (bertviz's arguments). include_layers: show only these
    layers (smaller page). sentence_b_start: index of the first token of sentence B (adds bertviz's filter).
    decimals: round weights to this many decimals in the JSON (4 keeps them visually identical; None keeps bertviz's
    full precision, about 2.8x larger). stack / batch_index: see `to_bertviz`. warn_bytes: warn above this page size.
    """
    options = dict(layer=layer, heads=heads, include_layers=include_layers, sentence_b_start=sentence_b_start)
    return _render("head", attention, tokens, options, stack, batch_index, decimals, warn_bytes)


def bertviz_model_view(
    attention: Any,
    tokens: Sequence[str] | None = None,
    *,
    include_layers: Sequence[int] | None = None,
    include_heads: Sequence[int] | None = None,
    sentence_b_start: int | None = None,
    display_mode: str = "dark",
    decimals: int | None = 4,
    stack: str | None = None,
    batch_index: int = 0,
    warn_bytes: int = WARN_BYTES,
) -> BertvizView:
    """Attention and tokens in, bertviz's model view (every layer x head thumbnail) as an offline `BertvizView` out.

    include_layers / include_heads: show only these (the page shrinks accordingly). display_mode: "dark" or "light".
    Other parameters as in `bertviz_head_view`.
    """
    if display_mode not in ("dark", "light"):
        raise InvalidInputError(f"display_mode {display_mode!r} must be 'dark' or 'light'")
    options = dict(
        include_layers=include_layers,
        include_heads=include_heads,
        sentence_b_start=sentence_b_start,
        display_mode=display_mode,
    )
    return _render("model", attention, tokens, options, stack, batch_index, decimals, warn_bytes)
