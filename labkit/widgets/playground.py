"""GenerationPlayground: prompt and sampling controls in, tokens streamed out with their top candidates and attention.

Controls are validated traits (prompt, temperature, top_k, top_p, repetition_penalty, max_new_tokens, num_beams,
seed); `sampling` reads or sets the sampling controls as one `labkit.generation.SamplingOptions`.
`generate()` (or the page's Generate button, which messages the kernel) runs `labkit.generation.stream` on
the kernel thread and sends each token to the page as it is chosen; when the run ends the traits hold
every token, each step's top candidates and the attention of every step (per layer and head, float16,
pruned to the largest weights when large), so a saved notebook or static export shows the last run.
Beam search (num_beams > 1) cannot stream: its tokens arrive at the end, with candidates and attention
read from one forward pass over the result.
"""

from __future__ import annotations

import math
from typing import Any

import anywidget
import torch
import traitlets as t

from labkit.checks import check_float, check_int
from labkit.errors import InvalidInputError
from labkit.frontend import asset_text, auto_top_k, module_text, pack_arrays, plain_token
from labkit.generation.sampling import SamplingOptions
from labkit.widgets.fallback import StaticFallback

__all__ = ["GenerationPlayground"]

MAX_BEAMS = 16
DEFAULT_MAX_BYTES = 2_000_000  # attention payload budget (float16 bytes) before pruning to the top weights per row
_SAMPLING_TRAITS = ("temperature", "top_k", "top_p", "repetition_penalty", "seed")


def _traits_from(options: SamplingOptions) -> dict[str, Any]:
    """SamplingOptions in, the playground's control values out (temperature 0 = greedy, top_k 0 / top_p 1 = off)."""
    return {
        "temperature": options.effective_temperature if options.samples else 0.0,
        "top_k": options.top_k or 0,
        "top_p": 1.0 if options.top_p is None else float(options.top_p),
        "repetition_penalty": float(options.repetition_penalty),
        "seed": options.seed,
    }


