"""TrainingDashboard without a kernel (and once with a real one): throttled pushes, Stop/Save acting between steps
in real train() runs, samples that leave training untouched, validation, escaping, the front end's pure helpers."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from labkit.data.tokenizer import train_tokenizer
from labkit.errors import InvalidInputError
from labkit.frontend import module_text
from labkit.generation import generate
from labkit.models.gpt import GPT, GPTConfig
from labkit.training import train
from labkit.training.callbacks import LambdaCallback
from labkit.training.history import History
from labkit.viz.curves import ema
from labkit.widgets.dashboard import STOP_REASON, DashboardCallback, TrainingDashboard

HOSTILE = "</script><img src=x onerror=alert(1)>"
TEXT = "to be or not to be, that is the question. " * 30
QUIET = dict(progress=False, device="cpu", precision="fp32")
NODE = shutil.which("node")
MODULE = Path(__file__).resolve().parents[2] / "widgets" / "dashboard.js"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXT, kind="char")


def _model(vocab: int, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig.preset("gpt-nano", vocab_size=vocab, block_size=32, n_layer=1))


def _batches(tok, n: int = 4) -> list[dict]:
    ids = torch.tensor(tok.encode(TEXT))
    return [
        {
            "input_ids": ids[i * 16 : i * 16 + 16].reshape(1, 16).repeat(2, 1),
            "labels": ids[i * 16 : i * 16 + 16].reshape(1, 16).repeat(2, 1),
        }
        for i in range(n)
    ]


def _clicker(dash: TrainingDashboard, kind: str, at: int) -> LambdaCallback:
    """Sends the page's message during step `at`, as a click arriving mid-step would."""

    def on_step_end(trainer, step, logs):
        if step == at:
            dash._on_custom_msg(dash, {"type": kind, "id": f"{kind}-{at}"}, [])

    return LambdaCallback(on_step_end=on_step_end)


# ---------------------------------------------------------------- Stop and Save in real runs


def test_stop_click_ends_a_real_run_after_that_step_and_checkpoints(tok, tmp_path):
    dash = TrainingDashboard()
    history = train(
        _model(tok.vocab_size),
        _batches(tok),
        steps=50,
        log_every=2,
        checkpoint_dir=tmp_path,
        callbacks=[_clicker(dash, "stop", 3), dash.callback],
        **QUIET,
    )
    assert history.step[-1] == 3 and history.stopped_reason == STOP_REASON and not history.interrupted
    assert (tmp_path / "step-000003").is_dir()
    assert dash.status == "stopped" and dash.message == STOP_REASON and dash.step == 3
    assert [p[0] for p in dash.points] == [1, 2, 3]
    assert [p[4] for p in dash.points] == pytest.approx(history.grad_norm, rel=1e-5)  # the gradient-norm readout
    assert all(p[4] > 0 for p in dash.points) and "gradient norm" in dash._esm


def test_a_diverging_run_shows_failed_and_keeps_the_error(tok, tmp_path):
    from labkit.training import TrainingDivergedError

    dash = TrainingDashboard()
    with pytest.raises(TrainingDivergedError):
        train(
            _model(tok.vocab_size),
            _batches(tok),
            steps=50,
            lr=1e12,
            log_every=1,
            checkpoint_dir=tmp_path,
            callbacks=[dash.callback],
            **QUIET,
        )
    assert dash.status == "failed" and "TrainingDivergedError" in dash.message


def test_save_click_writes_a_checkpoint_at_that_step_and_training_goes_on(tok, tmp_path):
    dash = TrainingDashboard()
    history = train(
        _model(tok.vocab_size),
        _batches(tok),
        steps=6,
        log_every=3,
        checkpoint_dir=tmp_path,
        keep_last=5,
        callbacks=[_clicker(dash, "save", 2), dash.callback],
        **QUIET,
    )
    assert history.step[-1] == 6 and history.stopped_reason is None
    assert (tmp_path / "step-000002").is_dir() and (tmp_path / "step-000006").is_dir()
    assert not (tmp_path / "step-000003").exists()
    assert dash.status == "finished" and dash.can_save and dash.last_checkpoint.endswith("step-000006")


