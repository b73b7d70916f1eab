"""Tokenizer explorer view: a text and one or more tokenizers in; coloured tokens with ids, counts and merges out.

`token_view(tokenizer, text, compare=other)` gives a `TokenView` whose `_repr_mimebundle_` carries `text/html`
(inlined `widgets/tokens.js` + CSS + the token lists as escaped JSON: coloured spans, ids under each token,
whitespace made visible, tokens and characters per token for each tokenizer, a token's BPE merges on hover or
click), `image/svg+xml` (the same rows drawn server-side, for print and hosts without JavaScript) and
`text/plain` (a table per tokenizer). The data comes from `Tokenizer.explain(text)`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from labkit.checks import check_int
from labkit.errors import InvalidInputError
from labkit.frontend import HtmlView, live_view_html, plain_token, svg_open

__all__ = [
    "TokenRun",
    "TokenView",
    "tokenize_runs",
    "token_view",
    "named_tokenizers",
    "visible_whitespace",
    "MAX_TOKENS",
]

MAX_TOKENS = 2000  # per tokenizer in the page; more would make a slow page, and the counts stay exact anyway
_WS = {" ": "\u00b7", "\n": "\u21b5", "\t": "\u2192", "\r": "\u240d"}
PALETTE = ("#fde68a", "#bbf7d0", "#bfdbfe", "#fbcfe8", "#ddd6fe", "#fed7aa")  # pastel, cycled by position


def visible_whitespace(s: str) -> str:
    """A string in, the same with space, newline, tab and CR shown as ·, ↵, →, ␍ out (the page and SVG do this too)."""
    return "".join(_WS.get(ch, ch) for ch in s)


@dataclass
class TokenRun:
    """One tokenizer's result on the text: its name, counts and the `TokenInfo` records as dicts."""

    name: str
    kind: str
    vocab_size: int
    n_tokens: int
    n_chars: int
    tokens: list[dict]  # {id, token, text, start, end, merges, special}, at most MAX_TOKENS of them

    @property
    def chars_per_token(self) -> float:
        """Characters of text per token (higher = the tokenizer compresses this text better)."""
        return self.n_chars / self.n_tokens if self.n_tokens else 0.0

    def to_dict(self) -> dict:
        """The JSON-able record the front end draws (counts, and the tokens)."""
        return {
            **asdict(self),
            "chars_per_token": round(self.chars_per_token, 3),
            "truncated": self.n_tokens > len(self.tokens),
        }


def named_tokenizers(tokenizers: Any) -> dict[str, Any]:
    """A Tokenizer, a list of them or a {name: Tokenizer} mapping in, {name: Tokenizer} out (names made unique)."""
    from labkit.data.tokenizer import Tokenizer

    if isinstance(tokenizers, Tokenizer):
        tokenizers = [tokenizers]
    if isinstance(tokenizers, Mapping):
        items = [(str(k), v) for k, v in tokenizers.items()]
    elif isinstance(tokenizers, (list, tuple)):
        items = []
        for tok in tokenizers:
            base = f"{getattr(tok, 'kind', '?')} {getattr(tok, 'vocab_size', '?')}"
            name, n = base, 2
            while name in dict(items):
                name, n = f"{base} ({n})", n + 1
            items.append((name, tok))
    else:
        raise InvalidInputError(
            f"tokenizers must be a labkit Tokenizer, a list of them or a dict name -> Tokenizer, "
            f"got {type(tokenizers).__name__}"
        )
    if not items:
        raise InvalidInputError("no tokenizers given; pass at least one labkit Tokenizer")
    for name, tok in items:
        if not isinstance(tok, Tokenizer):
            raise InvalidInputError(
                f"tokenizer {name!r} is a {type(tok).__name__}, not a labkit Tokenizer; "
                "wrap a tokenizers.Tokenizer with labkit.data.Tokenizer(backend) or use load_tokenizer(path)"
            )
    return dict(items)


