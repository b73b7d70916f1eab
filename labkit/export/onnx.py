"""ONNX export of labkit models and an onnxruntime runner for the exported files.

`to_onnx(model, path)` writes one self-contained `.onnx` file (opset 20, weights inside) through PyTorch's
`torch.export`-based exporter, with dynamic batch and sequence axes, and checks it with `onnx.checker`:

| model | inputs | outputs |
| --- | --- | --- |
| GPT | `input_ids` [batch, sequence] | `logits` [batch, sequence, vocab] |
| GPT, `with_cache=True` | + `past.{i}.key`, `past.{i}.value` [batch, kv_head, past, d_head] per layer | + `present.{i}.key`, `present.{i}.value` [batch, kv_head, past + sequence, d_head] |
| Encoder | `input_ids`, `attention_mask`, `token_type_ids` [batch, sequence] | `logits` (mlm, classification) or `last_hidden_state` |
| LSTMLM | `input_ids` | `logits` |
| LSTMLM, `with_cache=True` | + `h`, `c` [n_layer, batch, hidden] | + `h_out`, `c_out` |

`attentions=True` adds `attentions` [n_layer, batch, head, sequence, past + sequence] (GPT, Encoder). The file's
metadata (`labkit` key) records the model kind, its config and these names, so `OnnxModel` needs nothing else.
A first call with the cache passes past tensors of length 0.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from labkit.checks import check_float, check_int, check_output_file
from labkit.errors import InvalidInputError, MissingSourceError

__all__ = ["SUPPORTED", "OPSET", "to_onnx", "read_onnx_spec", "OnnxModel"]

SUPPORTED = ("GPT", "Encoder", "LSTMLM")
OPSET = 20  # the lowest opset with a Gelu operator; onnxruntime and onnxruntime-web both run it
FORMAT = "labkit-onnx"


def model_kind(model: nn.Module) -> str:
    """A labkit model in, "gpt", "encoder" or "lstm" out; anything else raises a one-line error."""
    name = type(model).__name__
    kinds = {"GPT": "gpt", "Encoder": "encoder", "LSTMLM": "lstm"}
    if name not in kinds or not hasattr(model, "config"):
        raise InvalidInputError(f"cannot export a {name}; supported models are {', '.join(SUPPORTED)} (labkit.models)")
    return kinds[name]


class _TensorCache:
    """A KV cache made of plain tensors: past keys/values in, each layer's concatenation out (traceable)."""

    def __init__(self, past: tuple[torch.Tensor, ...]) -> None:
        self.keys, self.values = list(past[0::2]), list(past[1::2])

    def get_seq_length(self, layer: int = 0) -> Any:
        return self.keys[layer].shape[2]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)
        self.values[layer] = torch.cat([self.values[layer], v], dim=2)
        return self.keys[layer], self.values[layer]

    def get(self, layer: int) -> None:  # cross-attention reuse: never in a decoder-only graph
        return None


class _GPTGraph(nn.Module):
    def __init__(self, model: nn.Module, with_cache: bool, attentions: bool) -> None:
        super().__init__()
        self.model, self.with_cache, self.attentions = model, with_cache, attentions

    def forward(self, input_ids: torch.Tensor, past: tuple[torch.Tensor, ...] = ()) -> tuple[torch.Tensor, ...]:
        cache = _TensorCache(past) if self.with_cache else None
        out = self.model(input_ids, past_key_values=cache, use_cache=self.with_cache, output_attentions=self.attentions)
        result = [out.logits]
        if cache is not None:
            for k, v in zip(cache.keys, cache.values):
                result += [k, v]
        if self.attentions:
            result.append(torch.stack(out.attentions))
        return tuple(result)


class _EncoderGraph(nn.Module):
    def __init__(self, model: nn.Module, attentions: bool) -> None:
        super().__init__()
        self.model, self.attentions = model, attentions

    def forward(self, input_ids, attention_mask, token_type_ids) -> tuple[torch.Tensor, ...]:
        out = self.model(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_attentions=self.attentions,
        )
        first = out.logits if out.logits is not None else out.hidden_states
        return (first, torch.stack(out.attentions)) if self.attentions else (first,)


class _LSTMGraph(nn.Module):
    def __init__(self, model: nn.Module, with_cache: bool) -> None:
        super().__init__()
        self.model, self.with_cache = model, with_cache

    def forward(self, input_ids: torch.Tensor, state: tuple[torch.Tensor, ...] = ()) -> tuple[torch.Tensor, ...]:
        out = self.model(input_ids, past_key_values=tuple(state) if state else None, use_cache=self.with_cache)
        return (out.logits, *out.past_key_values) if self.with_cache else (out.logits,)


