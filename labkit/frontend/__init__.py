"""labkit.frontend: everything that puts labkit's output into a web page, by public names.

- assets: our own ES modules and CSS (`asset_text`; `module_text` with shared helpers such as `dom.js`
  inlined, what anywidget loads), inlined as classic scripts (`classic_script`, `mount_script`;
  `live_view_html`, a view's whole fragment around it; `svg_open`, the tag its SVG fallback starts with), JSON and JavaScript made safe inside `<script>`
  (`json_for_script`, `inline_js`),
  the plain-text fallback of a token (`plain_token`), `safe_text` (lone surrogates to U+FFFD, so any Python
  string can be written to a page) and `HtmlView`, the base of every static view.
- vendor: third-party files (require.js, d3, jQuery, the Jupyter widget manager, KaTeX, ONNX Runtime Web), pinned
  and fetched from
  the npm registry at set-up time (`fetch_vendor`, `vendor_text`), never committed.
- maths: formulas in markdown (`find_formulas`, pandoc's dollar rules) typeset offline by KaTeX
  (`MathsPlaceholders` around a markdown renderer, `katex_page_assets`).
- payload: tensors as compact bytes for the browser (`pack_arrays`, float16, optional top-k pruning) and
  a dependency-free PNG writer for static fallbacks.

It sits low in the layering (it knows nothing about models), so views, widgets, reports and exports all
use the same functions.
"""

from labkit.lazy import lazy_exports

_EXPORTS = {
    # assets.py
    "asset_text": "assets",
    "asset_dirs": "assets",
    "classic_script": "assets",
    "module_text": "assets",
    "json_for_script": "assets",
    "inline_js": "assets",
    "mount_script": "assets",
    "live_view_html": "assets",
    "svg_open": "assets",
    "plain_token": "assets",
    "HtmlView": "assets",
    "safe_text": "assets",
    "SOURCE_MAP": "assets",
    # vendor.py
    "VENDOR": "vendor",
    "VendorFile": "vendor",
    "vendor_dir": "vendor",
    "vendor_file": "vendor",
    "vendor_text": "vendor",
    "vendor_bytes": "vendor",
    "fetch_vendor": "vendor",
    "anywidget_module_path": "vendor",
    # maths.py
    "Formula": "maths",
    "find_formulas": "maths",
    "formula_html": "maths",
    "katex_page_assets": "maths",
    "MathsPlaceholders": "maths",
    "MATH_CLASS": "maths",
    # payload.py
    "FORMAT": "payload",
    "pack_arrays": "payload",
    "unpack_arrays": "payload",
    "auto_top_k": "payload",
    "to_base64": "payload",
    "png_bytes": "payload",
    "weight_colors": "payload",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