class GenerationPlayground(StaticFallback, anywidget.AnyWidget):
    """Interactive generation: `GenerationPlayground(model, tokenizer, prompt="...")`, display it, press Generate.

    model: a labkit GPT or LSTMLM (LSTMs have no attention to show). tokenizer: a labkit or Hugging Face
    tokenizer. sampling: a `SamplingOptions` for the sampling controls. Any control trait can be passed as a
    keyword instead (temperature=0 is greedy, top_k=0 and top_p=1 switch those filters off, seed=None draws
    fresh randomness). max_bytes: attention payload budget.
    """

    _esm = module_text("playground.js")
    _css = asset_text("playground.css")

    # controls
    prompt = t.Unicode("", help="the text to continue").tag(sync=True)
    temperature = t.Float(0.8, help="sampling temperature; 0 = greedy (argmax)").tag(sync=True)
    top_k = t.Int(0, help="keep the k most likely tokens; 0 = off").tag(sync=True)
    top_p = t.Float(1.0, help="keep the smallest set with this much probability, in (0, 1]; 1 = off").tag(sync=True)
    repetition_penalty = t.Float(1.0, help="> 1 discourages repeating tokens already seen; 1 = off").tag(sync=True)
    max_new_tokens = t.Int(32, help="tokens to generate").tag(sync=True)
    num_beams = t.Int(1, help="beam search width; 1 = sample/greedy with streaming").tag(sync=True)
    seed = t.Int(0, allow_none=True, help="random seed (same seed, same tokens); None = fresh randomness").tag(
        sync=True
    )
    top_candidates = t.Int(8, help="candidates recorded per step").tag(sync=True)
    # results
    prompt_tokens = t.List(t.Unicode(), help="the prompt's tokens as text").tag(sync=True)
    tokens = t.List(t.Dict(), help="generated tokens: {id, text, p} (p: the model's probability of it)").tag(sync=True)
    candidates = t.List(t.List(), help="per step: [[text, probability, id], ...] most likely first").tag(sync=True)
    text = t.Unicode("", help="the generated text (decoded together)").tag(sync=True)
    header = t.Dict(help="where the attention lives in `payload` (labkit-arrays/1): attn [layer, head, step, key]").tag(
        sync=True
    )
    payload = t.Bytes(b"", help="attention of every step as float16 bytes").tag(sync=True)
    selected = t.Int(None, allow_none=True, help="the generated token whose step is shown (index), None = none").tag(
        sync=True
    )
    layer = t.Int(0, help="layer whose attention is shown").tag(sync=True)
    head = t.Int(None, allow_none=True, help="head whose attention is shown; None = mean over heads").tag(sync=True)
    n_layer = t.Int(0, help="layers in the attention payload (0: no attention)").tag(sync=True)
    n_head = t.Int(0, help="heads in the attention payload").tag(sync=True)
    status = t.Unicode("", help="what the last run did").tag(sync=True)
    error = t.Unicode("", help="why the last run failed, if it did").tag(sync=True)
    running = t.Bool(False, help="a generation is in progress").tag(sync=True)

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        sampling: SamplingOptions | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        **controls: Any,
    ) -> None:
        from labkit.generation.decoding import model_kind

        self.kind = model_kind(model)  # one-line error for a model generate cannot drive
        if self.kind == "seq2seq":
            raise InvalidInputError(
                "GenerationPlayground drives decoder-only models (GPT, LSTMLM); for Seq2Seq call labkit.generation.generate"
            )
        if (
            tokenizer is None
            or not callable(getattr(tokenizer, "encode", None))
            or not callable(getattr(tokenizer, "decode", None))
        ):
            raise InvalidInputError(
                f"tokenizer must have encode() and decode() (a labkit or Hugging Face tokenizer), got {type(tokenizer).__name__}"
            )
        check_int("max_bytes", max_bytes, low=1024)
        unknown = set(controls) - set(self.class_trait_names(sync=True))
        if unknown:
            raise InvalidInputError(
                f"unknown control(s) {sorted(unknown)}; controls are prompt, temperature, top_k, top_p, "
                "repetition_penalty, max_new_tokens, num_beams, seed, top_candidates"
            )
        if sampling is not None:
            given = sorted(set(controls) & set(_SAMPLING_TRAITS))
            if given:
                raise InvalidInputError(f"pass sampling= or the controls {', '.join(given)}, not both")
            controls.update(_traits_from(sampling))
        self.model, self.tokenizer, self.max_bytes = model, tokenizer, max_bytes
        self.block_size = None if self.kind == "lstm" else int(model.config.block_size)
        super().__init__(**controls)
        self.on_msg(self._on_custom_msg)

    # ---- validation of the controls -----------------------------------------------------------------------------

    @t.validate("temperature")
    def _valid_temperature(self, proposal: dict) -> float:
        return check_float("temperature", proposal["value"], low=0, fix="0 = greedy")

    @t.validate("top_k")
    def _valid_top_k(self, proposal: dict) -> int:
        return check_int("top_k", proposal["value"], low=0, fix="0 = off")

    @t.validate("top_p")
    def _valid_top_p(self, proposal: dict) -> float:
        return check_float("top_p", proposal["value"], low=0, high=1, low_open=True, fix="1 = off")

    @t.validate("repetition_penalty")
    def _valid_repetition_penalty(self, proposal: dict) -> float:
        return check_float("repetition_penalty", proposal["value"], low=0, low_open=True, fix="1 = off")

    @t.validate("max_new_tokens")
    def _valid_max_new_tokens(self, proposal: dict) -> int:
        limit = getattr(self, "block_size", None)
        return check_int(
            "max_new_tokens",
            proposal["value"],
            high=None if limit is None else limit - 1,
            fix=None if limit is None else f"the context holds {limit} tokens with the prompt",
        )

    @t.validate("num_beams")
    def _valid_num_beams(self, proposal: dict) -> int:
        return check_int("num_beams", proposal["value"], high=MAX_BEAMS, fix="1 = no beam search")

    @t.validate("top_candidates")
    def _valid_top_candidates(self, proposal: dict) -> int:
        return check_int("top_candidates", proposal["value"], high=50)

    @t.validate("seed")
    def _valid_seed(self, proposal: dict) -> int | None:
        return check_int("seed", proposal["value"], low=0, allow_none=True, fix="None draws fresh randomness")

    @t.validate("selected")
    def _valid_selected(self, proposal: dict) -> int | None:
        v, n = proposal["value"], len(self.tokens)
        if n == 0 and v is not None:
            raise InvalidInputError(
                f"selected must be None until a run has generated tokens, got {v!r}; generate first"
            )
        return check_int("selected", v, low=0, high=n - 1, allow_none=True, fix=f"{n} tokens were generated")

    @t.validate("layer")
    def _valid_layer(self, proposal: dict) -> int:
        v, n = proposal["value"], self.n_layer
        return check_int("layer", v, low=0, high=n - 1 if n else None, fix=f"the model has {n} layers")

    @t.validate("head")
    def _valid_head(self, proposal: dict) -> int | None:
        v, n = proposal["value"], self.n_head
        return check_int(
            "head", v, low=0, high=n - 1 if n else None, allow_none=True, fix=f"the model has {n} heads; None = mean"
        )

    # ---- running ----------------------------------------------------------------------------------------------------

    def _on_custom_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "generate":
            try:
                self.generate()
            except Exception as exc:  # shown in the page; from Python, generate() raises instead
                self.running = False
                self.error = f"{type(exc).__name__}: {exc}"
                self.status = "failed"

    @property
    def sampling(self) -> SamplingOptions:
        """The controls as the `SamplingOptions` each run passes to `labkit.generation.stream`."""
        greedy = self.temperature == 0
        return SamplingOptions(
            do_sample=not greedy,
            temperature=None if greedy else self.temperature,
            top_k=self.top_k or None,
            top_p=self.top_p if self.top_p < 1 else None,
            repetition_penalty=self.repetition_penalty,
            seed=self.seed,
        )

    @sampling.setter
    def sampling(self, options: SamplingOptions) -> None:
        if not isinstance(options, SamplingOptions):
            raise InvalidInputError(f"sampling must be a SamplingOptions, got {type(options).__name__}")
        with self.hold_trait_notifications():
            for name, value in _traits_from(options).items():
                setattr(self, name, value)

    def _piece(self, token_id: int) -> str:
        return str(self.tokenizer.decode([int(token_id)]))

    def _prompt_ids(self) -> list[int]:
        out = self.tokenizer.encode(self.prompt)
        ids = [int(i) for i in getattr(out, "ids", out)]
        if not ids:
            for name in ("bos_id", "bos_token_id", "eos_id", "eos_token_id"):
                value = getattr(self.tokenizer, name, None)
                if isinstance(value, int):
                    return [value]
            raise InvalidInputError("the prompt is empty and the tokenizer has no BOS/EOS token; type a prompt")
        if self.block_size is not None and len(ids) + self.max_new_tokens > self.block_size:
            raise InvalidInputError(
                f"prompt of {len(ids)} tokens + max_new_tokens={self.max_new_tokens} exceeds the context "
                f"of {self.block_size}; shorten the prompt or ask for at most {max(self.block_size - len(ids), 0)} tokens"
            )
        return ids

    def generate(self) -> str:
        """Run one generation with the current controls; stream tokens to the page; return the generated text."""
        ids = self._prompt_ids()  # errors before any state changes
        with self.hold_sync():
            self.error, self.status, self.running, self.selected = "", "generating", True, None
            self.tokens, self.candidates, self.text = [], [], ""
            self.prompt_tokens = [self._piece(i) for i in ids]
        self.send({"type": "start", "prompt_tokens": self.prompt_tokens})
        if self.num_beams > 1:
            tokens, cands, rows = self._beam(ids)
            note = f"beam search ({self.num_beams} beams; temperature/top-k/top-p/seed do not apply): candidates are the model's distribution"
        else:
            tokens, cands, rows = self._stream(ids)
            note = (
                "greedy"
                if self.temperature == 0
                else f"sampled (temperature {self.temperature:g}"
                + (f", top-k {self.top_k}" if self.top_k else "")
                + (f", top-p {self.top_p:g}" if self.top_p < 1 else "")
                + (f", seed {self.seed})" if self.seed is not None else ")")
            )
            if self.repetition_penalty != 1:
                note += f", repetition penalty {self.repetition_penalty:g}"
        self._finish(ids, tokens, cands, rows, note)
        return self.text

    def _stream(self, ids: list[int]) -> tuple[list[dict], list[list], list[torch.Tensor]]:
        from labkit.generation import stream

        tokens, cands, rows = [], [], []
        for info in stream(
            self.model,
            torch.tensor([ids], device=self._device()),
            self.max_new_tokens,
            sampling=self.sampling,
            tokenizer=self.tokenizer,
            top_candidates=self.top_candidates,
            output_attentions=self.kind == "gpt",
        ):
            tok = {"id": info["id"], "text": self._piece(info["id"]), "p": round(math.exp(info["logprob"]), 6)}
            step = [[self._piece(i), round(float(p), 6), int(i)] for i, p in zip(info["top_ids"], info["top_probs"])]
            if info["attentions"] is not None:
                rows.append(torch.stack([a[0, :, 0].float().cpu() for a in info["attentions"]]))  # [layer, head, key]
            tokens.append(tok)
            cands.append(step)
            self.send({"type": "token", "index": len(tokens) - 1, "token": tok, "candidates": step})
        return tokens, cands, rows

    def _beam(self, ids: list[int]) -> tuple[list[dict], list[list], list[torch.Tensor]]:
        from labkit.generation import generate

        result = generate(
            self.model,
            torch.tensor([ids], device=self._device()),
            self.max_new_tokens,
            num_beams=self.num_beams,
            repetition_penalty=self.repetition_penalty,
            tokenizer=self.tokenizer,
            return_details=True,
        )
        eos = self._eos()
        new = result.new_tokens[0].tolist()
        cut = next((i + 1 for i, x in enumerate(new) if x in eos), len(new))  # after eos only padding follows
        new = new[:cut]
        seq = torch.tensor([ids + new], device=self._device())
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                out = self.model(seq, output_attentions=self.kind == "gpt") if self.kind == "gpt" else self.model(seq)
        finally:
            self.model.train(was_training)
        probs = torch.softmax(out.logits[0].float(), dim=-1)  # [pos, vocab]
        tokens, cands, rows = [], [], []
        for i, token in enumerate(new):
            pos = len(ids) - 1 + i  # the position whose output chose this token
            top = probs[pos].topk(min(self.top_candidates, probs.shape[-1]))
            tokens.append({"id": token, "text": self._piece(token), "p": round(float(probs[pos, token]), 6)})
            cands.append(
                [
                    [self._piece(j), round(float(p), 6), int(j)]
                    for j, p in zip(top.indices.tolist(), top.values.tolist())
                ]
            )
            if self.kind == "gpt" and out.attentions:
                rows.append(torch.stack([a[0, :, pos, : pos + 1].float().cpu() for a in out.attentions]))
        return tokens, cands, rows

    def _eos(self) -> set[int]:
        """The ids that end a reply: the tokenizer's eos and the model's own (a chat model's end of turn)."""
        from labkit.generation.decoding import eos_ids

        return set(eos_ids(None, self.tokenizer, self.model))

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _finish(
        self, ids: list[int], tokens: list[dict], cands: list[list], rows: list[torch.Tensor], note: str
    ) -> None:
        header, payload, n_layer, n_head = {}, b"", 0, 0
        if rows:
            n_layer, n_head = rows[0].shape[0], rows[0].shape[1]
            keys = max(r.shape[-1] for r in rows)
            attn = torch.zeros(n_layer, n_head, len(rows), keys)  # [layer, head, step, key], zero past each step's keys
            for s, r in enumerate(rows):
                attn[:, :, s, : r.shape[-1]] = r
            header, payload = pack_arrays({"attn": attn}, {"attn": auto_top_k(tuple(attn.shape), self.max_bytes)})
        eos = self._eos()
        text_ids = [tok["id"] for tok in tokens if tok["id"] not in eos]
        with self.hold_sync():
            self.n_layer, self.n_head = n_layer, n_head
            if self.layer >= max(n_layer, 1):
                self.layer = max(n_layer - 1, 0)
            if self.head is not None and self.head >= max(n_head, 1):
                self.head = None
            self.tokens, self.candidates = tokens, cands
            self.header, self.payload = header, payload
            self.text = str(self.tokenizer.decode(text_ids))
            self.status = f"{len(tokens)} tokens, {note}"
            self.running = False
        self.send({"type": "done"})

    # ---- reading results in Python and static output ---------------------------------------------------------------

    def step_attention(self, index: int) -> torch.Tensor:
        """A generated token's index in, the attention of the query that chose it out: [layer, head, key] (float16 precision)."""
        from labkit.frontend import unpack_arrays

        check_int("index", index, low=0, high=len(self.tokens) - 1, fix=f"{len(self.tokens)} tokens were generated")
        if not self.header:
            raise InvalidInputError("this run recorded no attention (an LSTM, or nothing generated yet)")
        attn = unpack_arrays(self.header, self.payload)["attn"]
        return attn[:, :, index, : len(self.prompt_tokens) + index]

    def summary(self) -> str:
        """A text/plain summary: prompt, generated text and each step's top candidates (first 16 steps)."""
        # every piece of user or model text goes out as an escaped string literal: inert wherever it is shown
        lines = [f"GenerationPlayground: {self.status or 'not run yet'}", f"prompt: {plain_token(self.prompt)}"]
        if self.error:
            lines.append(f"error: {plain_token(self.error)}")
        if self.tokens:
            lines.append(f"generated: {plain_token(self.text)}")
        for i, (tok, step) in enumerate(zip(self.tokens[:16], self.candidates[:16])):
            alts = ", ".join(f"{plain_token(c[0])} {c[1]:.3f}" for c in step[:4])
            lines.append(f"  {i:>3} {plain_token(tok['text'])} p={tok['p']:.3f} | {alts}")
        if len(self.tokens) > 16:
            lines.append(f"  ... {len(self.tokens) - 16} more tokens")
        return "\n".join(lines)

    def to_svg(self, standalone: bool = True) -> str:
        """The static fallback: the selected (or last) step's candidates as bars, token text escaped."""
        import html

        ns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
        if not self.tokens:
            return f'<svg{ns} width="320" height="24" font-family="sans-serif" font-size="12"><text x="4" y="16">no generation yet</text></svg>'
        i = self.selected if self.selected is not None else len(self.tokens) - 1
        cands = self.candidates[i]
        h = 26 + 18 * len(cands)
        esc = lambda s: html.escape(s if len(s) <= 24 else s[:23] + "\u2026", quote=True)  # noqa: E731
        out = [
            f'<svg{ns} width="420" height="{h}" viewBox="0 0 420 {h}" font-family="sans-serif" font-size="12">',
            f'<text x="4" y="16">step {i}: chose {esc(plain_token(self.tokens[i]["text"]))}</text>',
        ]
        for r, (text, p, tid) in enumerate(cands):
            y = 24 + 18 * r
            color = "#1f77b4" if tid == self.tokens[i]["id"] else "#9ecae1"
            out.append(
                f'<text x="150" y="{y + 12}" text-anchor="end">{esc(plain_token(text))}</text>'
                f'<rect x="156" y="{y + 2}" width="{max(1.0, 200 * p):.1f}" height="13" fill="{color}"/>'
                f'<text x="{160 + 200 * p:.1f}" y="{y + 12}">{100 * p:.1f}%</text>'
            )
        out.append("</svg>")
        return "".join(out)

    def _static_view(self) -> GenerationPlayground:
        return self