def _graph_and_inputs(model: nn.Module, kind: str, with_cache: bool, attentions: bool) -> dict[str, Any]:
    """The wrapper module, sample inputs, dynamic shapes and the input/output names with their axes."""
    Dim = torch.export.Dim
    c = model.config
    batch, seq = Dim("batch"), Dim("sequence")
    b, t, p = 2, 5, 3  # distinct sizes above 1, so the exporter specialises none of them
    ids = torch.randint(0, c.vocab_size, (b, t))
    inputs: dict[str, list] = {"input_ids": ["batch", "sequence"]}
    if kind == "gpt":
        kv_heads, d_head = c.n_kv_head or c.n_head, c.n_embd // c.n_head
        past_dim = Dim("past_sequence", min=0)
        past = tuple(torch.zeros(b, kv_heads, p, d_head) for _ in range(2 * c.n_layer)) if with_cache else ()
        outputs: dict[str, list] = {"logits": ["batch", "sequence", c.vocab_size]}
        if with_cache:
            for i in range(c.n_layer):
                for n in ("key", "value"):
                    inputs[f"past.{i}.{n}"] = ["batch", kv_heads, "past_sequence", d_head]
            for i in range(c.n_layer):
                for n in ("key", "value"):
                    outputs[f"present.{i}.{n}"] = ["batch", kv_heads, "total_sequence", d_head]
        if attentions:
            outputs["attentions"] = [c.n_layer, "batch", c.n_head, "sequence", "total_sequence"]
        args = (ids, past) if with_cache else (ids,)
        shapes = (
            ({0: batch, 1: seq}, tuple({0: batch, 2: past_dim} for _ in past)) if with_cache else ({0: batch, 1: seq},)
        )
        return dict(
            graph=_GPTGraph(model, with_cache, attentions), args=args, shapes=shapes, inputs=inputs, outputs=outputs
        )
    if kind == "encoder":
        inputs.update(attention_mask=["batch", "sequence"], token_type_ids=["batch", "sequence"])
        args = (ids, torch.ones(b, t, dtype=torch.long), torch.zeros(b, t, dtype=torch.long))
        if c.head in ("mlm", "pretraining"):  # pretraining: the MLM logits (the NSP pair is a training aid)
            outputs = {"logits": ["batch", "sequence", c.vocab_size]}
        elif c.head == "classification":
            outputs = {"logits": ["batch", c.num_labels]}
        else:
            outputs = {"last_hidden_state": ["batch", "sequence", c.n_embd]}
        if attentions:
            outputs["attentions"] = [c.n_layer, "batch", c.n_head, "sequence", "sequence"]
        shapes = tuple({0: batch, 1: seq} for _ in args)
        return dict(graph=_EncoderGraph(model, attentions), args=args, shapes=shapes, inputs=inputs, outputs=outputs)
    # lstm
    outputs = {"logits": ["batch", "sequence", c.vocab_size]}
    state = tuple(torch.zeros(c.n_layer, b, c.hidden_size) for _ in range(2)) if with_cache else ()
    if with_cache:
        inputs.update(h=[c.n_layer, "batch", c.hidden_size], c=[c.n_layer, "batch", c.hidden_size])
        outputs.update(h_out=[c.n_layer, "batch", c.hidden_size], c_out=[c.n_layer, "batch", c.hidden_size])
    args = (ids, state) if with_cache else (ids,)
    shapes = ({0: batch, 1: seq}, ({1: batch}, {1: batch})) if with_cache else ({0: batch, 1: seq},)
    return dict(graph=_LSTMGraph(model, with_cache), args=args, shapes=shapes, inputs=inputs, outputs=outputs)


def _name_axes(proto: Any, axes: dict[str, list]) -> None:
    """Write our axis names and sizes onto the graph's inputs and outputs (the exporter's guesses can be static)."""
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = axes.get(value.name)
        if dims is None:
            continue
        shape = value.type.tensor_type.shape
        del shape.dim[:]
        for d in dims:
            dim = shape.dim.add()
            if isinstance(d, str):
                dim.dim_param = d
            else:
                dim.dim_value = int(d)


def _strip_trace_notes(proto: Any) -> None:
    """Drop the exporter's per-node notes (Python stack traces, FX names): half of a small model's file, no use."""
    for graph_values in (proto.graph.node, proto.graph.value_info, proto.graph.input, proto.graph.output):
        for item in graph_values:
            del item.metadata_props[:]
            item.doc_string = ""
    del proto.graph.metadata_props[:]


