"""Front-end files (ES modules, CSS) for the views: find them, inline them, and write text that is safe in a page.

The sources live in the checkout's top-level `widgets/` folder; the build copies them into the installed
package as `labkit/widgets/static/`. Static HTML inlines them: a classic `<script>` (not `type=module`),
because every front end we target (JupyterLab 4, Notebook 7, VS Code, nbconvert pages) runs those, and
its `document.currentScript` tells the code where it sits.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from labkit.errors import InvalidInputError, MissingSourceError

__all__ = [
    "asset_text",
    "asset_dirs",
    "module_text",
    "classic_script",
    "json_for_script",
    "mount_script",
    "live_view_html",
    "svg_open",
    "plain_token",
    "inline_js",
    "SOURCE_MAP",
    "HtmlView",
    "safe_text",
]

_PACKAGE_DIR = Path(__file__).resolve().parent.parent / "widgets" / "static"
_SOURCE_DIR = Path(__file__).resolve().parent.parent.parent / "widgets"


def asset_dirs() -> list[Path]:
    """Return the folders searched for front-end files, in order: installed package, then source checkout."""
    return [_PACKAGE_DIR, _SOURCE_DIR]


@cache
def asset_text(name: str) -> str:
    """A front-end file name such as "attention.js" in, its text out (package copy first, then the checkout).

    name: a bare file name; raises MissingSourceError naming both folders when neither has it.
    """
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise InvalidInputError(f"asset name must be a bare file name such as 'attention.js', got {name!r}")
    for folder in asset_dirs():
        path = folder / name
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise MissingSourceError(
        f"front-end file {name!r} is in neither {_PACKAGE_DIR} nor {_SOURCE_DIR}; reinstall labkit (pip install .) "
        "or run from a source checkout that has widgets/"
    )


_EXPORT = re.compile(r"^export\s+(default\s+)?", re.M)
# The one import form our modules use: named imports from a sibling file, `import { el } from "./dom.js";`.
_LOCAL_IMPORT = re.compile(r"""^import\s*\{([^}]*)\}\s*from\s*["']\./([\w-]+\.js)["'];?[ \t]*\n?""", re.M)


@cache
def module_text(name: str) -> str:
    """An ES module file name in, one self-contained ES module out: its sibling imports inlined in front of it.

    Our modules share helpers (such as `el` in `dom.js`) through `import { el } from "./dom.js";`, which a
    browser or node resolves next to the file. anywidget loads `_esm` from a string and a static page
    inlines the code, where no sibling file can be found: there the shared module's code (its exports made
    local, so the widget does not re-export them) goes in front, once, and the import line goes away.
    Raises InvalidInputError when an imported name is not exported by the file it is imported from.
    """
    src = asset_text(name)
    shared: list[tuple[str, str]] = []

    def inline(match: re.Match) -> str:
        names = [n.strip() for n in match.group(1).split(",") if n.strip()]
        dep = match.group(2)
        dep_src = asset_text(dep)
        if _LOCAL_IMPORT.search(dep_src):  # one level only: two widgets sharing a helper never inline it twice
            raise InvalidInputError(f"{dep} is imported by {name}, so it must not import other files itself")
        exported = set(re.findall(r"^export\s+(?:function\*?|const|let|class)\s+([\w$]+)", dep_src, re.M))
        missing = [n for n in names if n not in exported]
        if missing:
            raise InvalidInputError(f"{name} imports {', '.join(missing)} from {dep}, which does not export it")
        if dep not in (d for d, _ in shared):
            shared.append((dep, _EXPORT.sub("", dep_src)))
        return ""

    body = _LOCAL_IMPORT.sub(inline, src)
    if not shared:
        return src
    head = "".join(f"// ---- from {dep} (inlined by labkit)\n{code.rstrip()}\n" for dep, code in shared)
    return f"{head}// ---- {name}\n{body}"


@cache
def classic_script(name: str) -> str:
    """An ES module file name in, the same code as classic-script statements out (exports turned into locals).

    Sibling imports are inlined first (see `module_text`); then `export function f` becomes `function f` and
    `export default {...}` becomes `const __default = {...}`. Only those forms are allowed in our modules;
    anything else (another import, an export list) raises, so a change to the module that would break the
    static pages fails loudly in the tests.
    """
    src = module_text(name)
    if re.search(r"^\s*import[\s{(*]", src, re.M) or re.search(r"^export\s*\{", src, re.M):
        raise InvalidInputError(
            f'{name} may import only named helpers from a sibling file (import {{ el }} from "./dom.js") and '
            "must not use export lists; it is inlined into static HTML"
        )
    code = _EXPORT.sub(lambda m: "const __default = " if m.group(1) else "", src)
    if "</script" in code.lower():
        raise InvalidInputError(f"{name} contains '</script', which would end an inline script; split that string")
    return code


_SURROGATE = re.compile("[\ud800-\udfff]")


def safe_text(text: str) -> str:
    """Any Python string in, the same string with every lone surrogate replaced by U+FFFD out.

    Python strings may hold surrogate code points (from `surrogateescape`-decoded bytes, a tokenizer's byte
    fallback, JSON with an unpaired `\\ud800`), which UTF-8 cannot encode: writing them fails. Every page writer
    passes its text through here, so such a token shows as the replacement character and nothing else moves.
    """
    return _SURROGATE.sub("\ufffd", text)


def json_for_script(value: object) -> str:
    """A JSON-able value in, JSON text that is safe inside an HTML <script> out.

    `<`, `>`, `&` and the JS line separators are written as \\u escapes, so text such as
    "</script><img ...>" inside a token cannot end the script or be read as markup; lone surrogates become
    U+FFFD (see `safe_text`).
    """
    text = safe_text(json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def plain_token(token: str) -> str:
    """A token in, its plain-text fallback out: a JSON string literal with <, >, & escaped (readable, diffable, inert)."""
    return (
        safe_text(json.dumps(token, ensure_ascii=False))
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


# A source-map comment at the end of a bundle; the maps are not in our pages, so it is dropped.
SOURCE_MAP = re.compile(r"^//# sourceMappingURL=\S*$", re.M)


def inline_js(code: str) -> str:
    """JavaScript source in, the same code safe to place between <script> and </script> out.

    `</script` would end the element early and `<!--` switches the HTML parser into a mode where the
    closing tag may not count; both are written with a backslash, which JavaScript strings, template
    literals and regular expressions read as the same characters. Source-map comments are dropped
    (the maps are not in the page).
    """
    code = SOURCE_MAP.sub("", code)
    return re.sub(r"</(script)", r"<\\/\1", code, flags=re.I).replace("<!--", "<\\!--")


def mount_script(name: str, element_id: str) -> str:
    """A front-end module and an element id in, the inline <script> that mounts the module's static view there.

    The module runs as a classic script inside its own function scope (see `classic_script`), so several views on
    one page never share globals, and `mountStatic` finds its data next to the script.
    """
    js = classic_script(name)
    return (
        f'<script>(function(){{"use strict";\n{js}\nmountStatic(document.currentScript, "{element_id}");}})();</script>'
    )


def live_view_html(prefix: str, css: str, module: str, static_html: str, data: object) -> str:
    """A view's parts in, its self-contained HTML fragment out: CSS, static fallback, data and the mounting script.

    prefix: the class of the outer div (e.g. "labkit-attn"); the module's `mountStatic` reads the JSON in
    `{prefix}-data`, draws into `{prefix}-live` and hides `{prefix}-static`. css, module: asset names
    ("attention.css", "attention.js"). static_html: what shows without scripts (an SVG). data: JSON-able.
    """
    vid = f"{prefix}-{uuid.uuid4().hex}"
    return (
        f'<div class="{prefix}" id="{vid}"><style>{asset_text(css)}</style>'
        f'<div class="{prefix}-static">{static_html}</div><div class="{prefix}-live"></div>'
        f'<script type="application/json" class="{prefix}-data">{json_for_script(data)}</script>'
        + mount_script(module, vid)
        + "</div>"
    )


def svg_open(width: float, height: float, *, standalone: bool) -> str:
    """A picture's size in pixels in, the opening <svg> tag of a static view out (viewBox, 11px sans-serif text).

    Sizes are written as whole pixels. standalone: declare the SVG namespace, which an .svg file needs and HTML
    implies (it is a name, never fetched).
    """
    ns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    w, h = f"{width:.0f}", f"{height:.0f}"
    return f'<svg{ns} width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">'


class HtmlView:
    """Base of labkit's static views: subclasses give `to_html()`, `to_svg()`, `summary()` and `_page_title()`.

    Adds what every view shares: the notebook display bundle (HTML, an SVG fallback for hosts and reports that
    cannot run scripts, and a plain-text summary) and `save_html`, a standalone page that works offline.
    Whatever text a subclass writes, its `to_html`, `to_svg` and `summary` come out through `safe_text`, so a
    token holding a lone surrogate shows as U+FFFD instead of making the page impossible to save or display.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("to_html", "to_svg", "summary"):
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "_labkit_safe", False):
                setattr(cls, name, _returning_safe_text(method))

    def _page_title(self) -> str:
        return "labkit view"

    def save_html(self, path: str | os.PathLike[str]) -> Path:
        """Write a full standalone HTML page (works offline, from disk) and return its path."""
        import html

        from labkit.checks import check_output_file

        path = check_output_file("path", path)
        title = html.escape(safe_text(self._page_title()))
        path.write_text(
            f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>'
            f"<body>{self.to_html()}</body></html>\n",  # type: ignore[attr-defined]
            encoding="utf-8",
        )
        return path

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {
            "text/plain": self.summary(),  # type: ignore[attr-defined]
            "text/html": self.to_html(),  # type: ignore[attr-defined]
            "image/svg+xml": self.to_svg(),  # type: ignore[attr-defined]
        }


def _returning_safe_text(method: Any) -> Any:
    """A method returning str in, the same method returning `safe_text` of it out (name and docstring kept)."""
    import functools

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = method(*args, **kwargs)
        return safe_text(out) if isinstance(out, str) else out

    wrapper._labkit_safe = True  # type: ignore[attr-defined]
    return wrapper
