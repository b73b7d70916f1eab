"""The train loop: `train(model, batches, ...) -> History`, with `Trainer` behind it.

The loop knows nothing about GPTs: each batch is a dict of tensors passed as
`model(**batch)`, and the model's `.loss` (or `loss_fn(model, batch)`) is the
objective, so causal LM, MLM, classification and seq2seq all train the same way.
Step losses stay on the device and are read back once every `log_every` steps,
so logging does not stall the GPU; NaN/inf losses are caught at those points
and always before a checkpoint is written.
"""

from __future__ import annotations

import inspect
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from labkit.errors import InvalidInputError
from labkit.models.weight_layout import relayout_for_training
from labkit.training import distributed as dist_utils
from labkit.training.callbacks import Callback, CallbackList, ProgressBar
from labkit.training.checkpoint import (
    get_rng_state,
    load_checkpoint,
    remove_temporary,
    save_checkpoint,
    set_rng_state,
)
from labkit.training.device import autocast, flops_per_token, peak_flops, resolve_device, resolve_precision
from labkit.training.history import History, TrainingDivergedError
from labkit.training.manifest import last_good_checkpoint
from labkit.training.optim import make_optimizer, make_schedule
from labkit.training.options import check_options, check_warmup, resume_checkpoint, run_config

__all__ = ["train", "Trainer", "TrainingDivergedError"]


def _length(source: Any) -> int | None:
    try:
        return len(source)
    except TypeError:
        return None


class _BatchStream:
    """Hands out micro-batches across epochs and knows its position for exact resume.

    Sources with state_dict()/load_state_dict() keep their own position; for the others the stream counts
    batches consumed in the current epoch and skips as many on resume (exact only for deterministic re-iterables).
    """

    def __init__(self, source: Iterable[Any]) -> None:
        self.source = source
        self.stateful = callable(getattr(source, "state_dict", None)) and callable(
            getattr(source, "load_state_dict", None)
        )
        self.epoch, self.index, self._skip = 0, 0, 0
        self._it: Any = None

    def position(self) -> dict[str, Any]:
        pos: dict[str, Any] = {"epoch": self.epoch, "index": self.index}
        if self.stateful:
            pos["state"] = self.source.state_dict()  # type: ignore[attr-defined]
        return pos

    def restore(self, pos: dict[str, Any]) -> None:
        self.epoch, self.index = int(pos.get("epoch", 0)), int(pos.get("index", 0))
        if self.stateful and pos.get("state") is not None:
            self.source.load_state_dict(pos["state"])  # type: ignore[attr-defined]
        else:
            self._skip = self.index
        self._it = None

    def next(self) -> Any:
        if self._it is None:
            self._it = iter(self.source)
            for _ in range(self._skip):
                next(self._it)
            self._skip = 0
        try:
            batch = next(self._it)
        except StopIteration:
            if self._it is self.source:  # a one-shot iterator cannot start a new epoch
                raise InvalidInputError(
                    f"train_batches ran out after {self.index} batches; pass a re-iterable (list, Batches) or fewer steps"
                ) from None
            self.epoch, self.index = self.epoch + 1, 0
            self._it = iter(self.source)
            try:
                batch = next(self._it)
            except StopIteration:
                raise InvalidInputError("train_batches is empty; pass at least one batch") from None
        self.index += 1
        return batch


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """A batch dict in, its tensors on `device` out (other values unchanged).

    CPU tensors bound for a CUDA GPU go through pinned memory first: a copy from ordinary (pageable) memory
    makes the host wait for the GPU to finish its queued work, which would stall every step.
    """

    def move(v: Any) -> Any:
        if not isinstance(v, torch.Tensor):
            return v
        if device.type == "cuda" and v.device.type == "cpu":
            v = v.pin_memory()
        return v.to(device, non_blocking=True)

    return {k: move(v) for k, v in batch.items()}