def to_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    with_cache: bool = False,
    attentions: bool = False,
    check: bool = True,
) -> Path:
    """A labkit GPT, Encoder or LSTMLM in, one checked `.onnx` file at `path` out (see the module table).

    with_cache: GPT: past keys/values as inputs and the updated ones as outputs; LSTMLM: the (h, c) state.
    attentions: also output every layer's attention pattern (GPT, Encoder). check: run onnx.checker (full).
    The model is exported in eval mode (dropout off) and in its own dtype; its training flag is restored after.
    """
    kind = model_kind(model)
    if not isinstance(with_cache, bool) or not isinstance(attentions, bool):
        raise InvalidInputError("with_cache and attentions must be True or False")
    if with_cache and kind == "encoder":
        raise InvalidInputError("an Encoder has no cache to export; call to_onnx without with_cache=True")
    if attentions and kind == "lstm":
        raise InvalidInputError("an LSTMLM has no attention; call to_onnx without attentions=True")
    path = Path(path)
    if path.suffix != ".onnx":
        raise InvalidInputError(f"the ONNX file name must end in .onnx, got {os.fspath(path)!r}")
    check_output_file("path", path)  # a file in the way of its folder fails here, before the export
    import onnx

    spec = _graph_and_inputs(model, kind, with_cache, attentions)
    was_training = model.training
    model.eval()
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the exporter logs each optional library it does not find (torchvision)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's progress notes and torch.export's deprecations
            program = torch.onnx.export(
                spec["graph"],
                spec["args"],
                dynamo=True,
                dynamic_shapes=spec["shapes"],
                input_names=list(spec["inputs"]),
                output_names=list(spec["outputs"]),
                opset_version=OPSET,
                verbose=False,
            )
    finally:
        model.train(was_training)
        quiet.setLevel(level)
    proto = program.model_proto
    _strip_trace_notes(proto)
    _name_axes(proto, {**spec["inputs"], **spec["outputs"]})
    meta = {
        "format": FORMAT,
        "version": 1,
        "kind": kind,
        "with_cache": with_cache,
        "attentions": attentions,
        "config": asdict(model.config),
        "inputs": spec["inputs"],
        "outputs": spec["outputs"],
    }
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = "labkit", json.dumps(meta)
    proto.producer_name = "labkit"
    if check:
        onnx.checker.check_model(proto, full_check=True)
    tmp = path.with_name(path.name + ".part")
    onnx.save_model(proto, os.fspath(tmp))
    os.replace(tmp, path)
    return path


