"""train(): every objective learns, callbacks fire in order, interrupts and NaNs end cleanly, bad names fail early."""

from __future__ import annotations

import signal

import pytest
import torch

from labkit.errors import InvalidInputError, UnknownNameError
from labkit.models.encoder import Encoder, EncoderConfig
from labkit.models.gpt import GPT, GPTConfig
from labkit.models.lstm import LSTMLM, LSTMConfig
from labkit.models.seq2seq import Seq2Seq, Seq2SeqConfig
from labkit.training import Callback, train
from labkit.training.callbacks import EarlyStopping
from labkit.training.checkpoint import resolve_checkpoint
from labkit.training.device import resolve_precision
from labkit.training.history import History, TrainingDivergedError
from labkit.training.trainer import Trainer

QUIET = dict(progress=False, device="cpu", precision="fp32")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gpt(seed=0, vocab=32):
    torch.manual_seed(seed)
    return GPT(GPTConfig.preset("gpt-nano", vocab_size=vocab, block_size=16, n_layer=2))


def _lm_batches(n=4, batch=4, seq=16, vocab=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = torch.randint(0, vocab, (batch, seq), generator=gen)
        out.append({"input_ids": x, "labels": x})
    return out


def _mlm_batch():
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 50, (8, 12), generator=gen)
    labels = torch.full_like(ids, -100)
    masked = torch.rand(ids.shape, generator=gen) < 0.3
    labels[masked] = ids[masked]
    return {"input_ids": ids.masked_fill(masked, 4), "attention_mask": torch.ones_like(ids), "labels": labels}


def _cases():
    torch.manual_seed(0)
    x = torch.randint(0, 32, (4, 16))
    gen = torch.Generator().manual_seed(2)
    src, tgt = torch.randint(2, 30, (4, 10), generator=gen), torch.randint(2, 30, (4, 9), generator=gen)
    return {
        "gpt": (
            lambda: GPT(GPTConfig.preset("gpt-nano", vocab_size=32, block_size=16, n_layer=2)),
            {"input_ids": x, "labels": x},
        ),
        "lstm": (lambda: LSTMLM(LSTMConfig.preset("lstm-tiny", vocab_size=32)), {"input_ids": x, "labels": x}),
        "mlm": (
            lambda: Encoder(
                EncoderConfig.preset("encoder-tiny", vocab_size=50, block_size=16, dropout=0.0, attn_dropout=0.0)
            ),
            _mlm_batch(),
        ),
        "classification": (
            lambda: Encoder(
                EncoderConfig.preset(
                    "encoder-tiny",
                    vocab_size=50,
                    block_size=16,
                    head="classification",
                    num_labels=3,
                    dropout=0.0,
                    attn_dropout=0.0,
                    classifier_dropout=0.0,
                )
            ),
            {"input_ids": torch.randint(0, 50, (6, 8), generator=gen), "labels": torch.tensor([0, 1, 2, 0, 1, 2])},
        ),
        "seq2seq": (
            lambda: Seq2Seq(
                Seq2SeqConfig.preset("transformer-tiny", src_vocab_size=30, tgt_vocab_size=30, dropout=0.0)
            ),
            {"input_ids": src, "attention_mask": torch.ones_like(src), "labels": tgt},
        ),
    }


@pytest.mark.parametrize("name", ["gpt", "lstm", "mlm", "classification", "seq2seq"])
def test_every_objective_overfits_a_fixed_batch(name):
    make, batch = _cases()[name]
    torch.manual_seed(0)
    model = make()
    history = train(model, [batch], steps=30, lr=1e-2, schedule="constant", weight_decay=0.0, log_every=5, **QUIET)
    assert len(history.loss) == 30 and history.step == list(range(1, 31))
    assert history.loss[-1] < 0.6 * history.loss[0], history.loss
    assert not model.training  # returned ready for evaluation