def test_save_without_checkpoint_dir_explains_and_writes_nothing(tok):
    dash = TrainingDashboard()
    train(_model(tok.vocab_size), _batches(tok), steps=4, callbacks=[_clicker(dash, "save", 1), dash.callback], **QUIET)
    assert not dash.can_save and dash.status == "finished"
    assert "Save needs train(..., checkpoint_dir=...)" in dash.message


def test_comm_hook_sets_the_flag_from_another_thread_once_per_click():
    dash, calls = TrainingDashboard(), []
    data = {"method": "custom", "content": {"type": "stop", "id": "click-1"}}
    dash._on_custom_msg(dash, {"type": "stop", "id": "before"}, [])
    assert not dash.callback.stop_clicked  # no run going: a late click must not stop the next run
    trainer = SimpleNamespace(
        request_stop=lambda reason: calls.append(reason), checkpoint_dir=None, total_steps=9, step=0
    )
    dash.callback.on_train_begin(trainer)
    results = []
    worker = threading.Thread(target=lambda: results.append(dash.comm._reply_subshell_for(data, "route-default")))
    worker.start()
    worker.join()
    assert dash.callback.stop_clicked and results == ["route-default"]  # the routing answer is unchanged
    dash.callback.on_step_end(trainer, 1, {})
    dash._on_custom_msg(dash, data["content"], [])  # the same click dispatched again after the cell: ignored
    dash.callback.on_step_end(trainer, 2, {})
    assert calls == [STOP_REASON]
    dash.comm._reply_subshell_for({"method": "update", "state": {"title": "x"}}, None)
    assert not dash.callback.stop_clicked and not dash.callback.save_clicked


# ---------------------------------------------------------------- throttling and host-only reads


class _Recorder:
    def __init__(self, clock):
        self.clock, self.pushes = clock, []

    def _apply(self, update):
        self.pushes.append((self.clock(), update))


class _NoDeviceReads:
    """A stand-in for the step's loss tensor that fails on any read."""

    def __getattr__(self, name):
        raise AssertionError(f"the dashboard read the step loss ({name})")

    def __float__(self):
        raise AssertionError("the dashboard converted the step loss")


def test_pushes_are_throttled_and_the_last_state_always_arrives():
    now = [0.0]
    clock = lambda: now[0]  # noqa: E731
    rec = _Recorder(clock)
    cb = DashboardCallback(rec, min_interval_s=0.5, clock=clock)
    history = History()
    trainer = SimpleNamespace(history=history, total_steps=200, step=0, checkpoint_dir=None)
    cb.on_train_begin(trainer)
    for step in range(1, 201):
        now[0] += 0.01  # 100 steps per second
        trainer.step = step
        cb.on_step_end(trainer, step, {"loss": _NoDeviceReads()})
        if step % 5 == 0:
            for s in range(step - 4, step + 1):
                history.append_step(s, 3.0 - s / 100, 1e-3, 1.0, 500.0)
            cb.on_log(trainer, step, {"loss": history.loss[-1], "lr": 1e-3, "tokens_per_s": 500.0})
    cb.on_train_end(trainer, history)
    times = [t for t, _ in rec.pushes]
    assert all(b - a >= 0.5 - 1e-9 for a, b in zip(times[:-2], times[1:-1]))  # only the final push skips the wait
    assert len(rec.pushes) <= 2 + 2.0 / 0.5 + 1
    final = {}
    for _, update in rec.pushes:
        final.update(update)
    assert [p[0] for p in final["points"]] == list(range(1, 201))
    assert [p[1] for p in final["points"]] == pytest.approx(history.loss, rel=1e-5)
    assert final["status"] == "finished" and final["step"] == 200 and final["progress"] == 1.0


def test_points_beyond_max_points_are_merged_in_pairs():
    cb = DashboardCallback(max_points=8, min_interval_s=0)
    history = History()
    trainer = SimpleNamespace(history=history, total_steps=40, step=0, checkpoint_dir=None)
    cb.on_train_begin(trainer)
    for s in range(1, 41):
        history.append_step(s, float(s), 1e-3)
        cb.on_log(trainer, s, {})
    pts = cb.state["points"]
    assert len(pts) <= 8 and pts[-1][0] == 40
    assert [p[0] for p in pts] == sorted({p[0] for p in pts})
    # losses equal their step, so a merged point's loss (a mean of means) lies within the steps it covers
    for prev, (step, loss, *_) in zip([[0]] + pts, pts):
        assert prev[0] + 1 <= loss <= step
    assert any(step - prev[0] > 1 for prev, (step, *_) in zip([[0]] + pts, pts))  # merging did happen