def read_onnx_spec(path: str | os.PathLike) -> dict[str, Any]:
    """An `.onnx` file written by `to_onnx` (or quantized from one) in, its labkit metadata dict out."""
    path = Path(path)
    if not path.is_file():
        raise MissingSourceError(f"no ONNX file at {os.fspath(path)!r}; write one with labkit.export.to_onnx")
    import onnx

    try:
        proto = onnx.load_model(os.fspath(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError for a damaged, truncated or non-ONNX file
        raise InvalidInputError(
            f"{os.fspath(path)!r} is not a readable ONNX file ({type(exc).__name__}); write it again with "
            "labkit.export.to_onnx"
        ) from None
    for entry in proto.metadata_props:
        if entry.key == "labkit":
            return json.loads(entry.value)
    raise InvalidInputError(f"{os.fspath(path)!r} was not written by labkit.export.to_onnx (no labkit metadata)")


class OnnxModel:
    """An onnxruntime session over a file from `to_onnx`: numpy ids in, numpy logits (and states) out.

    path: the `.onnx` file. threads: intra-op threads (None = onnxruntime's default).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        check_int("threads", threads, allow_none=True, fix="None lets onnxruntime choose")
        self.spec = read_onnx_spec(path)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # shape-inference notes on dynamic axes are not for the user
        if threads is not None:
            options.intra_op_num_threads = threads
        self.path = Path(path)
        self.session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
        self.kind = self.spec["kind"]
        self.config = self.spec["config"]
        self.input_names = list(self.spec["inputs"])
        self.output_names = list(self.spec["outputs"])

    def __repr__(self) -> str:
        return f"OnnxModel({os.fspath(self.path)!r}, kind={self.kind!r}, with_cache={self.spec['with_cache']})"

    def run(self, **inputs: Any) -> dict[str, np.ndarray]:
        """Named inputs (numpy arrays or tensors) in, {output name: numpy array} out."""
        feeds = {}
        for name in self.input_names:
            if name not in inputs:
                raise InvalidInputError(f"missing input {name!r}; this model takes {', '.join(self.input_names)}")
            value = inputs[name]
            value = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            feeds[name] = value.astype(
                np.int64 if name in ("input_ids", "attention_mask", "token_type_ids") else np.float32
            )
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds)))

    def empty_state(self, batch: int) -> dict[str, np.ndarray]:
        """The inputs that start a sequence with no past: zero-length keys/values (GPT) or zero (h, c) (LSTM)."""
        state = {}
        for name, dims in self.spec["inputs"].items():
            if name.startswith("past.") or name in ("h", "c"):
                shape = [batch if d == "batch" else 0 if d == "past_sequence" else d for d in dims]
                state[name] = np.zeros(shape, dtype=np.float32)
        return state

    def logits(self, input_ids: Any) -> np.ndarray:
        """Ids [batch, seq] in, logits [batch, seq, vocab] out (a fresh sequence: empty cache or state)."""
        ids = self._ids(input_ids)
        if self.kind == "encoder":
            return self.run(input_ids=ids, attention_mask=np.ones_like(ids), token_type_ids=np.zeros_like(ids))[
                self.output_names[0]
            ]
        return self.run(input_ids=ids, **self.empty_state(ids.shape[0]))["logits"]

    def step(
        self, input_ids: Any, state: dict[str, np.ndarray] | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Ids [batch, seq] and the state from the last step (None = start) in, (logits, next state) out.

        Needs a file exported with `with_cache=True`.
        """
        if not self.spec["with_cache"]:
            raise InvalidInputError("this ONNX file has no cache inputs; export it with to_onnx(..., with_cache=True)")
        ids = self._ids(input_ids)
        out = self.run(input_ids=ids, **(state if state is not None else self.empty_state(ids.shape[0])))
        nxt = {}
        for name in self.spec["inputs"]:
            if name.startswith("past."):
                nxt[name] = out["present." + name[len("past.") :]]
            elif name in ("h", "c"):
                nxt[name] = out[name + "_out"]
        return out["logits"], nxt

    def greedy(self, input_ids: Any, max_new_tokens: int) -> np.ndarray:
        """Prompt ids [batch, seq] in, prompt + `max_new_tokens` greedily chosen ids out (with the cache if exported)."""
        return self.sample(input_ids, max_new_tokens, temperature=0.0)

    def sample(self, input_ids: Any, max_new_tokens: int, *, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
        """Prompt ids [batch, seq] in, prompt + `max_new_tokens` sampled ids out (temperature 0 = greedy).

        The cache is used when the file has one; there is no sliding window, so prompt + new tokens must fit
        the model's context. seed: numpy seed of the sampling.
        """
        check_int("max_new_tokens", max_new_tokens, low=0)
        check_float("temperature", temperature, low=0.0)
        if self.kind == "encoder":
            raise InvalidInputError("an Encoder does not generate; pass a GPT or LSTMLM export")
        rng = np.random.default_rng(seed)
        seq = self._ids(input_ids)
        state, feed = None, seq
        for _ in range(max_new_tokens):
            if self.spec["with_cache"]:
                logits, state = self.step(feed, state)
            else:
                logits = self.logits(seq)
            last = logits[:, -1].astype(np.float64)
            if temperature == 0:
                nxt = last.argmax(-1)
            else:
                p = np.exp((last - last.max(-1, keepdims=True)) / temperature)
                p /= p.sum(-1, keepdims=True)
                nxt = np.array([rng.choice(p.shape[-1], p=row) for row in p])
            feed = nxt.astype(np.int64)[:, None]
            seq = np.concatenate([seq, feed], axis=1)
        return seq

    def perplexity(self, input_ids: Any) -> float:
        """Ids [batch, seq] in, the perplexity of each next token given the ones before it out (exp of mean NLL)."""
        ids = self._ids(input_ids)
        if ids.shape[1] < 2:
            raise InvalidInputError("perplexity needs sequences of at least 2 tokens")
        logits = self.logits(ids)[:, :-1].astype(np.float64)
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        nll = -np.take_along_axis(logp, ids[:, 1:, None], axis=-1).mean()
        return float(np.exp(nll))

    def _ids(self, input_ids: Any) -> np.ndarray:
        ids = input_ids.detach().cpu().numpy() if isinstance(input_ids, torch.Tensor) else np.asarray(input_ids)
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise InvalidInputError(f"input_ids must be integer ids [batch, seq], got shape {ids.shape} of {ids.dtype}")
        vocab = self.config["vocab_size"]
        if ids.size and (ids.min() < 0 or ids.max() >= vocab):
            raise InvalidInputError(f"token ids must lie in [0, {vocab}); got {int(ids.min())}..{int(ids.max())}")
        return ids.astype(np.int64)
