"""The kernel-free interactive page: one offline HTML file in which a reader's own text runs through a small GPT.

`build_page(model, tokenizer, path)` writes a single file holding the model as ONNX (exported with its KV
cache and attention patterns), ONNX Runtime Web (its ES module and WebAssembly, from the npm registry through
`labkit vendor fetch`, never committed), the tokenizer (`widgets/tokenizer.js` plus its spec) and the view
(`widgets/page.js`). Binary parts are gzip-compressed and base64-encoded; the browser decompresses them with
`DecompressionStream`, passes the WebAssembly as `env.wasm.wasmBinary` and the model as bytes, so the page works
from `file://` (where Chromium refuses `fetch`) and never touches the network.
"""

from __future__ import annotations

import base64
import gzip
import html
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from labkit.checks import check_choice, check_output_file
from labkit.errors import InvalidInputError
from labkit.export.onnx import read_onnx_spec, to_onnx
from labkit.export.tokenizer_spec import tokenizer_spec

__all__ = ["PageInfo", "build_page", "PAGE_VENDOR"]

PAGE_VENDOR = ("ort.wasm.mjs", "ort-wasm.wasm")  # labkit.frontend.VENDOR names the page inlines
DEFAULT_PROMPT = "To be, or not to be"


@dataclass(frozen=True)
class PageInfo:
    """What `build_page` wrote: the file, its size and the sizes of its biggest parts (bytes, before base64)."""

    path: Path
    size: int
    model_bytes: int
    runtime_bytes: int
    quantize: str | None

    def _repr_html_(self) -> str:
        """The page itself, inline (an iframe holding the whole file): it runs in a notebook and in its report."""
        page = self.path.read_text(encoding="utf-8")
        return (
            f'<div class="labkit-page-frame"><iframe title="{html.escape(self.path.name)}" '
            f'srcdoc="{html.escape(page, quote=True)}" style="width:100%;height:760px;border:1px solid #ccc">'
            f"</iframe><p>{html.escape(self.path.name)} {html.escape(self.sizes())}</p></div>"
        )

    def __str__(self) -> str:
        return f"{self.path} {self.sizes()}"

    def sizes(self) -> str:
        """The file's size and its biggest parts, in words."""
        return (
            f"({self.size / 1e6:.1f} MB: model {self.model_bytes / 1e6:.1f} MB"
            f"{' int8' if self.quantize else ''}, runtime {self.runtime_bytes / 1e6:.1f} MB, both gzip-compressed)"
        )


def _b64_gzip(data: bytes) -> tuple[str, int]:
    packed = gzip.compress(data, compresslevel=9, mtime=0)  # mtime 0: the same model gives the same page
    return base64.b64encode(packed).decode("ascii"), len(data)


def _about(model: nn.Module, tokenizer: Any) -> str:
    c = model.config
    params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    return (
        f"A {c.n_layer}-layer GPT ({params / 1e6:.2f}M parameters, {c.n_head} heads, {c.n_embd} wide, "
        f"context {c.block_size} tokens) with a {tokenizer.kind} tokenizer of {tokenizer.vocab_size} tokens, "
        "running in this page with ONNX Runtime Web: no Python, no server, no network."
    )


_BODY = """<div id="labkit-page">
<h1>{title}</h1>
<p class="lk-about">{about}</p>
<textarea class="lk-prompt" spellcheck="false" aria-label="your text">{prompt}</textarea>
<div class="lk-status">loading the model...</div>
<div class="lk-row">
 <div class="lk-panel">
  <h2>Next-token candidates</h2>
  <div class="lk-candidates"></div>
 </div>
 <div class="lk-panel lk-controls">
  <h2>Sampling</h2>
  <label>temperature <input type="range" name="temperature" min="0" max="2" step="0.05" value="1"><span data-show="temperature"></span></label>
  <label>top-k (0 = off) <input type="range" name="top_k" min="0" max="{vocab}" step="1" value="0"><span data-show="top_k"></span></label>
  <label>top-p <input type="range" name="top_p" min="0.05" max="1" step="0.05" value="1"><span data-show="top_p"></span></label>
  <label>new tokens <input type="range" name="max_new_tokens" min="1" max="200" step="1" value="40"><span data-show="max_new_tokens"></span></label>
  <label>seed <input type="range" name="seed" min="0" max="99" step="1" value="0"><span data-show="seed"></span></label>
  <button class="lk-generate" type="button">Generate</button>
 </div>
</div>
<h2>Attention over your text</h2>
<p class="lk-note">Each chip is one token; its colour is how much the chosen token (outlined) attends to it.
Click a chip to choose it. The square shows every token's attention (rows) to the tokens before it (columns).</p>
<div><select name="layer" aria-label="layer"></select><select name="head" aria-label="head"></select></div>
<div class="lk-tokens"></div>
<canvas class="lk-heatmap" width="256" height="256"></canvas>
</div>"""