def test_history_dataframe_eval_metrics_and_json(tmp_path):
    batches = _lm_batches()
    history = train(_gpt(), batches, val_batches=batches[:2], steps=6, eval_every=3, log_every=2, lr=1e-3, **QUIET)
    frame = history.to_pandas()
    assert list(frame.columns) == [
        "step",
        "loss",
        "lr",
        "grad_norm",
        "tokens_per_s",
        "mfu",
        "eval_loss",
        "eval_perplexity",
    ]
    assert (
        frame["step"].tolist() == list(range(1, 7)) and frame["eval_loss"].notna().tolist() == [False, False, True] * 2
    )
    assert frame["mfu"].isna().all() and (frame["tokens_per_s"] > 0).all()  # CPU: no known peak, so no MFU
    assert history.eval_perplexity[-1] == pytest.approx(torch.tensor(history.eval_loss[-1]).exp().item())
    assert history.best_eval_loss == min(history.eval_loss) and "steps=6" in repr(history)
    loaded = History.load(history.save(tmp_path / "h.json"))
    assert loaded.loss == history.loss and loaded.eval_step == [3, 6]


def test_eval_loss_is_token_weighted_mean():
    model = _gpt()
    a, b = _lm_batches(2, batch=2)
    b["labels"] = b["labels"].clone()
    b["labels"][:, 8:] = -100  # fewer label tokens in the second batch
    trainer = Trainer(model, [a], val_batches=[a, b], steps=1, **QUIET)
    with torch.no_grad():
        la, lb = model(**a).loss.item(), model(**b).loss.item()
    na, nb = (a["labels"] != -100).sum().item(), (b["labels"] != -100).sum().item()
    assert trainer.evaluate()["eval_loss"] == pytest.approx((la * na + lb * nb) / (na + nb), rel=1e-6)


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, trainer):
        self.events.append("begin")

    def on_step_end(self, trainer, step, logs):
        assert isinstance(logs["loss"], torch.Tensor)  # no host sync per step
        self.events.append(f"step{step}")

    def on_log(self, trainer, step, logs):
        assert isinstance(logs["loss"], float)
        self.events.append(f"log{step}")

    def on_eval(self, trainer, step, metrics):
        self.events.append(f"eval{step}")

    def on_checkpoint(self, trainer, path):
        assert (path / "meta.json").is_file()
        self.events.append(f"ckpt{step_of(path)}")

    def on_train_end(self, trainer, history):
        self.events.append("end")


def step_of(path):
    return int(path.name.split("-")[1])


def test_callback_events_in_order(tmp_path):
    rec = Recorder()
    batches = _lm_batches(2)
    train(
        _gpt(),
        batches,
        val_batches=batches[:1],
        steps=4,
        log_every=2,
        eval_every=2,
        checkpoint_dir=tmp_path,
        checkpoint_every=2,
        callbacks=[rec],
        **QUIET,
    )
    assert rec.events == [
        "begin",
        "step1",
        "step2",
        "log2",
        "eval2",
        "ckpt2",
        "step3",
        "step4",
        "log4",
        "eval4",
        "ckpt4",
        "end",
    ]


def test_grad_accum_equals_one_big_batch():
    batches = _lm_batches(4, batch=2)
    big = [{k: torch.cat([batches[i][k], batches[i + 1][k]]) for k in batches[0]} for i in (0, 2)]
    m1, m2 = _gpt(), _gpt()
    train(m1, batches, steps=2, grad_accum=2, optimizer="sgd", lr=0.1, clip_norm=None, **QUIET)
    train(m2, big, steps=2, optimizer="sgd", lr=0.1, clip_norm=None, **QUIET)
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


class StopAt(Callback):
    def __init__(self, step, how):
        self.step, self.how = step, how

    def on_step_end(self, trainer, step, logs):
        if step == self.step:
            if self.how == "raise":
                raise KeyboardInterrupt
            if self.how == "signal":
                signal.raise_signal(signal.SIGINT)
            if self.how == "request":
                trainer.request_stop("user pressed Stop")


@pytest.mark.parametrize("how", ["raise", "signal", "request"])
def test_interrupts_end_cleanly_with_a_checkpoint(tmp_path, how):
    model = _gpt()
    history = train(
        model, _lm_batches(), steps=10, checkpoint_dir=tmp_path, callbacks=[StopAt(3, how)], log_every=5, **QUIET
    )
    assert history.step[-1] == 3 and len(history.loss) == 3
    assert history.interrupted == (how != "request") and history.stopped_reason
    assert resolve_checkpoint(tmp_path).name == "step-000003" and history.last_checkpoint == tmp_path / "step-000003"
    assert not model.training and all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        assert torch.isfinite(model(**_lm_batches(1)[0]).loss)


