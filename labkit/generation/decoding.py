"""generate() and stream(): prompt ids (or text) in, continued ids out, one KV-cached forward pass per new token.

Works for labkit's GPT (GPT-2 and Llama layouts), LSTMLM (carrying its (h, c)
state) and Seq2Seq (encode once, then decode with a cache). The loop is kept
lean on purpose: a preallocated output buffer, no host synchronisation per step
unless eos/stop checks or per-step details need one, and `torch.inference_mode()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import torch

from labkit.checks import check_int
from labkit.errors import InvalidInputError
from labkit.generation.sampling import SamplingOptions, apply_repetition_penalty
from labkit.models.kv_cache import KVCache
from labkit.models.weight_layout import relayout_for_decoding

__all__ = ["GenerationResult", "generate", "stream"]


@dataclass
class GenerationResult:
    """What `generate(..., return_details=True)` returns (also returned for text prompts).

    steps: one dict per new token with `token_ids` [batch], `top_ids`/`top_probs` [batch, top_candidates] (the
    distribution the token was drawn from, after temperature/top-k/top-p/repetition penalty), `logprobs` [batch]
    (the chosen token under the unprocessed model distribution) and, with output_attentions=True, `attentions`
    (per layer [batch, head, 1, k]: the attention of the query that predicted this token) and, for Seq2Seq,
    `cross_attentions` (per layer [batch, head, 1, src]).
    """

    sequences: torch.Tensor  # [batch, prompt + new]; Seq2Seq: [batch, 1 + new] starting with decoder_start_token_id
    new_tokens: torch.Tensor  # [batch, new] the generated part only (pad after a row finished)
    prompt_length: int  # columns of `sequences` that hold the (left-padded) prompt
    text: str | list[str] | None = None  # decoded new tokens (eos/pad dropped): str for one prompt, list for a batch
    steps: list[dict[str, Any]] = field(default_factory=list)
    scores: torch.Tensor | None = None  # [batch, new, vocab] processed logits each token was chosen from
    logprobs: torch.Tensor | None = None  # [batch, new] log-probability of each chosen token under the model
    sequence_scores: torch.Tensor | None = None  # beam search: length-normalised log-probability of each sequence
    finished: torch.Tensor | None = None  # [batch] True where the row stopped on eos or a stop sequence


# ---- prompts, tokenizers and stop sequences --------------------------------------------------------------------


def tokenizer_id(tokenizer: Any, role: str) -> int | None:
    """A labkit (`eos_id`) or Hugging Face (`eos_token_id`) tokenizer and a role ("eos", "pad") in, that id or None out."""
    if tokenizer is None:
        return None
    for name in (f"{role}_id", f"{role}_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            return value
    return None


def never_generated_ids(tokenizer: Any, eos: list[int]) -> list[int]:
    """A tokenizer and the eos ids in, the ids generation must never propose out.

    A tokenizer that labkit trained (char, bpe, wordpiece) adds special tokens (<pad>, <bos>, <unk>, <mask>, ...)
    that never follow text in its training data; a model that has not trained long still gives them some
    probability, and a sample would print "<pad>". Every special id but eos (which ends a row) is left out.
    Pretrained tokenizers are left alone: their special tokens (chat markers) may be real outputs.
    """
    if getattr(tokenizer, "kind", None) not in ("char", "bpe", "wordpiece"):
        return []
    return sorted(i for i in getattr(tokenizer, "special_ids", ()) if i not in eos)


def _encode(tokenizer: Any, text: str) -> list[int]:
    if tokenizer is None:
        raise InvalidInputError(
            "a text prompt needs tokenizer= (a labkit Tokenizer or a Hugging Face tokenizer), or pass token ids"
        )
    out = tokenizer.encode(text)
    out = getattr(out, "ids", out)  # a tokenizers.Encoding
    out = out["input_ids"] if isinstance(out, dict) else out
    return [int(i) for i in (out.tolist() if isinstance(out, torch.Tensor) else out)]


def decode_rows(tokenizer: Any, new: torch.Tensor, lengths: torch.Tensor | None, eos: list[int]) -> list[str]:
    """New ids [batch, n] and each row's generated length in, the decoded text per row (pad and a final eos dropped)."""
    texts = []
    for r, row in enumerate(new.tolist()):
        row = row[: int(lengths[r])] if lengths is not None else row
        if row and row[-1] in eos:
            row = row[:-1]
        texts.append(tokenizer.decode(row))
    return texts


