"""Text-generation metrics: corpus BLEU and chrF through sacrebleu, ROUGE through rouge-score.

These are thin wrappers on purpose: the reference libraries define the numbers
(tokenization, smoothing, stemming), labkit only fixes the argument layout.
References are given per hypothesis - `references[i]` is a string or a list of
strings for `hypotheses[i]` - which is how a notebook usually holds them; sacrebleu
wants them transposed into reference streams, which `_streams` does.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit.checks import check_int
from labkit.errors import InvalidInputError, MissingSourceError, UnknownNameError, close_matches

__all__ = ["BleuResult", "ChrfResult", "bleu", "chrf", "rouge"]

_INSTALL = 'pip install "labkit[eval]"'
_ROUGE_TYPE = re.compile(r"rouge([1-9]|L|Lsum)")


@dataclass(frozen=True)
class BleuResult:
    """Corpus BLEU (0-100) with its parts; `float(result)` is the score."""

    score: float  # 100 * brevity_penalty * geometric mean of the n-gram precisions
    precisions: list[float] = field(default_factory=list)  # modified n-gram precisions (0-100), n = 1..max order
    brevity_penalty: float = 1.0  # exp(1 - ref_len / sys_len) when the output is shorter than the references
    sys_len: int = 0  # hypothesis tokens
    ref_len: int = 0  # effective reference tokens (closest reference length per sentence)
    signature: str = ""  # sacrebleu's signature: report it next to the score so others can reproduce it

    def __float__(self) -> float:
        return self.score


@dataclass(frozen=True)
class ChrfResult:
    """Corpus chrF / chrF++ (0-100); `float(result)` is the score."""

    score: float  # character n-gram F-score (plus word n-grams for chrF++)
    name: str = "chrF2"  # "chrF2" or "chrF2++" (word_order=2)
    char_order: int = 6  # character n-gram order
    word_order: int = 0  # word n-gram order (2 = chrF++)
    beta: int = 2  # recall weight in the F-score
    signature: str = ""  # sacrebleu's signature

    def __float__(self) -> float:
        return self.score


def bleu(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]], **options: Any) -> BleuResult:
    """System outputs and their references in, corpus `BleuResult` (sacrebleu's BLEU) out.

    hypotheses: one string per segment (an empty string is a valid, poor, hypothesis).
    references: one entry per hypothesis: a string, or a list of strings when there are several
        references (their number may vary between segments).
    options: passed to `sacrebleu.metrics.BLEU`, e.g. tokenize="13a"|"intl"|"char"|"none"|"zh",
        lowercase=True, smooth_method="exp"|"floor"|"add-k"|"none", max_ngram_order=4, effective_order=True.
    """
    metric, s = _corpus_score("BLEU", hypotheses, references, options)
    return BleuResult(
        score=float(s.score),
        precisions=[float(p) for p in s.precisions],
        brevity_penalty=float(s.bp),
        sys_len=int(s.sys_len),
        ref_len=int(s.ref_len),
        signature=str(metric.get_signature()),
    )


def chrf(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]], **options: Any) -> ChrfResult:
    """System outputs and their references in, corpus `ChrfResult` (sacrebleu's chrF, or chrF++) out.

    hypotheses, references: as in `bleu`.
    options: passed to `sacrebleu.metrics.CHRF`, e.g. word_order=2 (chrF++), char_order=6, beta=2,
        lowercase=True, whitespace=True, eps_smoothing=True.
    """
    char_order = check_int("char_order", options.get("char_order", 6), low=0, fix="chrF uses 6")
    word_order = check_int("word_order", options.get("word_order", 0), low=0, fix="chrF++ uses 2")
    if char_order + word_order == 0:  # no n-grams at all: every pair would score 0, even identical texts
        raise InvalidInputError("char_order=0 and word_order=0 leave nothing to compare; use char_order=6 (chrF)")
    metric, s = _corpus_score("CHRF", hypotheses, references, options)
    return ChrfResult(
        score=float(s.score),
        name=str(s.name),
        char_order=int(s.char_order),
        word_order=int(s.word_order),
        beta=int(s.beta),
        signature=str(metric.get_signature()),
    )


def rouge(
    predictions: Sequence[str],
    references: Sequence[str | Sequence[str]],
    types: Sequence[str] = ("rouge1", "rouge2", "rougeL", "rougeLsum"),
    use_stemmer: bool = True,
) -> dict[str, dict[str, float]]:
    """Predictions and references in, {rouge type: {"precision", "recall", "fmeasure"}} (means over segments) out.

    Each pair is scored with `rouge_score.rouge_scorer.RougeScorer`; the result is the plain mean of the
    per-segment precision, recall and F-measure (not rouge-score's bootstrap aggregate). Scores are in 0-1.
    predictions: one string per segment. references: one entry per prediction, a string or a list of strings;
        with several, each type keeps the reference with the best F-measure (`score_multi`).
    types: "rouge1".."rouge9" (n-gram overlap), "rougeL" (longest common subsequence over the whole text),
        "rougeLsum" (LCS per sentence: sentences must be separated by newlines, "\\n").
    use_stemmer: apply the Porter stemmer before matching ("cats" matches "cat").
    """
    try:
        from rouge_score import rouge_scorer
    except ImportError as exc:
        raise MissingSourceError(f"rouge() needs the rouge-score package ({exc}); {_INSTALL}") from None
    if isinstance(types, str):
        raise InvalidInputError(f"types={types!r} is a string; pass a sequence such as ({types!r},)")
    if not types:
        raise InvalidInputError("types is empty; ask for at least one ROUGE type such as 'rouge1'")
    for name in types:
        if not isinstance(name, str) or not _ROUGE_TYPE.fullmatch(name):
            hint = (
                close_matches(str(name), ["rouge1", "rouge2", "rougeL", "rougeLsum"])
                or "use rouge1..rouge9, rougeL or rougeLsum"
            )
            raise UnknownNameError(f"unknown ROUGE type {name!r}; {hint}")
    preds, per_segment = _check_pairs(predictions, references, transpose=False)
    scorer = rouge_scorer.RougeScorer(list(types), use_stemmer=use_stemmer)
    totals = {t: {"precision": 0.0, "recall": 0.0, "fmeasure": 0.0} for t in types}
    for pred, refs in zip(preds, per_segment):
        scores = scorer.score(refs[0], pred) if len(refs) == 1 else scorer.score_multi(refs, pred)
        for t in types:
            for key in ("precision", "recall", "fmeasure"):
                totals[t][key] += float(getattr(scores[t], key))
    return {t: {key: value / len(preds) for key, value in parts.items()} for t, parts in totals.items()}


# ---- helpers ---------------------------------------------------------------------------------------------


def _sacrebleu() -> Any:
    try:
        from sacrebleu import metrics
    except ImportError as exc:
        raise MissingSourceError(f"bleu() and chrf() need the sacrebleu package ({exc}); {_INSTALL}") from None
    return metrics


def _corpus_score(name: str, hypotheses: Any, references: Any, options: dict[str, Any]) -> tuple[Any, Any]:
    """Checked inputs scored by sacrebleu's metric `name` ("BLEU" or "CHRF") built with `options`; (metric, score) out."""
    metrics = _sacrebleu()
    hyps, streams = _check_pairs(hypotheses, references)
    metric = _make_metric(getattr(metrics, name), name, options)
    return metric, metric.corpus_score(hyps, streams)


def _make_metric(cls: type, name: str, options: dict[str, Any]) -> Any:
    """Build a sacrebleu metric, turning an unknown option or value into one clear labkit error."""
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "references")]
    for key in options:
        if key not in allowed:
            hint = close_matches(key, allowed) or "options are " + ", ".join(allowed)
            raise UnknownNameError(f"sacrebleu {name} has no option {key!r}; {hint}")
    tokenizers = getattr(cls, "TOKENIZERS", None)
    tokenize = options.get("tokenize")
    if tokenize is not None and tokenizers is not None and tokenize not in tokenizers:
        hint = close_matches(str(tokenize), tokenizers) or "choose one of " + ", ".join(tokenizers)
        raise UnknownNameError(f"unknown tokenize={tokenize!r}; {hint}")
    try:
        return cls(**options)
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"sacrebleu {name} rejected options {options}: {exc}") from None