def _count_tokens(batch: dict[str, Any]) -> int | torch.Tensor:
    """Non-pad tokens in the batch's input_ids (CPU masks counted on the host; device masks stay tensors: no sync)."""
    mask, ids = batch.get("attention_mask"), batch.get("input_ids")
    if isinstance(mask, torch.Tensor):
        count = (mask != 0).sum()
        return int(count) if count.device.type == "cpu" else count
    if isinstance(ids, torch.Tensor):
        return ids.numel()
    first = next((v for v in batch.values() if isinstance(v, torch.Tensor)), None)
    return 0 if first is None else first.numel()


_CHECKED = frozenset(inspect.signature(check_options).parameters)  # the options checked before any work


class PendingStep(NamedTuple):
    """One optimizer step's values, still on the device until the next log flush reads them all at once."""

    step: int
    loss: torch.Tensor  # mean loss over the step's micro-batches (0-d)
    lr: float  # learning rate the step used
    grad_norm: torch.Tensor  # gradient norm before clipping (0-d)
    tokens: int | torch.Tensor  # tokens the step trained on, on this rank


class Trainer:
    """One training run: holds the model, optimizer, schedule, batch stream, History and callbacks.

    `Trainer(model, batches, **options).fit()` is what `train(...)` does; the object stays inspectable afterwards
    (`trainer.optimizer`, `trainer.step`, ...). Callbacks may call `request_stop(reason)` and `request_checkpoint()`.
    """

    def __init__(
        self,
        model: nn.Module,
        train_batches: Iterable[dict[str, Any]],
        *,
        val_batches: Iterable[dict[str, Any]] | None = None,
        steps: int | None = None,
        epochs: int | None = None,
        optimizer: Any = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.95),
        momentum: float = 0.9,
        schedule: Any = "cosine",
        warmup: int | float = 0,
        min_lr_ratio: float = 0.1,
        grad_accum: int = 1,
        clip_norm: float | None = 1.0,
        precision: str = "auto",
        compile: bool = False,
        device: Any = "auto",
        callbacks: Iterable[Callback] = (),
        progress: bool = True,
        log_every: int = 10,
        eval_every: int | None = None,
        eval_batches: int | None = None,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        keep_last: int | None = 2,
        resume: str | Path | bool | None = None,
        seed: int | None = 0,
        loss_fn: Callable[[nn.Module, dict[str, Any]], torch.Tensor] | None = None,
    ) -> None:
        checkpoint_dir = check_options(**{k: v for k, v in locals().items() if k in _CHECKED})
        if val_batches is not None and eval_batches is None and _length(val_batches) is None:
            raise InvalidInputError("val_batches has no len(); pass eval_batches=N to evaluate N batches each time")
        dist_utils.init_from_env()
        self.world, self.rank = dist_utils.world_size(), dist_utils.rank()
        self.is_main = self.rank == 0
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        local = dist_utils.shard_batches(train_batches) if self.world > 1 else train_batches
        n = _length(local)
        if steps is None:
            if n is None:
                raise InvalidInputError("train_batches has no len() (a stream?); pass steps=N")
            steps = (epochs or 1) * n // grad_accum
            if steps < 1:
                raise InvalidInputError(
                    f"{n} batches per epoch are fewer than grad_accum={grad_accum}; lower grad_accum or add data"
                )
        check_warmup(warmup, steps)
        self.total_steps = steps
        self.grad_accum, self.clip_norm, self.log_every = grad_accum, clip_norm, log_every
        self.val_batches, self.eval_every, self.eval_batches = val_batches, eval_every, eval_batches
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every, self.keep_last, self.loss_fn, self.seed = checkpoint_every, keep_last, loss_fn, seed
        self.resume = resume
        self._run_config = run_config(
            model,
            total_steps=steps,
            optimizer=optimizer,
            lr=lr,
            weight_decay=weight_decay,
            betas=betas,
            momentum=momentum,
            schedule=schedule,
            warmup=warmup,
            min_lr_ratio=min_lr_ratio,
            grad_accum=grad_accum,
            clip_norm=clip_norm,
            precision=precision,
            seed=seed,
            world_size=self.world,
        )
        # a damaged or mismatched checkpoint fails here, before any work
        self._resume_from = resume_checkpoint(resume, checkpoint_dir, model, self._run_config)
        self.stream = _BatchStream(local)
        self.model = model.to(self.device)  # the plain model: checkpoints, eval and the caller use this one
        # generate() may have stored tall weights column-major for fast decoding; training always starts from the
        # standard layout, so a run's numbers do not depend on whether the model generated text before it
        relayout_for_training(self.model)
        self._fwd_model = torch.compile(self.model) if compile else self.model
        self._train_model = dist_utils.wrap_model(self._fwd_model, self.device)
        self.optimizer = make_optimizer(
            self.model, optimizer, lr=lr, weight_decay=weight_decay, betas=betas, momentum=momentum
        )
        self.scheduler = make_schedule(
            self.optimizer, schedule, total_steps=steps, warmup=warmup, min_lr_ratio=min_lr_ratio
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        cbs = list(callbacks)
        if progress:
            cbs.insert(0, ProgressBar())
        self.callbacks = CallbackList(cbs if self.is_main else [])
        self.history = History()
        self.step = 0
        self._stop_reason: str | None = None
        self._want_checkpoint = False
        self._pending: list[PendingStep] = []
        self._last_checkpoint_step = -1
        self._peak = peak_flops(self.device, self.precision)
        self._seq_len = 0
        self._window_start = 0.0
        self._paused_s = 0.0
        self._interrupted_at: tuple[dict[str, Any], Any] | None = None
        self._synced_stop = self._synced_checkpoint = False

    # ---- requests from callbacks ---------------------------------------------------------------------------

    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop after the current step (the dashboard's Stop button); History.stopped_reason records `reason`."""
        self._stop_reason = reason

    def request_checkpoint(self) -> None:
        """Write a checkpoint after the current step (needs checkpoint_dir)."""
        self._want_checkpoint = True

    # ---- the loop ------------------------------------------------------------------------------------------

    @torch.enable_grad()  # also under torch.no_grad() or a global torch.set_grad_enabled(False) in a notebook
    def fit(self) -> History:
        """Run until total_steps, an interrupt or a stop request; return the History (also on interrupt)."""
        start = time.perf_counter()
        if self.seed is not None:
            random.seed(self.seed)
            np.random.seed(self.seed)
            torch.manual_seed(self.seed)
        self._apply_resume()
        self._train_model.train()
        previous_handler = self._install_sigint()
        self.callbacks.on_train_begin(self)
        self._window_start = time.perf_counter()
        try:
            while self.step < self.total_steps and not self._stopping():
                logs = self._train_step()
                self.callbacks.on_step_end(self, self.step, logs)
                last = self.step == self.total_steps
                if self.step % self.log_every == 0 or last:
                    self._flush_logs(sync_requests=True)
                if self.val_batches is not None and ((self.eval_every and self.step % self.eval_every == 0) or last):
                    self._evaluate_and_record()
                if self.checkpoint_dir is not None and (
                    self._checkpoint_wanted()
                    or last
                    or self._stopping()
                    or (self.checkpoint_every and self.step % self.checkpoint_every == 0)
                ):
                    self._checkpoint()
            if self._stop_reason:
                self.history.stopped_reason = self._stop_reason
                self.history.interrupted = self._stop_reason.startswith("interrupted")
                self._flush_logs()
        except KeyboardInterrupt:
            self.history.interrupted = True
            self.history.stopped_reason = f"interrupted (KeyboardInterrupt) after step {self.step}"
            self._flush_logs()
            if self.checkpoint_dir is not None:
                self._checkpoint()
        except BaseException as error:
            self.callbacks.on_train_error(self, error)  # listeners (progress bar, dashboard) show the failure
            raise
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            self.optimizer.zero_grad(set_to_none=True)
            self.model.eval()
            self.history.elapsed_s += time.perf_counter() - start
        dist_utils.barrier()
        self.callbacks.on_train_end(self, self.history)
        return self.history

    def _stopping(self) -> bool:
        # Under DDP only rank 0 runs callbacks; its requests reach the others at log points (see _flush_logs).
        return self._synced_stop if self.world > 1 else self._stop_reason is not None

    def _checkpoint_wanted(self) -> bool:
        return self._synced_checkpoint if self.world > 1 else self._want_checkpoint

    def _install_sigint(self) -> Any:
        """First Ctrl-C / Jupyter stop: finish the current step, checkpoint, return. A second one interrupts at once."""
        if self.world > 1 or threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum: int, frame: Any) -> None:
            if self._stop_reason and self._stop_reason.startswith("interrupted"):
                raise KeyboardInterrupt
            self._stop_reason = f"interrupted (SIGINT) during step {self.step + 1}"

        try:
            return signal.signal(signal.SIGINT, handler)
        except ValueError:  # not in the main interpreter
            return None

    def _apply_resume(self) -> None:
        if self._resume_from is None:
            return
        path = self._resume_from
        meta = load_checkpoint(path, self.model, self.optimizer, self.scheduler, self.scaler, rng=True, verify=False)
        self.step = int(meta["step"])
        self._last_checkpoint_step = self.step
        if meta.get("data"):
            self.stream.restore(meta["data"])
        if meta.get("history"):
            self.history = History.from_dict(meta["history"])
        self.history.interrupted, self.history.stopped_reason = False, None
        self.history.last_checkpoint = Path(path)
        if self.is_main and self.checkpoint_dir is not None and Path(self.checkpoint_dir).is_dir():
            remove_temporary(self.checkpoint_dir)  # what a killed save or prune left behind

    def _loss(self, batch: dict[str, Any]) -> torch.Tensor:
        if self.loss_fn is not None:
            return self.loss_fn(self._train_model, batch)
        out = self._train_model(**batch)
        loss = out.get("loss") if isinstance(out, dict) else getattr(out, "loss", None)
        if loss is None:
            raise InvalidInputError(
                f"{type(self.model).__name__} returned no loss; put labels in the batch or pass loss_fn="
            )
        return loss

    def _train_step(self) -> dict[str, Any]:
        """One optimizer step over grad_accum micro-batches; a KeyboardInterrupt before optimizer.step discards it."""
        snapshot = (self.stream.position(), get_rng_state())
        stepped = False
        try:
            loss_sum: torch.Tensor | None = None
            tokens: Any = 0
            for micro in range(self.grad_accum):
                batch = self.stream.next()
                if not isinstance(batch, dict):
                    raise InvalidInputError(
                        f"each batch must be a dict of tensors (input_ids, labels, ...), got {type(batch).__name__}"
                    )
                tokens = tokens + _count_tokens(batch)
                ids = batch.get("input_ids")
                self._seq_len = ids.shape[-1] if isinstance(ids, torch.Tensor) and ids.dim() == 2 else self._seq_len
                batch = to_device(batch, self.device)
                with dist_utils.no_sync(self._train_model, micro < self.grad_accum - 1):
                    with autocast(self.device, self.precision):
                        loss = self._loss(batch)
                    self.scaler.scale(loss / self.grad_accum).backward()
                loss_sum = loss.detach().float() if loss_sum is None else loss_sum + loss.detach().float()
            if self.scaler.is_enabled():
                self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
            if self.clip_norm:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, self.clip_norm)
            else:
                grad_norm = torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(p.grad.float()) for p in params])
                )
            lr = float(self.optimizer.param_groups[0]["lr"])
            self.scaler.step(self.optimizer)
            self.scaler.update()
            stepped = True
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
        except KeyboardInterrupt:
            self.optimizer.zero_grad(set_to_none=True)
            if not stepped:  # the partial step never happened: rewind RNG, checkpoint the step-start data position
                set_rng_state(*snapshot[1])
                self._interrupted_at = snapshot
                raise
            if self.scheduler.last_epoch == self.step:  # optimizer stepped, scheduler not yet
                self.scheduler.step()
            self.step += 1  # the weights changed: the step counts
            self._pending.append(PendingStep(self.step, loss_sum / self.grad_accum, lr, grad_norm.detach(), tokens))  # type: ignore[operator]
            raise
        self.step += 1
        mean_loss = loss_sum / self.grad_accum  # type: ignore[operator]
        self._pending.append(PendingStep(self.step, mean_loss, lr, grad_norm.detach(), tokens))
        return {"loss": mean_loss, "lr": lr, "grad_norm": grad_norm, "tokens": tokens}

    def _flush_logs(self, sync_requests: bool = False) -> None:
        """Read pending step values back to the host in one transfer, append them to History, check for NaN/inf."""
        if sync_requests and self.world > 1:
            flags = torch.tensor(
                [self._stop_reason is not None, self._want_checkpoint], dtype=torch.float32, device=self.device
            )
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
            self._synced_stop, self._synced_checkpoint = bool(flags[0]), bool(flags[1])
            if self._synced_stop and self._stop_reason is None:
                self._stop_reason = "stop requested on rank 0"
        if not self._pending:
            return
        now = time.perf_counter()
        window = max(now - self._window_start - self._paused_s, 1e-9)
        self._window_start, self._paused_s = now, 0.0
        steps = [p.step for p in self._pending]
        values = torch.stack(
            [torch.stack([p.loss.float(), p.grad_norm.float().to(p.loss.device)]) for p in self._pending]
        )
        values = dist_utils.all_reduce_mean(values)
        loss_and_norm = values.tolist()
        tokens = sum(int(p.tokens) for p in self._pending) * self.world
        tokens_per_s = tokens / window
        mfu = None
        if self._peak:
            mfu = flops_per_token(self.model, self._seq_len) * tokens_per_s / (self._peak * self.world)
        lrs = [p.lr for p in self._pending]
        self._pending.clear()
        for step, (loss, norm), lr in zip(steps, loss_and_norm, lrs):
            self.history.append_step(step, loss, lr, norm, tokens_per_s, mfu)
        bad = next(((s, v) for s, (v, _) in zip(steps, loss_and_norm) if not math.isfinite(v)), None)
        if bad is not None:
            good = last_good_checkpoint(self.history.last_checkpoint, self.checkpoint_dir)
            where = f"the last good checkpoint is {good}" if good else "no checkpoint of this run verifies"
            where = where if self.history.last_checkpoint else "no checkpoint was written"
            raise TrainingDivergedError(
                f"training diverged: loss is {bad[1]} at step {bad[0]}; {where}; lower lr (now {lrs[0]:.3g}), "
                "raise warmup or check the data",
                step=bad[0],
                history=self.history,
                last_checkpoint=good,
            )
        last = self.history
        self.callbacks.on_log(
            self,
            steps[-1],
            {
                "loss": last.loss[-1],
                "lr": last.lr[-1],
                "grad_norm": last.grad_norm[-1],
                "tokens_per_s": tokens_per_s,
                "mfu": mfu,
            },
        )

    # ---- evaluation and checkpoints ------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(
        self, batches: Iterable[dict[str, Any]] | None = None, max_batches: int | None = None
    ) -> dict[str, float]:
        """Batches (default: val_batches) in, {"eval_loss", "eval_perplexity"} out; loss weighted by label tokens.

        max_batches: evaluate at most this many (default: eval_batches). Every rank evaluates all of them.
        """
        batches = self.val_batches if batches is None else batches
        if batches is None:
            raise InvalidInputError("nothing to evaluate; pass val_batches= to train() or batches= here")
        limit = max_batches or self.eval_batches
        was_training = self._fwd_model.training
        self._fwd_model.eval()
        total = torch.zeros((), device=self.device, dtype=torch.float64)
        weight = torch.zeros((), device=self.device, dtype=torch.float64)
        for i, batch in enumerate(batches):
            if limit is not None and i >= limit:
                break
            batch = to_device(batch, self.device)
            labels = batch.get("labels")
            w = (labels != -100).sum() if isinstance(labels, torch.Tensor) else torch.tensor(1, device=self.device)
            with autocast(self.device, self.precision):
                if self.loss_fn is not None:
                    loss = self.loss_fn(self._fwd_model, batch)
                else:
                    out = self._fwd_model(**batch)
                    loss = out["loss"] if isinstance(out, dict) else out.loss
            total += loss.double() * w
            weight += w
        if was_training:
            self._fwd_model.train()
        mean = (total / weight.clamp(min=1)).item()
        return {"eval_loss": mean, "eval_perplexity": math.exp(mean) if mean < 700 else math.inf}

    def _evaluate_and_record(self) -> None:
        started = time.perf_counter()
        metrics = self.evaluate()
        if not self.history.eval_step or self.history.eval_step[-1] != self.step:
            self.history.append_eval(self.step, metrics["eval_loss"])
        self.callbacks.on_eval(self, self.step, metrics)
        self._paused_s += time.perf_counter() - started

    def _checkpoint(self) -> Path | None:
        """Check losses (a NaN never reaches disk), then write a checkpoint on rank 0 and wait for the others."""
        self._want_checkpoint = self._synced_checkpoint = False
        self._flush_logs()
        if self.checkpoint_dir is None:
            return None
        if self.step == self._last_checkpoint_step:
            return self.history.last_checkpoint
        started = time.perf_counter()
        path = self.checkpoint_dir / f"step-{self.step:06d}"
        if self.is_main:
            data_state, rng = self._interrupted_at or (self.stream.position(), None)
            if rng is not None:
                set_rng_state(*rng)
            previous, self.history.last_checkpoint = self.history.last_checkpoint, path
            try:
                path = save_checkpoint(
                    self.checkpoint_dir,
                    self.model,
                    self.optimizer,
                    self.scheduler,
                    self.scaler,
                    step=self.step,
                    epoch=data_state["epoch"],
                    data_state=data_state,
                    history=self.history,
                    extra={"total_steps": self.total_steps, "grad_accum": self.grad_accum, "world_size": self.world},
                    keep_last=self.keep_last,
                    config=self._run_config,
                )
            except BaseException:
                self.history.last_checkpoint = previous  # a half-written checkpoint is never named as good
                raise
            self.callbacks.on_checkpoint(self, path)
        self._last_checkpoint_step = self.step
        self.history.last_checkpoint = path
        dist_utils.barrier()
        self._paused_s += time.perf_counter() - started
        return path


