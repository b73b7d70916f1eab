"""labkit.widgets: interactive anywidget views; the only labkit package that imports ipywidgets/anywidget/traitlets/IPython."""

from labkit.lazy import lazy_exports

_EXPORTS = {
    # attention.py
    "AttentionWidget": "attention",
    "TokenizerExplorer": "tokens",
    "AttentionMathWidget": "attention_math",
    "LoraExplorer": "lora",
    "ProjectorWidget": "projector",
    "TrainingDashboard": "dashboard",
    "DashboardCallback": "dashboard",
    "GenerationPlayground": "playground",
    "LogitLensWidget": "interpret",
    "AttributionWidget": "interpret",
    "NeuronWidget": "interpret",
    "PatchingWidget": "interpret",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
