"""`ModelConfig`, the base of every model config dataclass: named presets and the checks they all start with;
`read_config_json`, a saved model folder's config.json.

Each config keeps its own preset table {name: (one-line description, field values)} and hands it to the base
with `XConfig.preset_table = _TABLE` after both are defined (the table sits below its class, where readers look).
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from typing import Any, ClassVar, TypeVar

from labkit.checks import check_float, check_int
from labkit.errors import InvalidInputError, MissingSourceError, UnknownNameError, close_matches

__all__ = ["PresetTable", "ModelConfig", "read_config_json"]

PresetTable = dict[str, tuple[str, dict[str, Any]]]
Config = TypeVar("Config", bound="ModelConfig")


class ModelConfig:
    """Base of GPTConfig, EncoderConfig, Seq2SeqConfig and LSTMConfig: `preset()`, `presets()` and shared checks.

    A subclass sets `preset_table`; `XConfig.presets()` lists it and `XConfig.preset(name, **overrides)` builds one.
    Its `__post_init__` calls the `_check_*` helpers for what every config validates the same way.
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
        known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        for key in overrides:
            if key not in known:
                raise UnknownNameError(
                    f"{cls.__name__} has no field {key!r}; {close_matches(key, known) or 'fields: ' + ', '.join(known)}"
                )
        return cls(**{**table[name][1], **overrides})

    def _check_arch(self, arch: str) -> None:
        """The `arch` field names this config's model family (checkpoints rely on it)."""
        if self.arch != arch:  # type: ignore[attr-defined]
            raise InvalidInputError(
                f"{type(self).__name__}.arch must be {arch!r}, got {self.arch!r}; "  # type: ignore[attr-defined]
                "use the config class of that architecture"
            )

    def _check_sizes(self, *names: str) -> None:
        """Each named field is a positive whole number."""
        for name in names:
            check_int(f"{type(self).__name__}.{name}", getattr(self, name))

    def _check_fractions(self, *names: str) -> None:
        """Each named field (a dropout rate, label smoothing) lies in [0, 1)."""
        for name in names:
            check_float(f"{type(self).__name__}.{name}", getattr(self, name), low=0, high=1, high_open=True)

    def _check_heads(self) -> None:
        """n_embd splits evenly into n_head heads."""
        n_embd, n_head = self.n_embd, self.n_head  # type: ignore[attr-defined]
        if n_embd % n_head:
            raise InvalidInputError(
                f"n_embd={n_embd} must be divisible by n_head={n_head}; pick n_head among its divisors"
            )


def read_config_json(folder: str | os.PathLike, fix: str) -> dict[str, Any]:
    """A model folder in, its config.json as a dict out; without one, MissingSourceError naming the folder and `fix`."""
    config_file = os.path.join(folder, "config.json")
    if not os.path.isfile(config_file):
        raise MissingSourceError(f"no config.json in {os.fspath(folder)!r}; {fix}")
    with open(config_file, encoding="utf-8") as fh:
        return json.load(fh)