def test_resumed_run_shows_the_earlier_curve(tok, tmp_path):
    model = _model(tok.vocab_size)
    # a run of 8 steps stopped after 4 (a resume must be the same run: same steps)
    stop = LambdaCallback(on_step_end=lambda trainer, step, logs: step == 4 and trainer.request_stop("paused"))
    train(model, _batches(tok), steps=8, log_every=2, checkpoint_dir=tmp_path, callbacks=[stop], **QUIET)
    dash = TrainingDashboard()
    train(
        _model(tok.vocab_size),
        _batches(tok),
        steps=8,
        log_every=2,
        checkpoint_dir=tmp_path,
        resume=True,
        callbacks=[dash.callback],
        **QUIET,
    )
    assert [p[0] for p in dash.points] == list(range(1, 9))


# ---------------------------------------------------------------- samples


def test_samples_leave_training_untouched_and_match_generate(tok):
    plain = train(_model(tok.vocab_size), _batches(tok), steps=6, log_every=2, **QUIET)
    model = _model(tok.vocab_size)
    dash = TrainingDashboard(
        tokenizer=tok, sample_prompt="to be", sample_every_s=0, sample_tokens=12, sample_temperature=0.9
    )
    watched = train(model, _batches(tok), steps=6, log_every=2, callbacks=[dash.callback], **QUIET)
    assert watched.loss == plain.loss  # sampling used a private generator and restored the model's mode
    prompt = torch.tensor([tok.encode("to be")])
    ref = generate(model, prompt, max_new_tokens=12, temperature=0.9, seed=0, tokenizer=tok)
    assert dash.sample == tok.decode(ref[0].tolist()) and dash.sample_step == 6
    assert model.training is False  # train() leaves the model in eval mode, as without a dashboard


def test_a_failing_sample_never_stops_training(tok):
    class Broken:
        bos_id = 0

        def encode(self, text):
            return [0]

        def decode(self, ids):
            raise RuntimeError("decoder exploded")

    dash = TrainingDashboard(tokenizer=Broken(), sample_every_s=0)
    history = train(_model(tok.vocab_size), _batches(tok), steps=4, log_every=2, callbacks=[dash.callback], **QUIET)
    assert history.step[-1] == 4 and dash.status == "finished"
    assert dash.sample.startswith("(no sample: RuntimeError: decoder exploded")


