"""LoraExplorer without a kernel: the rank slider's trait drives counts that equal the pure table (and PEFT)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

peft = pytest.importorskip("peft")

from labkit.errors import InvalidInputError  # noqa: E402
from labkit.models import GPT, GPTConfig  # noqa: E402
from labkit.training.lora import lora, trainable_parameters  # noqa: E402
from labkit.viz.lora import lora_parameter_table  # noqa: E402
from labkit.widgets.lora import LoraExplorer  # noqa: E402

NODE = shutil.which("node")
MODULE = Path(__file__).resolve().parents[2] / "widgets" / "lora.js"


def _gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=80, block_size=16, n_layer=2, n_head=4, n_kv_head=2, n_embd=24)).eval()


def test_rank_changes_update_the_counts():
    model = _gpt()
    w = LoraExplorer(model, targets="attn", rank=4)
    assert (w.trainable, w.total) == trainable_parameters(
        lora(copy.deepcopy(model), r=4, targets="attn", verbose=False)
    )
    w.rank = 12
    row = lora_parameter_table(model, ranks=(12,), targets="attn").rows[0]
    assert (w.trainable, w.total, w.share) == (row.trainable, row.total, pytest.approx(row.share))
    assert w.trainable == 12 * w.unit and w.total == w.base_parameters + w.trainable
    # q_proj is 24 -> 24, k/v_proj 24 -> 12 under GQA: the slider stops at the widest layer's min(in, out)
    assert w.max_rank == 24 and len(w.layers) == 6 and w.targets == "attn"
    assert sorted({(i, o) for _, i, o in w.layers}) == [(24, 12), (24, 24)]
    assert w.spectrum == {}


def test_rank_is_validated_and_trait_metadata():
    w = LoraExplorer(_gpt())
    with pytest.raises(
        InvalidInputError, match=r"^rank must be an integer in \[1, 24\], got 0; larger ranks add no directions"
    ):
        w.rank = 0
    with pytest.raises(InvalidInputError, match=r"^rank must be an integer in \[1, 24\], got 25"):
        w.rank = 25
    assert w.rank == 8
    with pytest.raises(InvalidInputError, match=r"^rank must be an integer in \[1, 24\], got 99"):
        LoraExplorer(_gpt(), rank=99)
    assert {"rank", "max_rank", "trainable", "total", "share", "unit", "spectrum"} <= set(w.traits(sync=True))
    data, _ = w._repr_mimebundle_()
    assert data["image/svg+xml"].startswith("<svg") and "rank" in data["text/plain"]


def test_adapter_model_fills_the_spectrum():
    wrapped = lora(_gpt(), r=2, targets="qv", verbose=False)
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.fill_(0.1)
    w = LoraExplorer(_gpt(), targets="qv", adapter_model=wrapped)
    assert sorted(w.spectrum) == [f"blocks.{i}.attn.{n}" for i in range(2) for n in ("q_proj", "v_proj")]
    assert all(len(v) == 2 and v[0] > 0 for v in w.spectrum.values())


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_page_count_formula_equals_python():
    w = LoraExplorer(_gpt(), rank=5)
    code = (
        f"import {{ loraCount }} from {json.dumps(MODULE.as_uri())};\n"
        f"console.log(JSON.stringify(loraCount(5, {w.unit}, {w.base_parameters})));"
    )
    done = subprocess.run([NODE, "--input-type=module", "-e", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert (got["trainable"], got["total"]) == (w.trainable, w.total) and got["share"] == pytest.approx(w.share)
