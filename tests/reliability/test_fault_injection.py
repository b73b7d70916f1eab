"""kill -9 during checkpoint writes, at random points: resume always succeeds from a good checkpoint and the
run's losses and weights come out exactly as in the uninterrupted run.

`fault_worker.py` (one subprocess, forking one child per trial) kills training runs with SIGKILL at distinct
random file-system operations of their checkpoint writes (a torn write, before a folder fsync, a rename or a
removal) and at random moments from outside. This test then resumes every one of them here.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from labkit.training import train
from labkit.training.manifest import CheckpointWarning, step_dirs, verify_checkpoint

HERE = Path(__file__).resolve().parent
EVENT_TRIALS, TIMER_TRIALS = 20, 4

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def _worker_module():
    # the test folders are not packages (--import-mode=importlib): load the worker by path, as it runs
    spec = importlib.util.spec_from_file_location("labkit_fault_worker", HERE / "fault_worker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trials(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    plan = root / "plan.json"
    plan.write_text(json.dumps({"root": str(root), "seed": 20261202, "events": EVENT_TRIALS, "timers": TIMER_TRIALS}))
    done = subprocess.run(
        [sys.executable, str(HERE / "fault_worker.py"), str(plan), str(root / "results.json")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((root / "results.json").read_text())


def test_every_kill_resumes_from_a_good_checkpoint_with_the_uninterrupted_losses(trials):
    worker = _worker_module()
    full_model, batches = worker.build()
    full = train(full_model, batches, **worker.OPTIONS)

    assert trials["operations"] >= 6 * 8  # six checkpoints, each several files, fsyncs and renames
    events = [t for t in trials["trials"] if t["kind"] == "event"]
    assert len(events) == EVENT_TRIALS and len({t["target"] for t in events}) == EVENT_TRIALS
    assert all(t["killed"] for t in events), [t for t in events if not t["killed"]]
    half_written = 0
    for trial in trials["trials"]:
        folder = Path(trial["dir"])
        # a kill mid-write leaves a temporary folder next to the step folders, never a damaged step folder
        half_written += any(folder.glob(".tmp-step-*"))
        assert all(_verifies(d) for d in step_dirs(folder)), trial
        model, batches = worker.build()
        if step_dirs(folder):  # other weights: everything must come from the checkpoint (else: a fresh start)
            torch.manual_seed(99)
            for p in model.parameters():
                p.data.normal_()
        with warnings.catch_warnings():
            warnings.simplefilter("error", CheckpointWarning)  # no fallback is needed: nothing visible is damaged
            resumed = train(model, batches, checkpoint_dir=folder, resume=True, **worker.OPTIONS)
        assert resumed.step == full.step, trial
        assert resumed.loss == full.loss and resumed.lr == full.lr, trial
        for (name, a), b in zip(full_model.state_dict().items(), model.state_dict().values()):
            assert torch.equal(a, b), (name, trial)
        assert all(_verifies(d) for d in step_dirs(folder)) and not any(folder.glob(".tmp-step-*"))
    # the injection really landed inside checkpoint writes, not only between them
    assert half_written >= EVENT_TRIALS // 4, half_written


def _verifies(folder: Path) -> bool:
    try:
        verify_checkpoint(folder)
        return True
    except Exception:  # noqa: BLE001
        return False
