"""TrainingDashboard: live loss / val loss / lr / gradient norm / throughput curves, progress, a current sample, Stop and Save.

Two parts. `DashboardCallback` is a training `Callback` that buffers host values and pushes them to the
widget at most every `min_interval_s` seconds: it reads points only at `on_log` (when the trainer has
already copied the losses to the host; it never calls `.item()`), so a step costs it one clock read.
`TrainingDashboard` is the anywidget that shows them; its front end is `widgets/dashboard.js`.

Stop and Save only set flags; `on_step_end` turns them into `trainer.request_stop(...)` /
`trainer.request_checkpoint()`, which act between steps. A click must reach Python while `train()` keeps
the kernel busy: ipykernel >= 7 reads every incoming comm message on its shell-channel thread and asks the
comm where to route it (`_reply_subshell_for`); the dashboard hooks that question to notice its own
Stop/Save messages there, at once, and sets the flags from that thread (two booleans, nothing else).
"""

from __future__ import annotations

import inspect
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import anywidget
import torch
import traitlets as t

from labkit.checks import check_float, check_int
from labkit.errors import InvalidInputError, UnknownNameError, close_matches
from labkit.frontend import asset_text, module_text, plain_token
from labkit.training.callbacks import Callback
from labkit.viz.curves import curves_summary, curves_svg
from labkit.widgets.fallback import StaticFallback

__all__ = ["DashboardCallback", "TrainingDashboard"]

STOP_REASON = "stopped from the dashboard"
STATES = ("idle", "running", "stopping", "finished", "stopped", "interrupted", "failed")


def _short(x: Any) -> float | None:
    """A float in, the same rounded to 6 significant digits out (compact JSON); NaN/inf/None become None."""
    if x is None:
        return None
    x = float(x)
    return float(f"{x:.6g}") if math.isfinite(x) else None


