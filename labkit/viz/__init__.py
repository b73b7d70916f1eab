"""labkit.viz: tensors and caches in, figures or self-contained offline HTML out (no ipywidgets here)."""

from labkit.lazy import lazy_exports

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
    # tokens.py
    "token_view": "tokens",
    "TokenView": "tokens",
    "TokenRun": "tokens",
    "tokenize_runs": "tokens",
    # attention_math.py
    "attention_steps": "attention_math",
    "attention_walkthrough": "attention_math",
    "Step": "attention_math",
    "AttentionWalkthrough": "attention_math",
    # cleaning.py
    "cleaning_view": "cleaning",
    "CleaningView": "cleaning",
    # summary.py
    "summary_view": "summary",
    "SummaryView": "summary",
    # confusion.py
    "confusion_view": "confusion",
    "ConfusionView": "confusion",
    # attention_by_hand.py
    "attention_by_hand": "attention_by_hand",
    "by_hand_steps": "attention_by_hand",
    "parse_matrix": "attention_by_hand",
    # lora.py
    "lora_parameter_table": "lora",
    "lora_parameter_figure": "lora",
    "lora_singular_values": "lora",
    "lora_singular_value_figure": "lora",
    "LoraTable": "lora",
    "LoraRow": "lora",
    # bertviz.py
    "to_bertviz": "bertviz",
    "BertvizView": "bertviz",
    "bertviz_head_view": "bertviz",
    "bertviz_model_view": "bertviz",
    "bertviz_neuron_view": "bertviz_neuron",
    # projector.py
    "project": "projector",
    "ProjectionResult": "projector",
    "projector_figure": "projector",
    "nearest_neighbours": "projector",
    "Neighbour": "projector",
    "checkpoint_trajectory": "projector",
    "Trajectory": "projector",
    "embedding_matrix": "projector",
    "token_frequencies": "projector",
    "procrustes": "projector",
    # lens.py, attribution.py, neurons.py, patching.py (the "looking inside" views)
    "logit_lens_view": "lens",
    "LogitLensView": "lens",
    "attribution_view": "attribution",
    "AttributionView": "attribution",
    "neuron_view": "neurons",
    "NeuronView": "neurons",
    "patching_view": "patching",
    "PatchingView": "patching",
    # curves.py
    "training_curves": "curves",
    "curves_svg": "curves",
    "curves_summary": "curves",
    "curve_data": "curves",
    "CurveData": "curves",
    # experiments.py
    "seed_spread_figure": "experiments",
    "seed_scores": "experiments",
    # optimizers.py
    "optimizer_curves": "optimizers",
    "moment_view": "optimizers",
    "MomentView": "optimizers",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
