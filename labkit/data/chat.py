"""Chat templates: a conversation (a list of {"role", "content"} messages) in, the prompt text a chat model expects out.

A chat model was fine-tuned on conversations written in one exact layout, e.g. SmolLM2's
`<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n`. The layout ships with the model as a Jinja
template (GGUF `tokenizer.chat_template`, Hugging Face `tokenizer_config.json`). It is rendered the way
transformers renders it: a sandboxed Jinja environment with `trim_blocks` and `lstrip_blocks`, the
`loopcontrols` extension, `raise_exception(msg)` and a `tojson` filter, and the special tokens (`bos_token`,
`eos_token`, ...) as variables. Jinja2 is imported here only, when a template is rendered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from labkit.errors import InvalidInputError

__all__ = ["render_chat", "check_messages"]


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """Messages in, a validated list of dicts out; raises one line naming the first bad message."""
    if isinstance(messages, (str, Mapping)) or not isinstance(messages, Sequence):
        raise InvalidInputError(
            'messages must be a list of {"role": ..., "content": ...} dicts, e.g. [{"role": "user", "content": "Hi"}]'
        )
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise InvalidInputError(f'messages[{i}] must be a dict with str "role" and "content", got {m!r}')
        out.append(dict(m))
    return out


@lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False) -> str:
        return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template)
    except TemplateError as exc:
        raise InvalidInputError(
            f"the chat template does not parse ({exc}); check the tokenizer's chat_template"
        ) from None


def render_chat(
    template: str,
    messages: Any,
    *,
    add_generation_prompt: bool = False,
    special_tokens: Mapping[str, str] = {},
    **extra: Any,
) -> str:
    """A Jinja chat template and messages in, the prompt text out.

    add_generation_prompt: end with the header of the assistant's turn, so the model writes the reply.
    special_tokens: role -> token ("bos" -> "<|im_start|>"), passed to the template as `bos_token`, ...
    extra: further template variables (e.g. tools=None).
    """
    from jinja2 import TemplateError

    variables = {f"{role}_token": token for role, token in special_tokens.items()}
    try:
        return _compile(template).render(
            messages=check_messages(messages), add_generation_prompt=bool(add_generation_prompt), **variables, **extra
        )
    except TemplateError as exc:
        raise InvalidInputError(f"the chat template refused these messages: {exc}") from None
