"""labkit.generation: sampling functions over logits, generate(), stream(), beam search with the KV cache."""

from labkit.lazy import lazy_exports

_EXPORTS = {
    "generate": "decoding",
    "stream": "decoding",
    "GenerationResult": "decoding",
    "SamplingOptions": "sampling",
    "greedy": "sampling",
    "sample": "sampling",
    "apply_temperature": "sampling",
    "top_k_filter": "sampling",
    "top_p_filter": "sampling",
    "apply_repetition_penalty": "sampling",
    "warp_logits": "sampling",
    "beam_search": "beam",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