def tokenize_runs(
    tokenizers: Any, text: str, add_special_tokens: bool = False, max_tokens: int = MAX_TOKENS
) -> list[TokenRun]:
    """Tokenizers (see `named_tokenizers`) and a text in, one TokenRun per tokenizer out (the explorer's data).

    add_special_tokens: include the inserted bos/eos ([CLS]/[SEP]). max_tokens: how many token records to keep
    per tokenizer (the counts always cover the whole text).
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"text must be a str, got {type(text).__name__}")
    check_int("max_tokens", max_tokens)
    runs = []
    for name, tok in named_tokenizers(tokenizers).items():
        infos = tok.explain(text, add_special_tokens=add_special_tokens)
        records = [
            {
                "id": int(i.id),
                "token": i.token,
                "text": i.text,
                "start": i.start,
                "end": i.end,
                "merges": list(i.merges),
                "special": bool(i.special),
            }
            for i in infos[:max_tokens]
        ]
        runs.append(TokenRun(name, tok.kind, tok.vocab_size, len(infos), len(text), records))
    return runs


def _shown(record: dict) -> str:
    """What a token box shows: its text slice with whitespace visible, or the vocabulary entry for inserted tokens."""
    return visible_whitespace(record["text"]) if record["text"] else record["token"]


@dataclass
class TokenView(HtmlView):
    """A rendered tokenizer comparison; display it in a notebook, `save_html(path)` it, or read `runs`."""

    text: str
    runs: list[TokenRun]
    title: str = ""

    def spec(self) -> dict:
        """The JSON-able description the front end mounts."""
        return {"text": self.text, "runs": [r.to_dict() for r in self.runs], "title": self.title, "editable": False}

    def summary(self, max_rows: int = 40) -> str:
        """A text/plain table per tokenizer: counts, then position, id, token, text and merges (first max_rows)."""
        lines = [plain_token(self.title)] if self.title else []
        lines.append(f"TokenView: {len(self.text)} characters, {len(self.runs)} tokenizer(s)")
        for r in self.runs:
            lines.append(
                f"[{plain_token(r.name)}] {r.kind}, vocab {r.vocab_size:,}: {r.n_tokens} tokens, "
                f"{r.chars_per_token:.2f} chars/token"
            )
            lines.append(f"  {'#':>4} {'id':>7}  {'token':<18} {'text':<18} merges")
            for i, t in enumerate(r.tokens[:max_rows]):
                merges = ", ".join(plain_token(m) for m in t["merges"][-3:])
                more = f" (+{len(t['merges']) - 3})" if len(t["merges"]) > 3 else ""
                lines.append(
                    f"  {i:>4} {t['id']:>7}  {plain_token(t['token']):<18} {plain_token(t['text']):<18} {merges}{more}"
                    + (" [special]" if t["special"] else "")
                )
            if r.n_tokens > max_rows:
                lines.append(f"  ... {r.n_tokens - max_rows} more tokens")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def to_svg(self, standalone: bool = True, width: int = 640, max_tokens: int = 300) -> str:
        """The static fallback: each tokenizer's tokens as coloured boxes with the id underneath (escaped text).

        standalone: include the SVG namespace (for an .svg file). width: wrap rows at this many px.
        max_tokens: boxes drawn per tokenizer.
        """
        char_w, box_h, id_h, gap = 7.2, 18, 12, 2
        out: list[str] = []
        y = 4.0
        for r in self.runs:
            y += 14
            out.append(
                f'<text x="4" y="{y:.0f}" font-weight="bold">{html.escape(r.name)}: {r.n_tokens} tokens, '
                f"{r.chars_per_token:.2f} chars/token</text>"
            )
            y += 6
            x = 4.0
            for i, t in enumerate(r.tokens[:max_tokens]):
                shown = _shown(t)
                shown = shown if len(shown) <= 24 else shown[:23] + "\u2026"
                w = max(len(shown), len(str(t["id"]))) * char_w + 6
                if x + w > width and x > 4:
                    x, y = 4.0, y + box_h + id_h + gap
                color = "#e5e7eb" if t["special"] else PALETTE[i % len(PALETTE)]
                tip = html.escape(f"id {t['id']}: {t['token']}", quote=True)
                out.append(
                    f'<g><title>{tip}</title><rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{box_h}" rx="3" '
                    f'fill="{color}"/><text x="{x + 3:.1f}" y="{y + 13:.1f}" font-family="monospace">'
                    f'{html.escape(shown)}</text><text x="{x + 3:.1f}" y="{y + box_h + 10:.1f}" font-size="9" '
                    f'fill="#666">{t["id"]}</text></g>'
                )
                x += w + gap
            if r.n_tokens > max_tokens:
                y += box_h + id_h + gap
                out.append(
                    f'<text x="4" y="{y + 10:.1f}" fill="#666">\u2026 {r.n_tokens - max_tokens} more tokens not drawn '
                    f"(the first {max_tokens} of {r.n_tokens}; the live view and to_svg(max_tokens={r.n_tokens}) "
                    "show more)</text>"
                )
            y += box_h + id_h + 10
        return svg_open(width, y, standalone=standalone) + "".join(out) + "</svg>"

    def to_html(self) -> str:
        """A self-contained HTML fragment: CSS, the SVG fallback, the token data and the inlined script."""
        return live_view_html("labkit-tok", "tokens.css", "tokens.js", self.to_svg(standalone=False), self.spec())

    def _page_title(self) -> str:
        return self.title or "labkit tokenizer explorer"


def token_view(
    tokenizer: Any,
    text: str,
    *,
    compare: Any = None,
    add_special_tokens: bool = False,
    max_tokens: int = MAX_TOKENS,
    title: str = "",
) -> TokenView:
    """A tokenizer (or several) and a text in, the coloured-token view out; `compare` adds tokenizers side by side.

    tokenizer: a labkit Tokenizer, a list of them, or {name: Tokenizer}. compare: the same kinds, shown next to it.
    add_special_tokens: include inserted bos/eos. max_tokens: token records per tokenizer in the page.
    """
    named = named_tokenizers(tokenizer)
    if compare is not None:
        for name, tok in named_tokenizers(compare).items():
            key, n = name, 2
            while key in named:
                key, n = f"{name} ({n})", n + 1
            named[key] = tok
    return TokenView(text, tokenize_runs(named, text, add_special_tokens, max_tokens), title)
