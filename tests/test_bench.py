"""labkit.bench and the benchmark scripts: the runs they compare do the same work, and their reports are complete.

Speed itself is never asserted here (machines are noisy; targets live in BENCHMARKS.md). What is tested is
what makes a ratio meaningful: identical weights and identical math on both sides.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from labkit import bench

pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parents[1]
TINY = bench.BenchConfig(n_layer=2, n_head=2, n_embd=32, vocab_size=128, block_size=64)


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the script loads
    spec.loader.exec_module(module)
    return module


def test_paired_models_are_identical():
    ours, theirs = bench._pair_models(TINY, "cpu")
    ids = torch.randint(0, TINY.vocab_size, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(ids).logits, theirs.eval()(ids).logits, atol=1e-5, rtol=1e-5)


def test_generate_benchmark_rows_are_consistent():
    rows = bench.bench_generate(TINY, batch=2, new_tokens=8, repeat=1, warmup=1, compare_no_cache=True)
    assert [r["peer_name"] for r in rows] == ["transformers generate", "labkit generate without KV cache"]
    for row in rows:
        assert row["labkit"] > 0 and row["peer"] > 0
        assert row["ratio"] == pytest.approx(row["labkit"] / row["peer"])
    text = bench.format_table({"machine": bench.machine_info(), "rows": rows})
    assert "KV cache vs none (B=2, 8 new tokens)" in text


def test_gpu_script_runs_identical_training_on_all_three_sides(tmp_path):
    """The CPU check of benchmarks/bench_gpu.py: train(), the hand loop and transformers give the same losses."""
    script = load_script("bench_gpu")
    report = script.main(
        [
            "--device",
            "cpu",
            "--tiny",
            "--steps",
            "5",
            "--warmup",
            "2",
            "--no-compile",
            "--no-generate",
            "--json",
            str(tmp_path / "gpu.json"),
        ]
    )
    names = [r["name"] for r in report["train"]]
    assert names == ["labkit train()", "hand-written loop", "transformers GPT2LMHeadModel"]
    losses = [torch.tensor(r["losses"]) for r in report["train"]]
    assert all(len(x) == 5 and bool(torch.isfinite(x).all()) for x in losses)
    torch.testing.assert_close(losses[1], losses[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(losses[2], losses[0], atol=1e-5, rtol=1e-5)
    assert all(r["mfu"] is None for r in report["train"])  # no peak FLOP/s is known for a CPU
    assert [r["peer_name"] for r in report["rows"]] == names[1:]
    assert json.loads((tmp_path / "gpu.json").read_text())["shape"]["n_layer"] == 2


def test_gpu_script_refuses_bad_arguments_in_one_line():
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_gpu.py"),
            "--device",
            "cpu",
            "--tiny",
            "--steps",
            "3",
            "--warmup",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "--warmup must be at least 1 and below --steps (3)" in run.stderr


def test_weight_layout_script_reports_both_layouts(monkeypatch):
    script = load_script("bench_weight_layout")
    monkeypatch.setattr(script, "CACHE_BYTES", 2**20)  # a small working set: this checks the script, not the speed
    row = script.time_linear(64, 32, repeat=2)
    assert row["row_major_us"] > 0 and row["column_major_us"] > 0
    assert row["ratio"] == pytest.approx(row["row_major_us"] / row["column_major_us"])


def test_machine_script_times_both_thread_counts_and_leaves_the_threads_alone(tmp_path, capsys):
    script = load_script("bench_machine")
    threads = torch.get_num_threads()
    assert script.main(["--steps", "2", "--json", str(tmp_path / "m.json")]) == 0
    assert torch.get_num_threads() == threads
    report = json.loads((tmp_path / "m.json").read_text())
    assert set(report["step_ms"]) == {"1", "2"} and all(ms > 0 for ms in report["step_ms"].values())
    assert report["machine"]["cpu_count"] and "1 thread:" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        script.main(["--steps", "0"])
    assert stop.value.code == 2 and "--steps must be at least 1" in capsys.readouterr().err


def test_lesson_script_names_an_unknown_lesson_before_running_any():
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_lessons.py"), "--only", "99_nothing"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "no lesson '99_nothing'" in run.stderr and "Traceback" not in run.stderr