def test_keyboard_interrupt_mid_step_discards_the_partial_step(tmp_path):
    calls = {"n": 0}

    def loss_fn(model, batch):
        calls["n"] += 1
        if calls["n"] == 5:  # forward of step 5
            raise KeyboardInterrupt
        return model(**batch).loss

    interrupted, reference = _gpt(), _gpt()
    history = train(interrupted, _lm_batches(), steps=10, loss_fn=loss_fn, checkpoint_dir=tmp_path, **QUIET)
    train(reference, _lm_batches(), steps=10, callbacks=[StopAt(4, "request")], **QUIET)
    assert history.interrupted and history.step[-1] == 4 and resolve_checkpoint(tmp_path).name == "step-000004"
    for a, b in zip(interrupted.parameters(), reference.parameters()):
        assert torch.equal(a, b)


def test_request_checkpoint_writes_between_steps(tmp_path):
    class Save(Callback):
        def on_step_end(self, trainer, step, logs):
            if step == 2:
                trainer.request_checkpoint()

    train(_gpt(), _lm_batches(), steps=4, checkpoint_dir=tmp_path, keep_last=5, callbacks=[Save()], **QUIET)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-000002", "step-000004"]


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    calls = {"n": 0}

    def loss_fn(model, batch):
        calls["n"] += 1
        loss = model(**batch).loss
        return loss * float("nan") if calls["n"] >= 5 else loss

    with pytest.raises(TrainingDivergedError, match="loss is nan at step 5") as err:
        train(
            _gpt(),
            _lm_batches(),
            steps=10,
            loss_fn=loss_fn,
            log_every=3,
            checkpoint_dir=tmp_path,
            checkpoint_every=4,
            **QUIET,
        )
    message = str(err.value)
    assert "\n" not in message and "step-000004" in message and isinstance(err.value, FloatingPointError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-000004"]
    assert err.value.history.step[-1] == 6 and err.value.step == 5
    import math

    restored = _gpt(seed=9)
    from labkit.training import load_checkpoint

    load_checkpoint(tmp_path, restored)
    assert all(math.isfinite(v) for v in restored.wte.weight.flatten().tolist()[:50])


def test_early_stopping_sets_reason():
    batches = _lm_batches(2)
    history = train(
        _gpt(),
        batches,
        val_batches=batches,
        steps=50,
        lr=5.0,
        optimizer="sgd",
        eval_every=1,
        callbacks=[EarlyStopping(patience=2, min_delta=10.0)],
        **QUIET,
    )
    assert history.step[-1] == 3 and "early stopping" in history.stopped_reason and not history.interrupted


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(optimizer="adamw2"), UnknownNameError, "did you mean 'adamw'"),
        (dict(schedule="cosin"), UnknownNameError, "did you mean 'cosine'"),
        (dict(precision="bf61"), UnknownNameError, "did you mean 'bf16'"),
        (dict(precision="fp16"), InvalidInputError, "fp16' needs a CUDA GPU"),
        (dict(steps=0), InvalidInputError, "steps must be an integer >= 1"),
        (dict(resume="/nonexistent/run"), FileNotFoundError, "no checkpoint"),
    ],
)
def test_bad_names_and_values_fail_before_training(kwargs, error, match):
    model = _gpt()
    before = [p.clone() for p in model.parameters()]
    options = {**QUIET, "steps": 3, **kwargs}
    with pytest.raises(error, match=match) as err:
        train(model, _lm_batches(), **options)
    assert "\n" not in str(err.value)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_bf16_refused_on_a_gpu_without_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla T4")
    with pytest.raises(InvalidInputError, match="bf16' is not supported on Tesla T4"):
        resolve_precision("bf16", torch.device("cuda"))
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"


def test_bf16_autocast_trains_on_cpu():
    history = train(_gpt(), _lm_batches(1), steps=2, progress=False, device="cpu", precision="bf16")
    assert all(map(torch.isfinite, torch.tensor(history.loss)))