@dataclass
class Prompt:
    """Prompt ids prepared for decoding: padded rows, their mask and the preallocated output buffer."""

    ids: torch.Tensor  # [batch, t] prompt (Seq2Seq: source) ids
    mask: torch.Tensor | None  # [batch, t] 1 = real token; None when nothing is padded (the fast path)
    buffer: torch.Tensor  # [batch, length + max_new_tokens] sequences being written
    mask_buffer: torch.Tensor | None  # [batch, length + max_new_tokens] mask grown with ones for new tokens
    length: int  # prompt columns in `buffer` (Seq2Seq: 1, the decoder start token)
    is_text: bool = False  # the prompt was text: generate returns a GenerationResult with `text`
    single: bool = False  # one un-batched prompt: `text` is a str
    length_done: int = 0  # columns of `buffer` written so far
    row_lengths: torch.Tensor | None = None  # [batch] new tokens per row up to and including its eos / stop
    finished: torch.Tensor | None = None  # [batch] the row ended on eos / stop (tracked only when those are given)


def _rows(input_ids: Any, tokenizer: Any) -> tuple[list[list[int]] | torch.Tensor, bool, bool]:
    """Any accepted prompt form in, (rows as a 2-D tensor or a list of id lists, is_text, single) out."""
    if isinstance(input_ids, str):
        return [_encode(tokenizer, input_ids)], True, True
    if isinstance(input_ids, torch.Tensor):
        if input_ids.is_floating_point() or input_ids.dim() not in (1, 2):
            raise InvalidInputError(
                f"input_ids must be integer ids of shape [seq] or [batch, seq], got {input_ids.dtype} {tuple(input_ids.shape)}"
            )
        return (input_ids.unsqueeze(0), False, True) if input_ids.dim() == 1 else (input_ids, False, False)
    if isinstance(input_ids, (list, tuple)) and input_ids:
        if all(isinstance(x, str) for x in input_ids):
            return [_encode(tokenizer, x) for x in input_ids], True, False
        if all(isinstance(x, int) for x in input_ids):
            return [list(input_ids)], False, True
        if all(isinstance(x, (list, tuple, torch.Tensor)) for x in input_ids):
            return [[int(i) for i in x] for x in input_ids], False, False
    raise InvalidInputError(
        f"input_ids must be a tensor, a list of ids, a list of id lists or text (with tokenizer=), got {type(input_ids).__name__}"
    )


