"""Named configurations: `NamedPresets`, the base that gives every model config `preset()` and `presets()`.

Each config keeps its own table {name: (one-line description, field values)} and hands it to the base with
`XConfig.preset_table = _TABLE` after both are defined (the table sits below its class, where readers look).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar, TypeVar

from labkit.errors import UnknownNameError, close_matches

__all__ = ["PresetTable", "NamedPresets"]

PresetTable = dict[str, tuple[str, dict[str, Any]]]
Config = TypeVar("Config", bound="NamedPresets")


class NamedPresets:
    """Base of the config dataclasses (GPTConfig, EncoderConfig, Seq2SeqConfig, LSTMConfig): named presets.

    A subclass sets `preset_table`; `XConfig.presets()` lists it and `XConfig.preset(name, **overrides)` builds one.
    """

    preset_table: ClassVar[PresetTable] = {}

    @classmethod
    def presets(cls) -> dict[str, str]:
        """Return {preset name: one-line description} for every named configuration."""
        return {name: desc for name, (desc, _) in cls.preset_table.items()}

    @classmethod
    def preset(cls: type[Config], name: str, **overrides: Any) -> Config:
        """Return the named configuration with `overrides` applied (e.g. vocab_size=tokenizer.vocab_size).

        name: one of `XConfig.presets()`. overrides: any config field; they win over the preset's values, and
        the config's own checks run once on the result. An unknown name or field raises UnknownNameError.
        """
        table = cls.preset_table
        if name not in table:
            hint = close_matches(name, table) or "choose one of " + ", ".join(table)
            raise UnknownNameError(f"unknown {cls.__name__.removesuffix('Config')} preset {name!r}; {hint}")
        known = [f.name for f in fields(cls)]
        for key in overrides:
            if key not in known:
                raise UnknownNameError(
                    f"{cls.__name__} has no field {key!r}; {close_matches(key, known) or 'fields: ' + ', '.join(known)}"
                )
        return cls(**{**table[name][1], **overrides})
