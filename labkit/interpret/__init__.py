"""labkit.interpret: look inside a model. Logit lens, attribution (Captum), neuron activations, activation patching.

Model and inputs in, tensors and small result records out; the views in `labkit.viz` and the widgets in
`labkit.widgets` draw these records. Captum is imported inside the functions that use it.
"""

from labkit.lazy import lazy_exports

_EXPORTS = {
    # lens.py
    "logit_lens": "lens",
    "LogitLens": "lens",
    "lens_logits": "lens",
    "residual_stack": "lens",
    # attribution.py
    "attribute": "attribution",
    "attention_rollout": "attribution",
    "Attribution": "attribution",
    "embedding_forward": "attribution",
    # neurons.py
    "neuron_activations": "neurons",
    "NeuronActivations": "neurons",
    "Context": "neurons",
    "neuron_logit_effect": "neurons",
    "TokenEffect": "neurons",
    # patching.py
    "activation_patching": "patching",
    "PatchingResult": "patching",
    "logit_diff_metric": "patching",
    "PATCH_HOOKS": "patching",
    # common.py
    "token_texts": "common",
    "token_id": "common",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