class DashboardCallback(Callback):
    """Buffers training values on the host and pushes them to a TrainingDashboard, throttled; turns clicks into requests.

    dashboard: the widget to update (None: keep the state only, e.g. for tests and benchmarks).
    min_interval_s: least time between two pushes (the last state is always pushed at the end).
    max_points: curve points kept; beyond it neighbouring points are merged in pairs (means), oldest first.
    tokenizer, sample_prompt: with a tokenizer the callback generates a sample with the model being trained,
        at most every `sample_every_s` seconds (checked at log points) and once at the end. The prompt
        defaults to the tokenizer's BOS (or EOS) token. sample_tokens / sample_temperature / sample_seed:
        its length, temperature (0 = greedy) and seed (a private generator: training's RNG is untouched).
    clock: time source (seconds); tests pass a fake one.
    """

    def __init__(
        self,
        dashboard: TrainingDashboard | None = None,
        *,
        min_interval_s: float = 0.5,
        max_points: int = 2000,
        tokenizer: Any = None,
        sample_prompt: str | None = None,
        sample_every_s: float = 15.0,
        sample_tokens: int = 64,
        sample_temperature: float = 0.8,
        sample_seed: int = 0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        check_float("min_interval_s", min_interval_s, low=0, fix="seconds between updates")
        check_int("max_points", max_points, low=8)
        check_int("sample_tokens", sample_tokens)
        check_float("sample_every_s", sample_every_s, low=0, fix="seconds between samples")
        check_float("sample_temperature", sample_temperature, low=0, fix="0 = greedy")
        self.dashboard, self.min_interval_s, self.max_points, self.clock = (
            dashboard,
            float(min_interval_s),
            max_points,
            clock,
        )
        self.tokenizer, self.sample_every_s, self.sample_tokens = tokenizer, float(sample_every_s), sample_tokens
        self.sample_temperature, self.sample_seed = float(sample_temperature), sample_seed
        self.prompt_ids: list[int] | None = None
        if tokenizer is not None:
            self.prompt_ids = self._prompt_ids(tokenizer, sample_prompt)
        elif sample_prompt is not None:
            raise InvalidInputError(
                "sample_prompt needs tokenizer= to encode it; pass the tokenizer the model was trained with"
            )
        self.stop_clicked = False  # set by the Stop button (possibly from the kernel's shell-channel thread)
        self.save_clicked = False
        self._seen_clicks: set[Any] = set()
        self._lock = threading.Lock()
        self.reset()

    @staticmethod
    def _prompt_ids(tokenizer: Any, prompt: str | None) -> list[int]:
        if prompt is None:
            for role in ("bos", "eos"):
                for name in (f"{role}_id", f"{role}_token_id"):
                    value = getattr(tokenizer, name, None)
                    if isinstance(value, int):
                        return [value]
            raise InvalidInputError(
                "this tokenizer has no BOS or EOS token to start samples from; pass sample_prompt='...'"
            )
        out = tokenizer.encode(prompt)
        ids = list(getattr(out, "ids", out))
        if not ids:
            raise InvalidInputError(f"sample_prompt {prompt!r} encodes to no tokens; pass a non-empty prompt")
        return [int(i) for i in ids]

    def reset(self) -> None:
        """Forget the curves and the run state (a new run starts from a clean dashboard)."""
        self.state: dict[str, Any] = {
            "points": [],
            "val_points": [],
            "step": 0,
            "total_steps": 0,
            "progress": 0.0,
            "status": "idle",
            "message": "",
            "sample": "",
            "sample_step": 0,
            "elapsed_s": 0.0,
            "eta_s": None,
            "can_save": False,
            "last_checkpoint": "",
        }
        self._changed: set[str] = set()
        self._seen = 0  # History entries already copied into points
        self._last_push = self._last_sample = -math.inf
        self._start, self._start_step, self.pushes = 0.0, 0, 0

    # ---- clicks (called from the widget, possibly from another thread) --------------------------------------

    def click(self, kind: str, click_id: Any = None) -> None:
        """A button press in ("stop" | "save", optional id to ignore duplicates); sets the flag on_step_end reads.

        Ignored unless a run is going: a click that reaches Python only after its run ended must not stop the next one.
        """
        if kind not in ("stop", "save"):
            raise InvalidInputError(f"unknown dashboard action {kind!r}; use 'stop' or 'save'")
        with self._lock:
            if self.state["status"] != "running":
                return
            if click_id is not None:
                if click_id in self._seen_clicks:
                    return
                self._seen_clicks.add(click_id)
            if kind == "stop":
                self.stop_clicked = True
            else:
                self.save_clicked = True

    # ---- state updates ---------------------------------------------------------------------------------------

    def _set(self, **values: Any) -> None:
        for key, value in values.items():
            if self.state.get(key) != value or key in ("points", "val_points"):
                self.state[key] = value
                self._changed.add(key)

    def flush(self, force: bool = False) -> bool:
        """Push the changed state to the dashboard when `min_interval_s` has passed (or force=True); True if pushed."""
        now = self.clock()
        if not self._changed or (not force and now - self._last_push < self.min_interval_s):
            return False
        self._last_push = now
        update = {k: self.state[k] for k in self._changed}
        self._changed.clear()
        self.pushes += 1
        if self.dashboard is not None:
            self.dashboard._apply(update)
        return True

    def _progress(self, trainer: Any, step: int) -> None:
        total = max(int(getattr(trainer, "total_steps", 0) or 0), 1)
        elapsed = self.clock() - self._start
        done = step - self._start_step
        eta = elapsed / done * (total - step) if done > 0 else None
        self._set(
            step=int(step),
            total_steps=total,
            progress=min(1.0, step / total),
            elapsed_s=round(elapsed, 2),
            eta_s=None if eta is None else round(eta, 1),
        )

    def _merge_points(self, points: list[list]) -> list[list]:
        """Halve the curve by averaging neighbouring pairs (the later step and lr stand for the pair)."""
        mean = lambda a, b: a if b is None else b if a is None else _short((a + b) / 2)  # noqa: E731
        merged = [
            [q[0], mean(p[1], q[1]), q[2], mean(p[3], q[3]), mean(p[4], q[4])]
            for p, q in zip(points[0::2], points[1::2])
        ]
        return merged + ([points[-1]] if len(points) % 2 else [])

    def _read_history(self, trainer: Any, logs: dict[str, Any] | None = None, step: int | None = None) -> None:
        h = getattr(trainer, "history", None)
        points = list(self.state["points"])
        if h is not None and hasattr(h, "step"):
            for i in range(self._seen, len(h.step)):  # host floats the trainer already read back: no device sync
                norm = h.grad_norm[i] if i < len(getattr(h, "grad_norm", ())) else None
                points.append(
                    [int(h.step[i]), _short(h.loss[i]), _short(h.lr[i]), _short(h.tokens_per_s[i]), _short(norm)]
                )
            self._seen = len(h.step)
        elif logs is not None and step is not None:
            points.append(
                [
                    int(step),
                    _short(logs.get("loss")),
                    _short(logs.get("lr")),
                    _short(logs.get("tokens_per_s")),
                    _short(logs.get("grad_norm")),
                ]
            )
        if len(points) == len(self.state["points"]):
            return
        while len(points) > self.max_points:
            points = self._merge_points(points)
        self._set(points=points)

    # ---- callback events -------------------------------------------------------------------------------------

    def on_train_begin(self, trainer: Any) -> None:
        """Reset the curves, then show what a resumed History already holds (a click made while starting still counts)."""
        self.reset()
        self._start, self._start_step = self.clock(), int(getattr(trainer, "step", 0))
        h = getattr(trainer, "history", None)
        if h is not None and getattr(h, "eval_step", None):
            self._set(val_points=[[int(s), _short(v)] for s, v in zip(h.eval_step, h.eval_loss)])
        self._read_history(trainer)
        self._set(
            status="running",
            can_save=getattr(trainer, "checkpoint_dir", None) is not None,
            message=""
            if getattr(trainer, "checkpoint_dir", None) is not None
            else "Save needs train(..., checkpoint_dir=...)",
        )
        self._progress(trainer, self._start_step)
        self.flush(force=True)

    def on_step_end(self, trainer: Any, step: int, logs: dict[str, Any]) -> None:
        """Turn clicks into requests (they act between steps); push progress when the interval has passed."""
        if self.stop_clicked or self.save_clicked:
            with self._lock:
                stop, save = self.stop_clicked, self.save_clicked
                self.stop_clicked = self.save_clicked = False
            if stop:
                trainer.request_stop(STOP_REASON)
                self._set(status="stopping", message=f"stop requested at step {step}")
            if save:
                if getattr(trainer, "checkpoint_dir", None) is None:
                    self._set(message="Save needs train(..., checkpoint_dir=...): nothing written")
                else:
                    trainer.request_checkpoint()
                    self._set(message=f"saving a checkpoint after step {step}")
            self._progress(trainer, step)
            self.flush(force=True)
            return
        if self.clock() - self._last_push >= self.min_interval_s:
            self._progress(trainer, step)
            self.flush()

    def on_log(self, trainer: Any, step: int, logs: dict[str, Any]) -> None:
        """Copy the newly logged host values into the curve, maybe draw a sample, push if the interval has passed."""
        self._read_history(trainer, logs, step)
        self._progress(trainer, step)
        if self.prompt_ids is not None and self.clock() - self._last_sample >= self.sample_every_s:
            self._sample(trainer, step)
        self.flush()

    def on_eval(self, trainer: Any, step: int, metrics: dict[str, float]) -> None:
        """Add the validation point (pushed with the next update)."""
        self._set(val_points=self.state["val_points"] + [[int(step), _short(metrics.get("eval_loss"))]])
        self.flush()

    def on_checkpoint(self, trainer: Any, path: Any) -> None:
        """Show where the checkpoint went, at once."""
        self._set(last_checkpoint=str(path), message=f"saved {path}")
        self.flush(force=True)

    def on_train_error(self, trainer: Any, error: BaseException) -> None:
        """Show the failure (e.g. a NaN loss) instead of leaving the dashboard 'running'."""
        self._read_history(trainer)
        self._set(
            status="failed", message=f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        )
        self.flush(force=True)

    def on_train_end(self, trainer: Any, history: Any) -> None:
        """Final sample and the last state, pushed regardless of the interval."""
        self._read_history(trainer)
        step = int(getattr(trainer, "step", self.state["step"]))
        self._progress(trainer, step)
        if self.prompt_ids is not None and self.state["sample_step"] != step:
            self._sample(trainer, step)
        reason = getattr(history, "stopped_reason", None)
        if getattr(history, "interrupted", False):
            self._set(status="interrupted", message=reason or "interrupted")
        elif reason:
            self._set(status="stopped", message=reason)
        else:
            self._set(status="finished")
        self._set(eta_s=None)
        with self._lock:  # a click that came after the last step must not stop the next run
            self.stop_clicked = self.save_clicked = False
        self.flush(force=True)

    # ---- the current sample ------------------------------------------------------------------------------------

    def _sample(self, trainer: Any, step: int) -> None:
        """Generate a short continuation with the model being trained (its mode and training's RNG are left as they were)."""
        from labkit.generation import generate

        self._last_sample = self.clock()
        model = getattr(trainer, "model", None)
        try:
            device = next(model.parameters()).device
            ids = torch.tensor([self.prompt_ids], device=device)
            greedy = self.sample_temperature == 0
            out = generate(
                model,
                ids,
                max_new_tokens=self.sample_tokens,
                tokenizer=self.tokenizer,
                temperature=None if greedy else self.sample_temperature,
                do_sample=not greedy,
                seed=self.sample_seed,
                sliding_window=True,
            )
            text = self.tokenizer.decode(out[0].tolist())
        except Exception as exc:  # a dashboard must never end a training run: show why and stop sampling
            self.prompt_ids = None
            self._set(sample=f"(no sample: {type(exc).__name__}: {exc})", sample_step=int(step))
            return
        self._set(sample=str(text), sample_step=int(step))


class TrainingDashboard(StaticFallback, anywidget.AnyWidget):
    """Live training view: loss / val loss / lr / gradient norm / tokens-per-second curves, progress, sample, Stop, Save.

    `dash = TrainingDashboard(tokenizer=tok)`, display it, then `train(model, batches, callbacks=[dash.callback])`.
    Options go to `DashboardCallback` (min_interval_s, max_points, tokenizer, sample_prompt, sample_every_s,
    sample_tokens, sample_temperature, sample_seed, clock); or pass a ready `callback=`. The state lives in
    traits, so a saved notebook or a static HTML export shows the last state.
    """

    _esm = module_text("dashboard.js")
    _css = asset_text("dashboard.css")

    points = t.List(
        t.List(), help="[step, loss, lr, tokens_per_s, grad_norm] per logged step (null where unknown)"
    ).tag(sync=True)
    val_points = t.List(t.List(), help="[step, eval_loss] per evaluation").tag(sync=True)
    step = t.Int(0, help="optimizer steps done").tag(sync=True)
    total_steps = t.Int(0, help="optimizer steps planned").tag(sync=True)
    progress = t.Float(0.0, help="step / total_steps in [0, 1]").tag(sync=True)
    status = t.Enum(STATES, "idle", help="run state").tag(sync=True)
    message = t.Unicode("", help="the latest notice (stop requested, checkpoint saved, ...)").tag(sync=True)
    sample = t.Unicode("", help="the latest text generated by the model being trained").tag(sync=True)
    sample_step = t.Int(0, help="the step the sample was generated at").tag(sync=True)
    elapsed_s = t.Float(0.0, help="seconds since the run started").tag(sync=True)
    eta_s = t.Float(None, allow_none=True, help="estimated seconds to the end").tag(sync=True)
    can_save = t.Bool(False, help="whether Save can write (train() got checkpoint_dir)").tag(sync=True)
    last_checkpoint = t.Unicode("", help="path of the newest checkpoint").tag(sync=True)
    title = t.Unicode("training", help="heading shown above the curves").tag(sync=True)
    smoothing = t.Float(0.6, help="EMA weight of the smoothed loss line in [0, 1)").tag(sync=True)

    def __init__(self, callback: DashboardCallback | None = None, *, title: str = "training", **options: Any) -> None:
        super().__init__(title=title)
        if callback is not None and options:
            raise InvalidInputError(f"pass options ({', '.join(options)}) to DashboardCallback or here, not both")
        if callback is not None and not isinstance(callback, DashboardCallback):
            raise InvalidInputError(f"callback must be a DashboardCallback, got {type(callback).__name__}")
        known = [p for p in inspect.signature(DashboardCallback.__init__).parameters if p not in ("self", "dashboard")]
        unknown = [k for k in options if k not in known]
        if unknown:  # DashboardCallback would raise a raw TypeError for them
            hint = close_matches(unknown[0], known + ["title"]) or "options are " + ", ".join(known)
            raise UnknownNameError(f"TrainingDashboard has no option {unknown[0]!r}; {hint}")
        self.callback = callback if callback is not None else DashboardCallback(**options)
        self.callback.dashboard = self
        self.on_msg(self._on_custom_msg)
        self._hook_comm()

    # ---- messages from the page ------------------------------------------------------------------------------

    def _on_custom_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") in ("stop", "save"):
            self.callback.click(content["type"], content.get("id"))

    def _hook_comm(self) -> None:
        """Notice Stop/Save messages on ipykernel's shell-channel thread, so they land while train() runs (see module doc)."""
        comm = getattr(self, "comm", None)
        if comm is None:
            return
        original = getattr(comm, "_reply_subshell_for", None)

        def route(data: Any, default: Any) -> Any:
            try:
                if isinstance(data, dict) and data.get("method") == "custom":
                    self._on_custom_msg(self, data.get("content"), None)
            except Exception:  # noqa: BLE001 - never break the kernel's message routing
                pass
            return original(data, default) if original is not None else default

        try:
            comm._reply_subshell_for = route
        except Exception:  # noqa: BLE001 - a comm class that forbids attributes: clicks then arrive after the cell
            pass

    # ---- state from the callback ---------------------------------------------------------------------------

    def _apply(self, update: dict[str, Any]) -> None:
        with self.hold_sync():
            for key, value in update.items():
                setattr(self, key, value)

    @t.validate("progress")
    def _valid_progress(self, proposal: dict) -> float:
        return check_float("progress", proposal["value"], low=0, high=1)

    @t.validate("smoothing")
    def _valid_smoothing(self, proposal: dict) -> float:
        return check_float("smoothing", proposal["value"], low=0, high=1, high_open=True)

    @t.validate("points", "val_points")
    def _valid_points(self, proposal: dict) -> list:
        sizes, form = (
            ((4, 5), "point must be [step, loss, lr, tokens_per_s, grad_norm]")  # 4: a state saved before grad_norm
            if proposal["trait"].name == "points"
            else ((2,), "val point must be [step, eval_loss]")
        )
        bad = next((p for p in proposal["value"] if len(p) not in sizes), None)
        if bad is not None:
            raise InvalidInputError(f"each {form}, got {bad!r}")
        return proposal["value"]

    # ---- static output ------------------------------------------------------------------------------------------

    def summary(self) -> str:
        """A text/plain summary of the current state: status, progress, curves, sample."""
        data = {"points": self.points, "val_points": self.val_points}
        lines = [
            f"TrainingDashboard({self.status}): step {self.step}/{self.total_steps} ({100 * self.progress:.0f}%)"
            + (f"; {plain_token(self.message)}" if self.message else ""),
            curves_summary(data, title=self.title),
        ]
        if self.sample:  # user text as an escaped string literal: inert wherever the summary is shown
            lines.append(f"sample at step {self.sample_step}: {plain_token(self.sample[:200])}")
        return "\n".join(lines)

    def to_figure(self, smoothing: float | None = None) -> Any:
        """The current curves as a plotly Figure (`labkit.viz.curves.training_curves`), for reports."""
        from labkit.viz.curves import training_curves

        return training_curves(
            {"points": self.points, "val_points": self.val_points},
            title=self.title,
            smoothing=self.smoothing if smoothing is None else smoothing,
        )

    def to_svg(self, standalone: bool = True) -> str:
        """The static fallback: an SVG of the train and val loss curves (title and text escaped)."""
        return curves_svg(
            {"points": self.points, "val_points": self.val_points}, title=self.title, standalone=standalone
        )

    def _static_view(self) -> TrainingDashboard:
        return self  # the curve and the summary
