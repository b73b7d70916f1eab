"""Beam search: keep the `num_beams` most likely partial sequences per prompt, reordering the KV cache each step.

The bookkeeping follows Hugging Face's vectorised beam search (transformers >= 4.50) so that both give the same
sequences on the same weights: per step the 2 * num_beams best continuations over all beams are ranked; those
among the top num_beams that end in eos (or reach the length limit) join the finished hypotheses, scored by
sum of log-probabilities / new_length ** length_penalty; the best num_beams unfinished ones keep running.
"""

from __future__ import annotations

from typing import Any

import torch

from labkit.checks import check_float, check_int
from labkit.errors import InvalidInputError
from labkit.generation.decoding import Decoder, GenerationResult, Prompt, decode_rows, setup
from labkit.generation.sampling import apply_repetition_penalty, check_sampling_args

__all__ = ["beam_search"]

_NEG = -1.0e9  # "impossible" score; finite so that sums and comparisons stay well defined


def _gather(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """[batch, beams, ...] and indices [batch, k] in, the selected beams [batch, k, ...] out."""
    while index.dim() < t.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(t, index, dim=1)


def _check(num_beams: int, num_return_sequences: int, length_penalty: float, early_stopping: Any) -> None:
    check_int("num_beams", num_beams)
    check_int("num_return_sequences", num_return_sequences, high=num_beams, fix=f"at most num_beams={num_beams}")
    check_float("length_penalty", length_penalty, fix="1 = average log-prob per token, 0 = plain sum")
    if early_stopping not in (True, False, "never"):
        raise InvalidInputError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")


def beam_search(
    model: torch.nn.Module,
    input_ids: Any,
    num_beams: int = 4,
    max_new_tokens: int = 32,
    *,
    attention_mask: torch.Tensor | None = None,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    eos_token_id: int | list[int] | None = None,
    pad_token_id: int | None = None,
    num_return_sequences: int = 1,
    repetition_penalty: float = 1.0,
    use_cache: bool = True,
    sliding_window: bool = False,
    tokenizer: Any = None,
    return_details: bool = False,
) -> torch.Tensor | GenerationResult:
    """A model and prompt(s) in, the best sequences [batch * num_return_sequences, prompt + new] out (best first per prompt).

    input_ids: as in `generate` (tensor, id lists, or text with tokenizer=); GPT prompts are left-padded, a Seq2Seq
        input is the source and the output is the decoder sequence. num_beams: beams per prompt.
    max_new_tokens: longest continuation. length_penalty: exponent on the new length that divides a finished
        sequence's log-probability (> 0 favours longer outputs, 0 = plain sum). early_stopping: True stops a prompt
        once num_beams hypotheses are finished; False stops when no running beam can still beat them (heuristic);
        "never" stops only when that is certain. eos_token_id: id(s) that finish a hypothesis (None = tokenizer's,
        if any). pad_token_id: filler after a shorter hypothesis. num_return_sequences: how many per prompt.
    repetition_penalty: applied to log-probabilities as in transformers. use_cache: reorder the KV cache (False
        recomputes). return_details: a GenerationResult with `sequence_scores` instead of a tensor.
    """
    _check(num_beams, num_return_sequences, length_penalty, early_stopping)
    check_sampling_args(repetition_penalty=repetition_penalty)
    decoder = Decoder(model, use_cache, sliding_window)
    _, prompt, eos, pad, _ = setup(
        decoder, input_ids, max_new_tokens, attention_mask, tokenizer, pad_token_id, eos_token_id
    )
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            sequences, scores, lengths = _search(
                decoder,
                prompt,
                num_beams,
                max_new_tokens,
                length_penalty,
                early_stopping,
                eos,
                pad,
                num_return_sequences,
                repetition_penalty,
            )
    finally:
        model.train(was_training)
    if not (return_details or prompt.is_text):
        return sequences
    new = sequences[:, prompt.length :]
    text = None
    if tokenizer is not None:
        texts = decode_rows(tokenizer, new, lengths, eos)
        text = texts[0] if prompt.single and num_return_sequences == 1 else texts
    return GenerationResult(
        sequences=sequences,
        new_tokens=new,
        prompt_length=prompt.length,
        text=text,
        sequence_scores=scores,
        finished=lengths < max_new_tokens if eos else None,
    )


def _search(
    decoder: Decoder,
    prompt: Prompt,
    n: int,
    max_new: int,
    length_penalty: float,
    early_stopping: bool | str,
    eos: list[int],
    pad: int,
    n_return: int,
    repetition_penalty: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The beam loop; returns (sequences [batch * n_return, p + new], scores [batch * n_return], new lengths)."""
    b, p = prompt.buffer.size(0), prompt.length
    total, dev = p + max_new, prompt.buffer.device
    expand = lambda t: None if t is None else t.repeat_interleave(n, dim=0)  # noqa: E731  [batch * n, ...]
    mask_buf = expand(prompt.mask_buffer)
    running = prompt.buffer.repeat_interleave(n, dim=0).view(b, n, total)  # [batch, beam, total]
    finished = running.clone()
    run_scores = torch.zeros(b, n, device=dev)
    run_scores[:, 1:] = _NEG  # all beams start identical: let only the first one propose continuations
    fin_scores = torch.full((b, n), _NEG, device=dev)
    fin_flags = torch.zeros(b, n, dtype=torch.bool, device=dev)
    fin_lengths = torch.zeros(b, n, dtype=torch.long, device=dev)
    improvable = torch.ones(b, 1, dtype=torch.bool, device=dev)
    k = max(2, 1 + len(eos)) * n  # enough candidates that num_beams survive even if the best ones all end in eos
    top_rank = torch.arange(k, device=dev) < n  # only the top n candidates may become finished hypotheses
    eos_t = torch.tensor(eos, device=dev) if eos else None
    offsets = torch.arange(b, device=dev)[:, None] * n
    logits = decoder.start(expand(prompt.ids), expand(prompt.mask), total)
    for step in range(max_new):
        cur = p + step
        logp = torch.log_softmax(logits.float(), dim=-1)
        if repetition_penalty != 1.0:
            logp = apply_repetition_penalty(logp, running.view(b * n, total)[:, :cur], repetition_penalty)
        vocab = logp.size(-1)
        totals = (logp.view(b, n, vocab) + run_scores[:, :, None]).view(b, n * vocab)
        cand_scores, cand_index = totals.topk(k, dim=-1)
        cand_beam, cand_token = cand_index // vocab, cand_index % vocab
        cand_seqs = _gather(running, cand_beam)
        cand_seqs[:, :, cur] = cand_token
        if cur + 1 >= total:
            ends = torch.ones_like(cand_token, dtype=torch.bool)
        else:
            ends = (
                torch.isin(cand_token, eos_t) if eos_t is not None else torch.zeros_like(cand_token, dtype=torch.bool)
            )
        # running beams: the best n candidates that did not just end
        alive_scores = cand_scores + ends.float() * _NEG
        keep = alive_scores.topk(n, dim=-1).indices
        running, run_scores, src_beam = _gather(cand_seqs, keep), _gather(alive_scores, keep), _gather(cand_beam, keep)
        # finished hypotheses: merge the candidates that just ended (top n only) and keep the best n overall
        just = ends & top_rank[None, :]
        normed = cand_scores / ((cur + 1 - p) ** length_penalty)
        normed = normed + (fin_flags.all(-1, keepdim=True) & (early_stopping is True)).float() * _NEG
        normed = normed + (~improvable).float() * _NEG
        normed = normed + (~just).float() * _NEG
        merged_scores = torch.cat((fin_scores, normed), dim=1)
        best = merged_scores.topk(n, dim=-1).indices
        finished = _gather(torch.cat((finished, cand_seqs), dim=1), best)
        fin_scores = _gather(merged_scores, best)
        fin_flags = _gather(torch.cat((fin_flags, just), dim=1), best)
        fin_lengths = _gather(torch.cat((fin_lengths, torch.full_like(cand_token, step + 1)), dim=1), best)
        decoder.reorder((src_beam + offsets).view(-1))
        # can a running beam still beat the worst finished one?
        if early_stopping == "never" and length_penalty > 0.0:
            best_len = max_new
        else:
            best_len = cur + 1 - p
        best_possible = run_scores[:, :1] / (best_len**length_penalty)
        worst = torch.where(fin_flags, fin_scores.min(dim=1, keepdim=True).values, _NEG)
        improvable = improvable & (best_possible > worst).any(dim=-1, keepdim=True)
        all_full = bool(fin_flags.all()) and early_stopping is True
        if not bool(improvable.any()) or all_full or bool(ends.all()):
            break
        logits = decoder.step(running.view(b * n, total), mask_buf, cur + 1)
    sequences = finished[:, :n_return].reshape(b * n_return, total)
    lengths = fin_lengths[:, :n_return].reshape(-1)
    return sequences[:, : p + int(lengths.max())], fin_scores[:, :n_return].reshape(-1), lengths