# ---------------------------------------------------------------- validation, static output


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(min_interval_s=-1), "min_interval_s must be a finite number >= 0"),
        (dict(max_points=4), "max_points must be an integer >= 8"),
        (dict(sample_tokens=0), "sample_tokens must be an integer >= 1"),
        (dict(sample_prompt="hi"), "sample_prompt needs tokenizer="),
        (dict(sample_temperature=-0.1), "sample_temperature must be a finite number >= 0"),
    ],
)
def test_bad_options_fail_early(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        TrainingDashboard(**kwargs)


def test_traits_are_validated_and_synced():
    dash = TrainingDashboard()
    for name, value, message in [
        ("progress", 1.5, r"progress must be a finite number in \[0, 1\]"),
        ("smoothing", 1.0, r"smoothing must be a finite number in \[0, 1\)"),
        ("points", [[1, 2.0]], r"each point must be \[step, loss, lr, tokens_per_s, grad_norm\]"),
        ("val_points", [[1]], r"each val point must be \[step, eval_loss\]"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            setattr(dash, name, value)
    synced = set(dash.traits(sync=True))
    assert {"points", "val_points", "progress", "status", "sample", "can_save", "message"} <= synced
    assert dash._esm == module_text("dashboard.js") and "export default" in dash._esm and dash._css
    with pytest.raises(InvalidInputError, match="DashboardCallback or here, not both"):
        TrainingDashboard(DashboardCallback(), min_interval_s=1)
    with pytest.raises(InvalidInputError, match="unknown dashboard action 'pause'"):
        dash.callback.click("pause")


def test_static_fallbacks_escape_user_text():
    dash = TrainingDashboard(title=HOSTILE)
    dash.points = [[1, 2.5, 1e-3, 100.0], [2, 2.0, 1e-3, 110.0]]
    dash.val_points = [[2, 2.2]]
    dash.sample, dash.message = HOSTILE, HOSTILE
    bundle, _ = dash._repr_mimebundle_()
    for mime in ("text/plain", "image/svg+xml"):
        assert "<img" not in bundle[mime] and "</script" not in bundle[mime], mime
    ET.fromstring(bundle["image/svg+xml"])
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "loss 2.0000" in bundle["text/plain"]
    fig = dash.to_figure(smoothing=0.0)
    assert list(fig.data[0].y) == [2.5, 2.0] and list(fig.data[1].y) == [2.2]


# ---------------------------------------------------------------- front end helpers (node)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_js_ema_and_paths_match_python():
    values = [3.0, None, 2.5, 2.0, float("nan"), 1.0]
    code = (
        f"import {{ ema, linePath, extent }} from {json.dumps(MODULE.as_uri())};\n"
        "const v = [3.0, null, 2.5, 2.0, NaN, 1.0];\n"
        "console.log(JSON.stringify({ema: ema(v, 0.6), path: linePath([1,2,3,4,5,6], v, (x) => x, (y) => y),"
        " flat: extent([2, 2]), none: extent([null])}));"
    )
    done = subprocess.run([NODE, "--input-type=module", "-e", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    ref = ema([None if v is None or v != v else v for v in values], 0.6)
    assert got["ema"] == pytest.approx(ref)
    assert got["path"] == "M1.0,3.0M3.0,2.5L4.0,2.0M6.0,1.0"
    assert got["flat"] == [1.9, 2.1] and got["none"] is None


# ---------------------------------------------------------------- a real kernel


def test_stop_reaches_a_busy_kernel():
    """A Stop message sent while train() keeps a real ipykernel busy ends the run (the comm hook at work)."""
    manager = pytest.importorskip("jupyter_client.manager")
    km, kc = manager.start_new_kernel(kernel_name="python3")
    try:
        out: list[str] = []
        hook = lambda m: out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None  # noqa: E731
        setup = (
            "import torch\nfrom labkit.models import GPT, GPTConfig\nfrom labkit.training import train\n"
            "from labkit.widgets.dashboard import TrainingDashboard\ntorch.set_num_threads(1)\n"
            "model = GPT(GPTConfig.preset('gpt-nano', vocab_size=16, block_size=8, n_layer=1))\n"
            "x = torch.randint(0, 16, (1, 8)); batches = [{'input_ids': x, 'labels': x}]\n"
            "dash = TrainingDashboard(); print(dash.comm.comm_id)"
        )
        reply = kc.execute_interactive(setup, timeout=60, output_hook=hook)
        assert reply["content"]["status"] == "ok", reply["content"]
        comm_id = "".join(out).split()[0]
        msg_id = kc.execute(
            "h = train(model, batches, steps=10**7, callbacks=[dash.callback], progress=False, device='cpu')"
        )
        deadline = time.time() + 60
        while time.time() < deadline:  # wait until the dashboard reports the run (an update on iopub)
            msg = kc.get_iopub_msg(timeout=60)
            state = msg["content"].get("data", {}).get("state", {}) if msg["msg_type"] == "comm_msg" else {}
            if state.get("status") == "running":
                break
        time.sleep(0.5)
        kc.shell_channel.send(
            kc.session.msg(
                "comm_msg",
                {"comm_id": comm_id, "data": {"method": "custom", "content": {"type": "stop", "id": "kernel-test"}}},
            )
        )
        reply = kc.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=60)
        assert reply["content"]["status"] == "ok"
        out.clear()
        kc.execute_interactive("print(h.stopped_reason, h.step[-1] < 10**7, dash.status)", timeout=60, output_hook=hook)
        assert "".join(out).strip() == f"{STOP_REASON} True stopped"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
