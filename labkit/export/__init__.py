"""labkit.export: models out of the notebook: ONNX files, Hugging Face folders, saved folders, compression, a page."""

from labkit.lazy import lazy_exports

_EXPORTS = {
    # onnx.py
    "to_onnx": "onnx",
    "read_onnx_spec": "onnx",
    "OnnxModel": "onnx",
    # hf.py
    "to_hf": "hf",
    "hf_tokenizer": "hf",
    # compress.py
    "quantize_onnx": "compress",
    "check_quantization": "compress",
    "QuantizationCheck": "compress",
    "QuantizationWarning": "compress",
    # page.py
    "build_page": "page",
    "PageInfo": "page",
    # tokenizer_spec.py
    "tokenizer_spec": "tokenizer_spec",
    # saved.py
    "save_model": "saved",
    "load_model": "saved",
    "LoadedModel": "saved",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
