"""labkit.evaluation: perplexity, classification metrics, BLEU/chrF (sacrebleu) and ROUGE (rouge-score)."""

from labkit.lazy import lazy_exports

_EXPORTS = {
    "perplexity": "perplexity",
    "PerplexityResult": "perplexity",
    "PrecisionRecallF1": "classification",
    "BleuResult": "text",
    "ChrfResult": "text",
    "accuracy": "classification",
    "precision_recall_f1": "classification",
    "confusion_matrix": "classification",
    "classification_report": "classification",
    "bleu": "text",
    "chrf": "text",
    "rouge": "text",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
