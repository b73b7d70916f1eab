"""Compression: int8 quantization of exported ONNX files, with a perplexity check that warns.

Two methods, both without calibration data:
- "dynamic" stores each weight matrix as int8 with a scale per output channel and quantizes the activations
  on the fly at run time (onnxruntime's `MatMulInteger`): integer matrix products, about a quarter of the
  float32 size for the matrices. Fine for small models; on a large language model the activations' outliers
  cost real quality (SmolLM2-135M: +50 % perplexity, see BENCHMARKS.md).
- "weights" stores the matrices as int8 with one scale per block of `block_size` weights and keeps the
  activations in float32 (onnxruntime's `MatMulNBits` with 8 bits): weight-only quantization, as LLM
  runtimes do it; perplexity moves by hundredths of a percent.
Whether quality holds is measured, not assumed: `check_quantization` compares the perplexity of the two files
on the same ids and warns past a stated bound.
Half precision (float16/bfloat16) on disk is `save_model(..., dtype=...)` / `to_hf(..., dtype=...)`."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.checks import check_choice, check_float, check_int, check_output_file
from labkit.errors import InvalidInputError
from labkit.export.onnx import OnnxModel, read_onnx_spec

__all__ = [
    "QuantizationWarning",
    "QuantizationCheck",
    "quantize_onnx",
    "check_quantization",
    "PERPLEXITY_BOUND",
    "QUANTIZE_METHODS",
]

PERPLEXITY_BOUND = 0.05  # warn when int8 perplexity exceeds the float32 one by more than 5 %
QUANTIZE_METHODS = ("dynamic", "weights")  # int8 weights and activations; int8 weights only


class QuantizationWarning(UserWarning):
    """A quantized model's perplexity moved past the stated bound: check its outputs before shipping it."""


@dataclass(frozen=True)
class QuantizationCheck:
    """Perplexity of the reference and the quantized model on the same ids, and whether it stayed in bounds."""

    reference_perplexity: float
    quantized_perplexity: float
    bound: float

    @property
    def relative_change(self) -> float:
        """(quantized - reference) / reference."""
        return self.quantized_perplexity / self.reference_perplexity - 1.0

    @property
    def ok(self) -> bool:
        """True when the quantized perplexity is within `bound` (relative) of the reference."""
        return self.relative_change <= self.bound

    def __str__(self) -> str:
        return (
            f"perplexity {self.reference_perplexity:.3f} -> {self.quantized_perplexity:.3f} "
            f"({100 * self.relative_change:+.2f} %, bound {100 * self.bound:.0f} %)"
        )


def quantize_onnx(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    method: str = "dynamic",
    per_channel: bool = True,
    block_size: int = 32,
) -> Path:
    """A float32 `.onnx` file from `to_onnx` in, its int8-quantized copy at `dst` out.

    method: "dynamic" (int8 weights and activations, integer matrix products) or "weights" (int8 weights in
    blocks, float32 activations; far better for large language models). per_channel ("dynamic"): one scale
    per output channel of each weight (more accurate than one per matrix). block_size ("weights"): weights
    sharing one scale, a power of two >= 16. The labkit metadata travels along, so `OnnxModel(dst)` works as
    on the original. Matrix products are quantized; an LSTM's recurrent operator stays float32.
    """
    src, dst = Path(src), Path(dst)
    check_choice("method", method, QUANTIZE_METHODS)
    check_int("block_size", block_size, low=16)
    if block_size & (block_size - 1):
        raise InvalidInputError(f"block_size must be a power of two (16, 32, 64, ...), got {block_size}")
    read_onnx_spec(src)  # refuses files labkit did not write, with a one-line error
    if dst.suffix != ".onnx":
        raise InvalidInputError(f"the quantized file name must end in .onnx, got {os.fspath(dst)!r}")
    if dst.resolve() == src.resolve():
        raise InvalidInputError("quantize_onnx writes a new file; give dst a different name from src")
    check_output_file("dst", dst)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizers log advice and progress on the root logger
    try:
        if method == "weights":
            _quantize_weights(src, dst, block_size)
        else:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # reduce_range: 7-bit weights. onnxruntime's u8 x s8 kernels on CPUs without VNNI add products in
            # pairs into int16, which saturates with full-range per-channel weights (255 * 127 * 2 > 32767):
            # measured on one SmolLM2 matrix, 10 % error instead of 2 %, and a perplexity tens of thousands of times larger for the model.
            quantize_dynamic(
                os.fspath(src),
                os.fspath(dst),
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
                reduce_range=per_channel,
            )
    finally:
        root.setLevel(level)
    return dst


def _quantize_weights(src: Path, dst: Path, block_size: int) -> None:
    """Weight-only int8: every constant MatMul weight in blocks of `block_size` with one scale (MatMulNBits)."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True, bits=8)
    quantizer = MatMulNBitsQuantizer(onnx.load(os.fspath(src)), algo_config=config)
    quantizer.process()
    onnx.save(quantizer.model.model, os.fspath(dst))


def check_quantization(
    reference: Any, quantized: Any, input_ids: Any, *, bound: float = PERPLEXITY_BOUND
) -> QuantizationCheck:
    """Two ONNX language models (paths or OnnxModel) and ids [batch, seq] in, their perplexities out.

    bound: the largest relative perplexity increase accepted; beyond it a QuantizationWarning is issued.
    """
    check_float("bound", bound, low=0.0)
    ref = reference if isinstance(reference, OnnxModel) else OnnxModel(reference)
    quant = quantized if isinstance(quantized, OnnxModel) else OnnxModel(quantized)
    if ref.kind == "encoder" or quant.kind == "encoder":
        raise InvalidInputError("check_quantization measures next-token perplexity: pass GPT or LSTMLM exports")
    result = QuantizationCheck(ref.perplexity(input_ids), quant.perplexity(input_ids), float(bound))
    if not result.ok:
        warnings.warn(
            f"int8 quantization moved {result}; keep the float32 model or check its outputs",
            QuantizationWarning,
            stacklevel=2,
        )
    return result