def build_page(
    model: nn.Module,
    tokenizer: Any,
    path: str | os.PathLike,
    *,
    title: str = "A language model in your browser",
    prompt: str = DEFAULT_PROMPT,
    quantize: str | None = None,
) -> PageInfo:
    """A labkit GPT and its labkit Tokenizer in, one self-contained offline HTML page at `path` out.

    title: the page heading. prompt: the text the page opens with. quantize: None (float32: the page's logits
    match PyTorch's) or "int8" (dynamic int8 weights: about a quarter of the model's size).
    Needs the vendored ONNX Runtime Web files (`labkit vendor fetch`).
    """
    from labkit.frontend import asset_text, classic_script, inline_js, json_for_script, vendor_bytes, vendor_text

    if type(model).__name__ != "GPT":
        raise InvalidInputError(f"the page runs a GPT (with its KV cache and attention), got a {type(model).__name__}")
    if quantize is not None:
        check_choice("quantize", quantize, ("int8",))
    if not isinstance(prompt, str) or not isinstance(title, str):
        raise InvalidInputError("title and prompt must be strings")
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise InvalidInputError(f"the page's file name must end in .html, got {os.fspath(path)!r}")
    check_output_file("path", path)  # before the export and the model bytes
    tok_spec = tokenizer_spec(tokenizer)  # refuses unsupported tokenizers before the export starts
    if len(tok_spec["vocab"]) > model.config.vocab_size:
        raise InvalidInputError(
            f"the tokenizer has {len(tok_spec['vocab'])} tokens but the model only {model.config.vocab_size}; "
            "pass the tokenizer the model was trained with"
        )
    ort_module = vendor_text("ort.wasm.mjs")  # fails with the fetch command before any export work
    wasm, wasm_size = _b64_gzip(vendor_bytes("ort-wasm.wasm"))
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = to_onnx(model, Path(tmp) / "model.onnx", with_cache=True, attentions=True)
        if quantize == "int8":
            from labkit.export.compress import quantize_onnx

            onnx_path = quantize_onnx(onnx_path, Path(tmp) / "model.int8.onnx")
        io = read_onnx_spec(onnx_path)
        onnx_model, model_size = _b64_gzip(onnx_path.read_bytes())
    c = model.config
    spec = {
        "model": {
            "vocab_size": c.vocab_size,
            "block_size": c.block_size,
            "n_layer": c.n_layer,
            "n_head": c.n_head,
            "quantize": quantize,
        },
        "io": {"inputs": io["inputs"], "outputs": io["outputs"]},
        "tokenizer": tok_spec,
    }
    script = (
        '(function(){"use strict";\n'
        + classic_script("tokenizer.js")
        + "\n"
        + classic_script("page.js")
        + "\nstartPage(makeTokenizer);})();"
    )
    body = _BODY.format(
        title=html.escape(title),
        about=html.escape(_about(model, tokenizer)),
        prompt=html.escape(prompt),
        vocab=c.vocab_size,
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>\n<style>{asset_text('page.css')}</style></head>\n<body>\n{body}\n"
        f'<script type="application/json" id="labkit-spec">{json_for_script(spec)}</script>\n'
        f'<script type="text/plain" id="labkit-ort">{inline_js(ort_module)}</script>\n'
        f'<script type="application/octet-stream" id="labkit-wasm">{wasm}</script>\n'
        f'<script type="application/octet-stream" id="labkit-model">{onnx_model}</script>\n'
        f"<script>{inline_js(script)}</script>\n</body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_page = path.with_name(path.name + ".part")
    tmp_page.write_text(page, encoding="utf-8")
    os.replace(tmp_page, path)
    return PageInfo(path, path.stat().st_size, model_size, wasm_size, quantize)