def _check_pairs(hypotheses: Any, references: Any, transpose: bool = True) -> tuple[list[str], list[list[str | None]]]:
    """Validate per-segment inputs; return the hypotheses and the references, as sacrebleu streams
    ([reference number][segment], None where a segment has fewer references) or per segment."""
    for name, value in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(value, str):
            raise InvalidInputError(
                f"{name} is a single string; pass a list with one entry per segment, e.g. [{value[:30]!r}]"
            )
        if not isinstance(value, Sequence):
            raise InvalidInputError(f"{name} is a {type(value).__name__}; pass a list with one entry per segment")
    if len(hypotheses) == 0:
        raise InvalidInputError("hypotheses is empty; pass at least one segment")
    if len(hypotheses) != len(references):
        raise InvalidInputError(
            f"{len(hypotheses)} hypotheses but {len(references)} references; give one reference "
            "(a string or a list of strings) per hypothesis"
        )
    for i, h in enumerate(hypotheses):
        if not isinstance(h, str):
            raise InvalidInputError(f"hypotheses[{i}] is a {type(h).__name__}; each hypothesis must be a string")
    per_segment: list[list[str]] = []
    for i, r in enumerate(references):
        refs = [r] if isinstance(r, str) else list(r) if isinstance(r, Sequence) else None
        if not refs or not all(isinstance(x, str) for x in refs):
            raise InvalidInputError(
                f"references[{i}] is {r!r}; each entry must be a string or a non-empty list of strings"
            )
        per_segment.append(refs)
    if not transpose:
        return list(hypotheses), per_segment
    width = max(len(refs) for refs in per_segment)
    streams = [[refs[j] if j < len(refs) else None for refs in per_segment] for j in range(width)]
    return list(hypotheses), streams