def train(model: nn.Module, train_batches: Iterable[dict[str, Any]], **options: Any) -> History:
    """A model and batches (dicts of tensors) in, the trained model (in place, left in eval mode) and its History out.

    Options (all keyword): val_batches, steps | epochs, optimizer ("adamw", "sgd", a torch optimizer class or
    instance), lr (peak), weight_decay (2-D weights only), betas, momentum, schedule ("constant", "linear", "cosine",
    "onecycle"), warmup, min_lr_ratio, grad_accum, clip_norm, precision ("auto", "fp32", "bf16", "fp16"), compile,
    device, callbacks, progress (tqdm bar), log_every (steps between host reads of the loss), eval_every,
    eval_batches, checkpoint_dir, checkpoint_every, keep_last, resume (a checkpoint/run folder, or True for
    checkpoint_dir's latest), seed, loss_fn ((model, batch) -> loss). See docs/training.md.
    A KeyboardInterrupt (Jupyter's stop button) ends the run cleanly after the current step and returns the
    History with interrupted=True (and a checkpoint when checkpoint_dir is set); a NaN/inf loss raises
    TrainingDivergedError naming the step and the last good checkpoint.
    """
    return Trainer(model, train_batches, **options).fit()


def _train_signature() -> Any:
    """train's signature spelled out from Trainer's, so notebooks (shift-tab, help) show every option."""
    import inspect

    params = list(inspect.signature(Trainer.__init__).parameters.values())[1:]
    return inspect.Signature(params, return_annotation="History")


train.__signature__ = _train_signature()  # type: ignore[attr-defined]
