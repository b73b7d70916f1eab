"""labkit.viz: tensors and caches in, figures or self-contained offline HTML out (no ipywidgets here)."""
from labkit._lazy import lazy_exports

_EXPORTS = {
    # attention.py
    "AttentionPayload": "attention",
    "AttentionView": "attention",
    "attention_payload": "attention",
    "attention_tensor": "attention",
    "head_view": "attention",
    "model_view": "attention",
    "qk_view": "attention",
    "cross_attention_view": "attention",
    "attention_heatmap": "attention",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
