"""TokenizerExplorer: type text, see how one or more tokenizers cut it (ids, counts, merges), live.

Typing in the page sets the `text` trait; Python re-tokenizes (`labkit.viz.tokens.tokenize_runs`) and pushes the
token lists as the `runs` trait; the front end (`widgets/tokens.js`, the same module static pages inline) draws them.
"""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets as t

from labkit.checks import check_int
from labkit.errors import InvalidInputError
from labkit.frontend import asset_text, module_text
from labkit.viz.tokens import MAX_TOKENS, TokenRun, TokenView, named_tokenizers, tokenize_runs
from labkit.widgets.fallback import StaticFallback

__all__ = ["TokenizerExplorer"]

MAX_TEXT = 100_000  # characters: beyond this, typing would re-tokenize a book on every pause


class TokenizerExplorer(StaticFallback, anywidget.AnyWidget):
    """Side-by-side tokenizer explorer: `TokenizerExplorer({"bpe": bpe, "char": char}, text="Hello")`.

    tokenizers: a labkit Tokenizer, a list of them or {name: Tokenizer}. Setting `text` (in Python or by typing)
    re-tokenizes; `runs` holds each tokenizer's tokens and counts; `add_special_tokens` adds bos/eos.
    """

    _esm = module_text("tokens.js")
    _css = asset_text("tokens.css")

    text = t.Unicode("", help="the text being tokenized (the page's text box)").tag(sync=True)
    runs = t.List(
        t.Dict(), help="per tokenizer: name, kind, vocab_size, n_tokens, n_chars, chars_per_token, tokens"
    ).tag(sync=True)
    names = t.List(t.Unicode(), help="tokenizer names, in display order (read-only)").tag(sync=True)
    add_special_tokens = t.Bool(False, help="include the inserted bos/eos ([CLS]/[SEP]) tokens").tag(sync=True)
    title = t.Unicode("", help="a line above the explorer").tag(sync=True)

    def __init__(
        self,
        tokenizers: Any,
        text: str = "",
        *,
        add_special_tokens: bool = False,
        max_tokens: int = MAX_TOKENS,
        title: str = "",
        **kwargs: Any,
    ) -> None:
        self._tokenizers = named_tokenizers(tokenizers)
        check_int("max_tokens", max_tokens)
        self._max_tokens = max_tokens
        self._last: list[TokenRun] = []
        self._ready = False  # tokenize once, after both traits are set
        super().__init__(names=list(self._tokenizers), title=title, **kwargs)
        self.add_special_tokens = add_special_tokens
        self.text = text
        self._ready = True
        self._retokenize()

    @property
    def tokenizers(self) -> dict[str, Any]:
        """{name: Tokenizer} in display order."""
        return dict(self._tokenizers)

    @t.validate("text")
    def _valid_text(self, proposal: dict) -> str:
        text = proposal["value"]
        if len(text) > MAX_TEXT:
            raise InvalidInputError(
                f"text has {len(text):,} characters; the explorer takes at most {MAX_TEXT:,} "
                "(use Tokenizer.encode for whole corpora)"
            )
        return text

    @t.observe("text", "add_special_tokens")
    def _on_text(self, change: dict) -> None:
        if self._ready:
            self._retokenize()

    def _retokenize(self) -> None:
        self._last = tokenize_runs(self._tokenizers, self.text, self.add_special_tokens, self._max_tokens)
        self.runs = [r.to_dict() for r in self._last]

    def counts(self) -> dict[str, int]:
        """{tokenizer name: number of tokens of the current text}."""
        return {r.name: r.n_tokens for r in self._last}

    def to_view(self) -> TokenView:
        """The current state as a static `TokenView` (HTML page, SVG, text table)."""
        return TokenView(self.text, list(self._last), self.title)

    def _static_view(self) -> TokenView:
        return self.to_view()
