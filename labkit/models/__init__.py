"""labkit.models: GPT, Encoder (BERT-style), Seq2Seq, LSTMLM; hook points, activation caches, KV cache, HF interop."""

from labkit.lazy import lazy_exports

_EXPORTS = {
    "HookPoint": "hooks",
    "HookedModel": "hooks",
    "ActivationCache": "hooks",
    "ModelOutput": "outputs",
    "KVCache": "kv_cache",
    "GPT": "gpt",
    "GPTConfig": "gpt",
    "Encoder": "encoder",
    "EncoderConfig": "encoder",
    "Seq2Seq": "seq2seq",
    "Seq2SeqConfig": "seq2seq",
    "LSTMLM": "lstm",
    "LSTMConfig": "lstm",
    "Seq2SeqCache": "seq2seq",
    "summary": "model_summary",
    "ModelSummary": "model_summary",
    "load_gguf": "hf_gpt",
    "load_pretrained": "pretrained",
    "cached_models": "model_cache",
    "clear_model_cache": "model_cache",
    "CachedModel": "model_cache",
    "smollm2_gguf_path": "hf_gpt",
    "encode_sentences": "encoder",
    "relayout_for_decoding": "weight_layout",
    "relayout_for_training": "weight_layout",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