def prepare_prompt(
    input_ids: Any, attention_mask: torch.Tensor | None, tokenizer: Any, pad: int, decoder: Decoder, max_new_tokens: int
) -> Prompt:
    """Any accepted prompt form in, a Prompt out: ragged rows padded (left for decoders, right for a Seq2Seq source)."""
    kind = decoder.kind
    rows, is_text, single = _rows(input_ids, tokenizer)
    if isinstance(rows, list):
        longest = max(len(r) for r in rows)
        if kind == "lstm" and any(len(r) != longest for r in rows):
            raise InvalidInputError(
                "LSTMLM cannot generate from prompts of different lengths in one batch; give equal lengths or one prompt at a time"
            )
        ids = torch.full((len(rows), longest), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            cols = slice(0, len(r)) if kind == "seq2seq" else slice(longest - len(r), longest)
            ids[i, cols], mask[i, cols] = torch.tensor(r, dtype=torch.long), 1
        if attention_mask is not None:
            raise InvalidInputError(
                "attention_mask goes with a padded id tensor; for lists of ids leave it out (padding is done for you)"
            )
    else:
        ids = rows.long()
        mask = None if attention_mask is None else attention_mask.to(ids.device).long().reshape(ids.shape[0], -1)
        if mask is not None and mask.shape != ids.shape:
            raise InvalidInputError(
                f"attention_mask shape {tuple(attention_mask.shape)} must equal input_ids shape {tuple(ids.shape)}"
            )
    if ids.size(1) == 0 or (mask is not None and bool((mask.sum(1) == 0).any())):
        raise InvalidInputError("a prompt is empty; give every row at least one token (e.g. the tokenizer's BOS id)")
    check_length(decoder, ids.size(1), max_new_tokens)  # before the output buffer is allocated
    device = next(decoder.model.parameters()).device
    ids, mask = ids.to(device), None if mask is None else mask.to(device)
    if mask is not None and bool(mask.all()):
        mask = None  # nothing padded: take the mask-free fast path
    if mask is not None and kind != "seq2seq" and bool((mask[:, 1:] < mask[:, :-1]).any()):
        if kind == "lstm":
            raise InvalidInputError(
                "LSTMLM generates from unpadded prompts only; give equal-length prompts or one at a time"
            )
        raise InvalidInputError(
            "prompts are right-padded; pad them on the left for generation (tokenizer.padding_side = 'left')"
        )
    b = ids.size(0)
    length = 1 if kind == "seq2seq" else ids.size(1)
    buffer = torch.full((b, length + max_new_tokens), pad, dtype=torch.long, device=device)
    mask_buffer = None
    if kind == "seq2seq":
        buffer[:, 0] = decoder.model.config.decoder_start_token_id
    else:
        buffer[:, :length] = ids
        if mask is not None:
            mask_buffer = torch.ones_like(buffer)
            mask_buffer[:, :length] = mask
    return Prompt(ids, mask, buffer, mask_buffer, length, is_text, single)


class StopChecker:
    """Stop sequences (token-id lists or strings) in; `hit(...)` says which rows just ended with one."""

    def __init__(self, stop: list | None, tokenizer: Any) -> None:
        self.tokenizer, self.ids, self.strings = tokenizer, [], []
        if isinstance(stop, str):  # one stop string, not one per character
            stop = [stop]
        for s in stop or []:
            if isinstance(s, str) and s:
                if tokenizer is None:
                    raise InvalidInputError(f"stop string {s!r} needs tokenizer=; or give stop as token-id sequences")
                self.strings.append(s)
            elif isinstance(s, (list, tuple, torch.Tensor)) and len(s) and all(isinstance(int(i), int) for i in s):
                self.ids.append(torch.as_tensor([int(i) for i in s], dtype=torch.long))
            else:
                raise InvalidInputError(f"each stop entry must be a non-empty string or list of token ids, got {s!r}")
        self.active = bool(self.ids or self.strings)

    def hit(self, buf: torch.Tensor, start: int, end: int, unfinished: torch.Tensor) -> torch.Tensor:
        """Sequences [batch, >= end] with new tokens in [start, end) in, [batch] bool (a row's new tokens end in a stop) out."""
        out = torch.zeros(buf.size(0), dtype=torch.bool, device=buf.device)
        for s in self.ids:
            if end - start >= len(s):
                out |= (buf[:, end - len(s) : end] == s.to(buf.device)).all(-1)
        if self.strings:
            for r in unfinished.nonzero()[:, 0].tolist():
                text = self.tokenizer.decode(buf[r, start:end].tolist())
                out[r] |= any(s in text for s in self.strings)
        return out


class TextStream:
    """Token ids in one at a time, text pieces out: the delta of decode(all ids), holding back split characters."""

    def __init__(self, tokenizer: Any, eos: list[int]) -> None:
        self.tokenizer, self.eos, self.ids, self.shown = tokenizer, eos, [], ""

    def push(self, token: int, flush: bool = False) -> str:
        """One new token id in, the newly completed text out ('' while a multi-byte character is still incomplete)."""
        if token not in self.eos:
            self.ids.append(token)
        text = self.tokenizer.decode(self.ids)
        if text.endswith("\ufffd") and not flush:  # byte-level BPE: the rest of this character is still to come
            return ""
        piece, self.shown = text[len(self.shown) :], text
        return piece


class Decoder:
    """A GPT, LSTMLM or Seq2Seq behind one incremental interface used by generate, stream and beam search.

    `start(ids, mask)` runs the prompt (Seq2Seq: encodes the source) and returns last-position logits [batch, vocab];
    `step(seq, mask, length)` feeds token `seq[:, length - 1]` (or recomputes `seq[:, :length]` without a cache)
    and returns the next logits; `reorder(index)` gathers the state rows for beam search.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        use_cache: bool = True,
        sliding_window: bool = False,
        output_attentions: bool = False,
    ) -> None:
        self.model, self.use_cache, self.sliding_window = model, use_cache, sliding_window
        self.kind = model_kind(model)
        if not model.training and not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            # CPUs stream tall weights 2-3x faster column-major (values unchanged). Only in eval mode, so samples
            # drawn during training (a dashboard, a callback) never change the layout a run trains in; never
            # under DDP, whose gradient buckets follow the parameters' strides.
            relayout_for_decoding(model)
        self.output_attentions = output_attentions and self.kind != "lstm"
        c = model.config
        unlimited = self.kind == "lstm" or (
            getattr(c, "positions", "") == "rotary" and getattr(c, "rope_extrapolate", False)
        )
        self.limit = None if unlimited else c.block_size  # longest sequence one forward pass accepts
        self.state: Any = None
        self.memory = self.src_mask = None
        self.last: Any = None  # the latest ModelOutput (for attentions)
        self.never: list[int] = []  # ids whose logits are -inf: tokens the model must never propose (see setup)
        self._never_t: torch.Tensor | None = None

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor | None, cached: bool) -> torch.Tensor:
        m, oa = self.model, self.output_attentions
        if self.kind == "gpt":
            out = m(
                ids,
                attention_mask=mask,
                past_key_values=self.state if cached else None,
                use_cache=cached,
                output_attentions=oa,
            )
        elif self.kind == "lstm":
            out = m(ids, past_key_values=self.state if cached else None, use_cache=cached)
        else:
            out = m(
                decoder_input_ids=ids,
                encoder_outputs=self.memory,
                attention_mask=self.src_mask,
                past_key_values=self.state if cached else None,
                use_cache=cached,
                output_attentions=oa,
            )
        if cached:
            self.state = out.past_key_values
        self.last = out
        logits = out.logits[:, -1]
        if self.never:
            if self._never_t is None:
                ids = [i for i in self.never if i < logits.size(-1)]
                self._never_t = torch.tensor(ids, dtype=torch.long, device=logits.device)
            logits = logits.index_fill(-1, self._never_t, float("-inf"))
        return logits

    def start(self, ids: torch.Tensor, mask: torch.Tensor | None, total_len: int) -> torch.Tensor:
        """Prompt ids [batch, t] (Seq2Seq: source ids and mask) in, next-token logits [batch, vocab] out."""
        if self.kind == "seq2seq":
            self.src_mask = mask
            self.memory = self.model.encode(ids, attention_mask=mask)
            ids = torch.full(
                (ids.size(0), 1), self.model.config.decoder_start_token_id, dtype=torch.long, device=ids.device
            )
            mask = None
        elif self.kind == "gpt" and self.use_cache:
            # one buffer sized for the whole generation: no regrowth while decoding
            self.state = KVCache(self.model.config.n_layer, max_len=min(total_len, self.limit or total_len))
        if self.limit is not None and ids.size(1) > self.limit:  # only reachable with sliding_window=True
            ids, mask = ids[:, -self.limit :], None if mask is None else mask[:, -self.limit :]
            self.state = None
        return self._forward(ids, mask, self.use_cache and (self.limit is None or ids.size(1) < self.limit))

    def step(self, seq: torch.Tensor, mask: torch.Tensor | None, length: int) -> torch.Tensor:
        """Sequences so far [batch, >= length] (last token new) in, next-token logits [batch, vocab] out."""
        if self.use_cache and self.state is not None and (self.limit is None or length <= self.limit):
            return self._forward(seq[:, length - 1 : length], None if mask is None else mask[:, :length], True)
        begin = 0 if self.limit is None else max(0, length - self.limit)  # sliding window: the last `limit` tokens
        self.state = None
        return self._forward(seq[:, begin:length], None if mask is None else mask[:, begin:length], False)

    def reorder(self, index: torch.Tensor) -> None:
        """Row indices [new_batch] in; the decoding state is gathered in that order (beam search)."""
        if self.state is None:
            return
        if self.kind == "lstm":
            self.state = tuple(s.index_select(1, index) for s in self.state)
        else:
            self.state.reorder(index)

    def step_attentions(self) -> tuple[tuple | None, tuple | None]:
        """Per-layer attention [batch, head, 1, k] (and cross-attention) of the last query of the latest pass."""
        out = self.last
        if not self.output_attentions or out is None or out.attentions is None:
            return None, None
        att = tuple(a[:, :, -1:] for a in out.attentions)
        cross = tuple(a[:, :, -1:] for a in out.cross_attentions) if out.cross_attentions is not None else None
        return att, cross


def model_kind(model: Any) -> str:
    """A labkit model in, "gpt" | "lstm" | "seq2seq" out; a one-line error for anything generate cannot drive."""
    arch = getattr(getattr(model, "config", None), "arch", None)
    if arch not in ("gpt", "lstm", "seq2seq"):
        raise InvalidInputError(
            f"generate needs a labkit GPT, LSTMLM or Seq2Seq, got {type(model).__name__} (arch={arch!r}); "
            "for a transformers model convert it with GPT.from_hf(model)"
        )
    return arch


def check_length(decoder: Decoder, prompt_len: int, max_new_tokens: int) -> None:
    """Raise the one-line context error when prompt + new tokens would not fit and there is no sliding window."""
    check_int("max_new_tokens", max_new_tokens)
    total = prompt_len + max_new_tokens
    if decoder.kind == "seq2seq":
        c = decoder.model.config
        if prompt_len > c.block_size or 1 + max_new_tokens > c.block_size:
            raise InvalidInputError(
                f"Seq2Seq block_size={c.block_size} fits a source of at most {c.block_size} tokens and at most "
                f"{c.block_size - 1} new tokens; got source {prompt_len} and max_new_tokens={max_new_tokens}"
            )
    elif decoder.limit is not None and total > decoder.limit and not decoder.sliding_window:
        raise InvalidInputError(
            f"prompt of {prompt_len} tokens + max_new_tokens={max_new_tokens} = {total} exceeds the context "
            f"block_size={decoder.limit}; pass sliding_window=True or ask for at most {max(decoder.limit - prompt_len, 0)} new tokens"
        )


def eos_ids(eos_token_id: int | list[int] | None, tokenizer: Any, model: Any = None) -> list[int]:
    """The ids that end a row: eos_token_id when given; else the tokenizer's eos and the model's own (a chat model's
    end-of-turn token, e.g. SmolLM2's <|im_end|>, which `load_pretrained` records in `config.eos_token_id`)."""
    if eos_token_id is None:
        found = [tokenizer_id(tokenizer, "eos")]
        own = getattr(getattr(model, "config", None), "eos_token_id", None)
        found += own if isinstance(own, list) else [own]
        ids = list(dict.fromkeys(i for i in found if i is not None))
    else:
        ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    if not all(isinstance(i, int) and i >= 0 for i in ids):
        raise InvalidInputError(f"eos_token_id must be a token id or a list of them, got {eos_token_id!r}")
    return ids


_KEYWORD_DEFAULTS = {f.name: f.default for f in fields(SamplingOptions)}


def sampling_options(
    sampling: SamplingOptions | None,
    do_sample: bool | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    seed: int | None = None,
) -> SamplingOptions:
    """generate/stream's `sampling=` or their sampling keywords (do_sample, temperature, ...) in, one SamplingOptions out."""
    keywords = dict(
        do_sample=do_sample,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        seed=seed,
    )
    if sampling is None:
        return SamplingOptions(**keywords)
    if not isinstance(sampling, SamplingOptions):
        raise InvalidInputError(
            f"sampling must be a SamplingOptions (or None), got {type(sampling).__name__}; "
            "build one with SamplingOptions(temperature=..., top_k=...)"
        )
    given = [name for name, value in keywords.items() if value != _KEYWORD_DEFAULTS[name]]
    if given:
        raise InvalidInputError(
            f"pass sampling= or the keywords {', '.join(given)}, not both; put them into the SamplingOptions"
        )
    return sampling


class Prepared(NamedTuple):
    """Everything a decoding loop needs, validated before the first forward pass."""

    decoder: Decoder
    prompt: Prompt
    eos: list[int]  # ids that end a row
    pad: int  # filler after a row ended
    stops: StopChecker


def setup(
    decoder: Decoder,
    input_ids: Any,
    max_new_tokens: int,
    attention_mask: torch.Tensor | None = None,
    tokenizer: Any = None,
    pad_token_id: int | None = None,
    eos_token_id: int | list[int] | None = None,
    stop: list | None = None,
) -> Prepared:
    """A Decoder over the model, a prompt and the decoding arguments in, `Prepared` (decoder, padded prompt, eos,
    pad, stops) out. Shared by generate, stream and beam search; all is checked before the first forward pass."""
    stops = StopChecker(stop, tokenizer)
    model = decoder.model
    eos = eos_ids(eos_token_id, tokenizer, model)
    config = getattr(model, "config", None)
    vocab = getattr(config, "tgt_vocab_size", None) or getattr(config, "vocab_size", None)
    if isinstance(vocab, int) and any(i >= vocab for i in eos):  # an id the model can never produce: no early stop
        raise InvalidInputError(
            f"eos_token_id {max(eos)} is outside the model's vocabulary [0, {vocab}), so generation could never stop "
            "on it; pass the eos id of the tokenizer the model was trained with"
        )
    decoder.never = never_generated_ids(tokenizer, eos)
    pad = pad_token_id if pad_token_id is not None else tokenizer_id(tokenizer, "pad")
    if pad is None:  # HF's choice: fill finished rows with eos when there is no pad token
        pad = decoder.model.config.pad_token_id if decoder.kind == "seq2seq" else (eos[0] if eos else 0)
    prompt = prepare_prompt(input_ids, attention_mask, tokenizer, pad, decoder, max_new_tokens)
    return Prepared(decoder, prompt, eos, pad, stops)


def _run(
    prep: Prepared, max_new_tokens: int, options: SamplingOptions, *, details: bool, top_candidates: int
) -> Iterator[dict[str, Any]]:
    """The decoding loop; yields per step a dict (details only when asked) after writing the token into prompt.buffer.

    Runs under the caller's grad mode (generate wraps it in inference_mode; stream enters it around each step).
    """
    decoder, prompt, eos, pad, stops = prep
    ids, mask = prompt.ids, prompt.mask
    b, p = prompt.buffer.shape[0], prompt.length
    buf = prompt.buffer  # [batch, p + max_new_tokens], prompt already written
    mask_buf = prompt.mask_buffer  # None when no row is padded: the fast path
    do_sample, penalty = options.samples, options.repetition_penalty
    gen = (
        torch.Generator(device=buf.device).manual_seed(options.seed)
        if (do_sample and options.seed is not None)
        else None
    )
    track = bool(eos) or stops.active
    eos_t = torch.tensor(eos, device=buf.device) if eos else None
    unfinished = torch.ones(b, dtype=torch.bool, device=buf.device)
    if track:
        prompt.row_lengths = torch.full((b,), max_new_tokens, dtype=torch.long, device=buf.device)
        prompt.finished = ~unfinished  # updated in place below
    logits = decoder.start(ids, mask, p + max_new_tokens)
    for i in range(max_new_tokens):
        pos = p + i
        raw = logits
        if penalty != 1.0:
            logits = apply_repetition_penalty(logits, buf[:, :pos], penalty)
        if do_sample:
            logits = options.warp(logits)
            token = torch.multinomial(torch.softmax(logits.float(), dim=-1), 1, generator=gen)
        else:
            token = logits.argmax(dim=-1, keepdim=True)
        if track:
            token = torch.where(unfinished[:, None], token, pad)
        buf[:, pos : pos + 1] = token
        info: dict[str, Any] = {"index": i}
        if details:
            probs = torch.softmax(logits.float(), dim=-1)
            top = probs.topk(min(top_candidates, probs.size(-1)), dim=-1)
            att, cross = decoder.step_attentions()
            info.update(
                token_ids=token[:, 0],
                top_ids=top.indices,
                top_probs=top.values,
                scores=logits,
                logprobs=torch.log_softmax(raw.float(), dim=-1).gather(-1, token)[:, 0],
                attentions=att,
                cross_attentions=cross,
            )
        if track:
            just = torch.zeros_like(unfinished)
            if eos_t is not None:
                just |= torch.isin(token[:, 0], eos_t)
            just |= stops.hit(buf, p, pos + 1, unfinished)
            unfinished &= ~just
            prompt.row_lengths.masked_fill_(just, i + 1)
            prompt.finished |= just
            info["finished"] = prompt.finished
            done = not bool(unfinished.any())  # the one host sync per step that stopping needs
        else:
            done = False
        prompt.length_done = pos + 1
        yield info
        if done or i == max_new_tokens - 1:
            return
        logits = decoder.step(buf, mask_buf, pos + 1)


def generate(
    model: torch.nn.Module,
    input_ids: Any,
    max_new_tokens: int = 32,
    *,
    sampling: SamplingOptions | None = None,
    attention_mask: torch.Tensor | None = None,
    do_sample: bool | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    num_beams: int = 1,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    num_return_sequences: int = 1,
    eos_token_id: int | list[int] | None = None,
    pad_token_id: int | None = None,
    stop: list | None = None,
    tokenizer: Any = None,
    seed: int | None = None,
    use_cache: bool = True,
    sliding_window: bool = False,
    return_details: bool = False,
    top_candidates: int = 5,
    output_attentions: bool = False,
) -> torch.Tensor | GenerationResult:
    """A model and a prompt in, prompt + new token ids [batch, prompt + new] out (like transformers' generate).

    Returns a `GenerationResult` instead when return_details=True or the prompt is text. Rows are left-padded to
    a common length (GPT); once a row hits eos or a stop sequence it continues with pad_token_id, and generation
    ends early when every row has finished. Seq2Seq: input_ids is the source and the result is the decoder sequence.

    input_ids: a 1-D or 2-D id tensor, a list of ids, a list of id lists (ragged is fine), or text / a list of texts
        with `tokenizer=` (a labkit Tokenizer or a Hugging Face tokenizer). attention_mask: [batch, seq], 1 = real.
        With a tokenizer labkit trained (char, bpe, wordpiece) its special tokens other than eos (<pad>, <bos>,
        <unk>, ...) are never generated.
    max_new_tokens: tokens to add.
    sampling: a `SamplingOptions` (how each token is chosen). The keywords do_sample, temperature, top_k, top_p,
        repetition_penalty and seed build one instead (see `SamplingOptions`: None/defaults = greedy); give
        either, not both.
    num_beams: > 1 runs beam search (`labkit.generation.beam_search`) with length_penalty, early_stopping
        (True, False or "never") and num_return_sequences. eos_token_id: id or ids that end a row (None = the
        tokenizer's eos, if any). pad_token_id: filler after a row ended (None = tokenizer's pad, else eos, else 0).
    stop: list of token-id sequences or strings (strings need tokenizer=) that end a row; the stop tokens are kept.
        One string is one stop sequence (stop="\\n" equals stop=["\\n"]).
    use_cache: KV cache (False recomputes the whole sequence each step: same tokens, slower).
    sliding_window: go past the context by re-feeding the last block_size tokens (without it, prompt +
        max_new_tokens > block_size is an error). return_details: per-step top candidates, scores, log-probs.
    top_candidates: how many candidates each step records. output_attentions: also record each step's attention.

    A model in eval mode on the CPU has its tall weights stored column-major first (same values; see
    `labkit.models.relayout_for_decoding`): one-token steps read them 2-3x faster. `train()` undoes it.
    """
    check_int("num_beams", num_beams)
    options = sampling_options(sampling, do_sample, temperature, top_k, top_p, repetition_penalty, seed)
    if num_return_sequences != 1 and num_beams == 1:
        raise InvalidInputError(
            f"num_return_sequences={num_return_sequences} needs beam search (num_beams >= it); "
            "to sample several continuations call generate once per seed"
        )
    if num_beams > 1:
        if options.samples:
            raise InvalidInputError(
                "beam search here is deterministic; drop temperature/top_k/top_p or set num_beams=1 to sample"
            )
        if stop:
            raise InvalidInputError(
                "stop sequences work with greedy and sampled generation only; use eos_token_id with beam search"
            )
        from labkit.generation.beam import beam_search

        out = beam_search(
            model,
            input_ids,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            attention_mask=attention_mask,
            length_penalty=length_penalty,
            early_stopping=early_stopping,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            num_return_sequences=num_return_sequences,
            repetition_penalty=options.repetition_penalty,
            use_cache=use_cache,
            sliding_window=sliding_window,
            tokenizer=tokenizer,
            return_details=return_details,
        )
        return out  # a tensor, or a GenerationResult with sequence_scores
    check_int("top_candidates", top_candidates)
    decoder = Decoder(model, use_cache, sliding_window, output_attentions)
    prep = setup(decoder, input_ids, max_new_tokens, attention_mask, tokenizer, pad_token_id, eos_token_id, stop)
    was_training = model.training
    model.eval()  # dropout off while generating; the mode is restored below
    steps: list[dict[str, Any]] = []
    try:
        with torch.inference_mode():
            for info in _run(prep, max_new_tokens, options, details=return_details, top_candidates=top_candidates):
                if return_details:
                    steps.append(info)
    finally:
        model.train(was_training)
    prompt = prep.prompt
    sequences = prompt.buffer[:, : prompt.length_done]
    if not (return_details or prompt.is_text):
        return sequences
    return _result(prompt, sequences, steps, tokenizer, prep.eos, prep.pad)


def _result(
    prompt: Prompt, sequences: torch.Tensor, steps: list[dict[str, Any]], tokenizer: Any, eos: list[int], pad: int
) -> GenerationResult:
    new = sequences[:, prompt.length :]
    text = None
    if tokenizer is not None:
        texts = decode_rows(tokenizer, new, prompt.row_lengths, eos)
        text = texts[0] if prompt.single else texts
    result = GenerationResult(
        sequences=sequences,
        new_tokens=new,
        prompt_length=prompt.length,
        text=text,
        steps=steps,
        finished=prompt.finished,
    )
    if steps:
        result.scores = torch.stack([s.pop("scores") for s in steps], dim=1)
        result.logprobs = torch.stack([s["logprobs"] for s in steps], dim=1)
    return result


def stream(
    model: torch.nn.Module,
    input_ids: Any,
    max_new_tokens: int = 32,
    *,
    sampling: SamplingOptions | None = None,
    attention_mask: torch.Tensor | None = None,
    do_sample: bool | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    eos_token_id: int | list[int] | None = None,
    pad_token_id: int | None = None,
    stop: list | None = None,
    tokenizer: Any = None,
    seed: int | None = None,
    use_cache: bool = True,
    sliding_window: bool = False,
    top_candidates: int = 5,
    output_attentions: bool = False,
) -> Iterator[dict[str, Any]]:
    """A model and one prompt in, an iterator of dicts out, one per new token as soon as it is chosen; stops on eos/stop.

    Each dict: `id` (int), `text` (the new text this token completes, or None without a tokenizer; multi-byte
    characters split over tokens come out whole, once complete), `index`, `top_ids`/`top_probs` (lists), `logprob`,
    `finished` (bool) and, with output_attentions=True, `attentions` / `cross_attentions` as in GenerationResult.
    Parameters as in `generate` (batch 1, no beam search). The same seed gives the same tokens as `generate`.
    """
    options = sampling_options(sampling, do_sample, temperature, top_k, top_p, repetition_penalty, seed)
    check_int("top_candidates", top_candidates)
    decoder = Decoder(model, use_cache, sliding_window, output_attentions)
    prep = setup(decoder, input_ids, max_new_tokens, attention_mask, tokenizer, pad_token_id, eos_token_id, stop)
    if prep.prompt.buffer.size(0) != 1:
        raise InvalidInputError(
            f"stream() takes one prompt, got a batch of {prep.prompt.buffer.size(0)}; loop over them or use generate()"
        )
    loop = _run(prep, max_new_tokens, options, details=True, top_candidates=top_candidates)
    return _stream(model, loop, max_new_tokens, TextStream(tokenizer, prep.eos) if tokenizer is not None else None)


def _stream(
    model: torch.nn.Module, loop: Iterator[dict[str, Any]], max_new_tokens: int, text: TextStream | None
) -> Iterator[dict[str, Any]]:
    was_training = model.training
    model.eval()
    try:
        while True:
            # inference mode only while computing: the caller's code between tokens runs in its own grad mode
            with torch.inference_mode():
                info = next(loop, None)
            if info is None:
                return
            token = int(info["token_ids"][0])
            finished = bool(info["finished"][0]) if "finished" in info else False
            last = finished or info["index"] == max_new_tokens - 1
            yield {
                "id": token,
                "text": text.push(token, flush=last) if text is not None else None,
                "index": info["index"],
                "top_ids": info["top_ids"][0].tolist(),
                "top_probs": info["top_probs"][0].tolist(),
                "logprob": float(info["logprobs"][0]),
                "finished": finished,
                "attentions": info["attentions"],
                "cross_attentions": info["cross_attentions"],
            }
            if finished:
                return
    finally:
        loop.close()
        model.train(was_training)