def test_streams_need_steps_and_resume_of_other_architecture_is_refused(tmp_path):
    stream = iter(_lm_batches())
    with pytest.raises(InvalidInputError, match="pass steps=N"):
        train(_gpt(), stream, **QUIET)
    with pytest.raises(InvalidInputError, match="ran out after 4 batches"):
        train(_gpt(), iter(_lm_batches()), steps=6, **QUIET)
    train(_gpt(), _lm_batches(), steps=2, checkpoint_dir=tmp_path, **QUIET)
    lstm = LSTMLM(LSTMConfig.preset("lstm-tiny", vocab_size=32))
    with pytest.raises(InvalidInputError, match="holds a GPT"):
        train(lstm, _lm_batches(), steps=4, resume=tmp_path, **QUIET)
    with pytest.raises(InvalidInputError, match="vocab_size=32 but the model has vocab_size=64"):
        train(_gpt(vocab=64), _lm_batches(), steps=4, resume=tmp_path, **QUIET)


def test_mfu_uses_the_peak_table_and_flop_estimate(monkeypatch):
    from labkit.training.device import peak_flops

    for name, precision, peak in [
        ("NVIDIA H100 80GB HBM3", "bf16", 989e12),
        ("NVIDIA H100 PCIe", "bf16", 756e12),
        ("NVIDIA A100-SXM4-40GB", "fp32", 156e12),
        ("NVIDIA L4", "fp16", 121e12),
        ("Some Future GPU", "bf16", None),
    ]:
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, _n=name, **k: _n)
        assert peak_flops(torch.device("cuda"), precision) == peak
    assert peak_flops(torch.device("cpu"), "fp32") is None


@pytest.mark.parametrize("tie", [True, False])
def test_flops_per_token_matches_counted_matmul_flops(tie):
    """The 6N + attention estimate against torch's FLOP counter over a real forward and backward pass."""
    from torch.utils.flop_counter import FlopCounterMode

    from labkit.models import GPT, GPTConfig
    from labkit.training.device import flops_per_token

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=512, block_size=64, n_layer=2, n_head=4, n_embd=128, tie_embeddings=tie))
    b, t = 2, 64
    ids = torch.randint(0, 512, (b, t))
    with FlopCounterMode(display=False) as counter:
        # the explicit attention path: its q @ k and pattern @ v are matmuls the counter sees
        model(ids, labels=ids, output_attentions=True).loss.backward()
    counted = counter.get_total_flops()
    estimate = flops_per_token(model, t) * b * t
    # 6N also counts biases and norm weights (about 1% here), which do no matrix products
    assert abs(estimate - counted) / counted < 0.015, (estimate, counted)


def test_train_signature_lists_every_option_and_empty_history_exports():
    import inspect

    params = inspect.signature(train).parameters
    assert {"val_batches", "steps", "epochs", "optimizer", "schedule", "precision", "resume", "loss_fn"} <= set(params)
    frame = History().to_pandas()
    assert len(frame) == 0 and "eval_loss" in frame.columns and repr(History()) == "History(steps=0)"


def test_lambda_callback_and_bad_callbacks():
    from labkit.training.callbacks import LambdaCallback

    seen = []
    train(
        _gpt(),
        _lm_batches(2),
        steps=4,
        log_every=2,
        callbacks=[LambdaCallback(on_log=lambda t, step, logs: seen.append(step))],
        **QUIET,
    )
    assert seen == [2, 4]
    with pytest.raises(InvalidInputError, match="unknown event 'on_stepend'"):
        LambdaCallback(on_stepend=print)
    with pytest.raises(InvalidInputError, match="subclass Callback"):
        train(_gpt(), _lm_batches(2), steps=1, callbacks=[print], **QUIET)


@pytest.mark.parametrize("grad_off", ["no_grad", "set_grad_enabled"])
def test_train_enables_gradients_itself_and_gives_the_mode_back(grad_off):
    """Notebooks often switch gradients off for inspection; train() must still learn, and leave the switch as it was."""
    reference = _gpt()
    train(reference, _lm_batches(), steps=4, lr=1e-2, seed=0, **QUIET)
    model = _gpt()
    previous = torch.is_grad_enabled()
    try:
        if grad_off == "no_grad":
            with torch.no_grad():
                history = train(model, _lm_batches(), steps=4, lr=1e-2, seed=0, **QUIET)
                assert not torch.is_grad_enabled()
        else:
            torch.set_grad_enabled(False)
            history = train(model, _lm_batches(), steps=4, lr=1e-2, seed=0, **QUIET)
            assert not torch.is_grad_enabled()
    finally:
        torch.set_grad_enabled(previous)
    assert history.step[-1] == 4
    for (name, got), want in zip(model.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(got, want, msg=name)  # the same updates as with gradients on
