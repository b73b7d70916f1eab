"""Fault injection for checkpoint writes: forked training runs killed with SIGKILL at chosen points.

Run by path: `python fault_worker.py PLAN.json RESULTS.json`. The plan lists trials; each one trains the
same tiny run (`build()`, `OPTIONS`) in a forked child that checkpoints after every step. An "event" trial
counts the file-system operations of the checkpoint writes (each durable file write, folder fsync, rename
and folder removal) and, at the chosen one, writes a random prefix of that file's bytes (for a write) or
nothing (for the others) and sends itself SIGKILL. A "timer" trial is killed from this process after a
random delay, wherever it happens to be. The parent imports torch once and forks, so a trial costs no
interpreter start-up; it never runs a torch operation itself, so the children fork from a clean state.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time

import torch

torch.set_num_threads(1)
import torch._dynamo  # noqa: E402,F401  (the optimizer imports it on first use: once here, not in every child)

from labkit.models.gpt import GPT, GPTConfig  # noqa: E402
from labkit.training import checkpoint, manifest, train  # noqa: E402

STEPS = 6
OPTIONS = dict(
    steps=STEPS,
    lr=3e-3,
    warmup=1,
    schedule="cosine",
    log_every=2,
    progress=False,
    device="cpu",
    precision="fp32",
    seed=7,
)


def build() -> tuple[GPT, list[dict[str, torch.Tensor]]]:
    """The model (dropout on: the RNG state matters) and four batches; six steps cross an epoch boundary."""
    torch.manual_seed(0)
    model = GPT(GPTConfig.preset("gpt-nano", vocab_size=32, block_size=12, n_layer=2, dropout=0.1))
    gen = torch.Generator().manual_seed(3)
    batches = []
    for _ in range(4):
        x = torch.randint(0, 32, (2, 12), generator=gen)
        batches.append({"input_ids": x, "labels": x})
    return model, batches


def run(checkpoint_dir: str) -> None:
    """The run every trial makes: a checkpoint after each step, the two newest kept."""
    model, batches = build()
    train(model, batches, checkpoint_dir=checkpoint_dir, checkpoint_every=1, keep_last=2, **OPTIONS)


class Injector:
    """Counts checkpoint file-system operations in this (child) process and dies at number `target`."""

    def __init__(self, target: int | None, fraction: float, count_file: str | None = None) -> None:
        self.n, self.target, self.fraction, self.count_file = 0, target, fraction, count_file
        self.write_durable = manifest.write_durable
        self.fsync_dir = manifest.fsync_dir
        self.replace, self.rmtree = os.replace, shutil.rmtree

    def _event(self) -> bool:
        self.n += 1
        if self.count_file:
            with open(self.count_file, "w") as fh:
                fh.write(str(self.n))
        return self.n == self.target

    def _die(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)  # never reached

    def install(self) -> None:
        def write_durable(path, data):
            if self._event():  # a torn write: part of the bytes reach the file, then the process is gone
                with open(path, "wb") as fh:
                    fh.write(data[: int(len(data) * self.fraction)])
                self._die()
            self.write_durable(path, data)

        def fsync_dir(folder):
            if self._event():
                self._die()
            self.fsync_dir(folder)

        def replace(src, dst, *args, **kwargs):
            if self._event():
                self._die()
            self.replace(src, dst, *args, **kwargs)

        def rmtree(path, *args, **kwargs):
            if self._event():
                self._die()
            self.rmtree(path, *args, **kwargs)

        for module in (manifest, checkpoint):
            module.write_durable = write_durable
            module.fsync_dir = fsync_dir
        os.replace = replace
        shutil.rmtree = rmtree


def fork_trial(trial: dict) -> dict:
    """Run one trial in a forked child; return how it ended (killed by SIGKILL or exited, and how long it ran)."""
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: train, maybe die on the way
        code = 0
        try:
            if trial["kind"] in ("event", "count"):
                Injector(trial.get("target"), trial.get("fraction", 0.5), trial.get("count_file")).install()
            run(trial["dir"])
        except BaseException as exc:  # noqa: BLE001
            sys.stderr.write(f"trial {trial['dir']}: {type(exc).__name__}: {exc}\n")
            code = 3
        os._exit(code)
    if trial["kind"] == "timer":
        time.sleep(trial["delay"])
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return {
        **trial,
        "killed": killed,
        "exit": None if killed else os.WEXITSTATUS(status),
        "seconds": time.perf_counter() - started,
    }


def main(plan_path: str, results_path: str) -> None:
    """Plan {"root", "seed", "events", "timers"} in; first a counting run (how many operations, how long), then
    `events` trials at distinct random operations with random torn-write fractions and `timers` trials killed
    after a random delay; every trial's outcome written to `results_path` as JSON."""
    import random

    plan = json.loads(open(plan_path).read())
    root, rng = plan["root"], random.Random(plan["seed"])
    count_file = os.path.join(root, "count.txt")
    counted = fork_trial({"kind": "count", "dir": os.path.join(root, "count"), "count_file": count_file})
    total = int(open(count_file).read())
    trials = [
        {"kind": "event", "dir": os.path.join(root, f"event-{i:02d}"), "target": target, "fraction": rng.random()}
        for i, target in enumerate(sorted(rng.sample(range(1, total + 1), min(plan["events"], total))))
    ]
    trials += [
        {"kind": "timer", "dir": os.path.join(root, f"timer-{i:02d}"), "delay": rng.uniform(0, counted["seconds"])}
        for i in range(plan["timers"])
    ]
    results = [fork_trial(trial) for trial in trials]
    with open(results_path, "w") as fh:
        json.dump({"operations": total, "run_seconds": counted["seconds"], "count": counted, "trials": results}, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
