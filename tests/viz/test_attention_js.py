"""The front end's pure decoders, run in node: Python encodes, JavaScript decodes, both agree bit for bit."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from labkit.frontend import classic_script, pack_arrays, to_base64, unpack_arrays

NODE = shutil.which("node")
MODULE = Path(__file__).resolve().parents[2] / "widgets" / "attention.js"
DOM = MODULE.parent / "dom.js"  # the helpers every widget module shares (float16, base64)
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def _node(code: str, stdin: str = "", module: bool = True) -> object:
    args = [NODE, "--input-type=module", "-e", code] if module else [NODE, "-e", code]
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _decode_in_node(header: dict, data: bytes) -> dict[str, dict]:
    # the payload goes through stdin, as base64 text, exactly as the static page carries it
    code = (
        f"import {{ decodePayload }} from {json.dumps(MODULE.as_uri())};\n"
        f"import {{ base64ToBytes }} from {json.dumps(DOM.as_uri())};\n"
        "let text = ''; for await (const chunk of process.stdin) text += chunk;\n"
        "const { header, b64 } = JSON.parse(text);\n"
        "const out = decodePayload(header, base64ToBytes(b64));\n"
        "console.log(JSON.stringify(Object.fromEntries(Object.entries(out).map(([k, v]) => [k, {shape: v.shape, data: Array.from(v.data)}]))));\n"
    )
    return _node(code, json.dumps({"header": header, "b64": to_base64(data)}))


@pytest.mark.parametrize("shape, k", [((2, 3, 5, 5), None), ((2, 3, 5, 7), 3), ((1, 1, 4, 300), 17), ((9,), None)])
def test_node_decodes_what_python_encodes(shape, k):
    g = torch.Generator().manual_seed(len(shape) * 7 + (k or 0))
    attn = torch.softmax(4 * torch.randn(*shape, generator=g), dim=-1)
    vectors = torch.randn(3, 8, generator=g) * 50  # signed, beyond [0, 1], some subnormal-free large values
    header, data = pack_arrays({"attn": attn, "v": vectors}, {"attn": k})
    expected = unpack_arrays(header, data)
    got = _decode_in_node(header, data)
    for name in ("attn", "v"):
        assert got[name]["shape"] == list(expected[name].shape)
        np.testing.assert_array_equal(np.array(got[name]["data"], np.float32), expected[name].flatten().numpy())
    if k is not None:  # pruning really happened and the dropped entries are zeros
        assert (np.array(got["attn"]["data"]).reshape(shape) != 0).sum(-1).max() <= k


def test_half_to_float_matches_numpy_for_every_bit_pattern():
    code = (
        f"import {{ halfToFloat }} from {json.dumps(DOM.as_uri())};\n"
        "const out = []; for (let h = 0; h < 65536; h++) { const v = halfToFloat(h); out.push(Number.isFinite(v) ? v : String(v)); }\n"
        "console.log(JSON.stringify(out));\n"
    )
    got = _node(code)
    ref = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float64)
    for h in range(65536):
        r, g = ref[h], got[h]
        if np.isnan(r):
            assert g == "NaN"
        elif np.isinf(r):
            assert g == ("Infinity" if r > 0 else "-Infinity")
        else:
            assert g == r, (h, g, r)


def test_head_matrix_slices_one_layer_and_head():
    t = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5) / 1000
    header, data = pack_arrays({"attn": t})
    code = (
        f"import {{ decodePayload, headMatrix }} from {json.dumps(MODULE.as_uri())};\n"
        f"import {{ base64ToBytes }} from {json.dumps(DOM.as_uri())};\n"
        f"const a = decodePayload({json.dumps(header)}, base64ToBytes({json.dumps(to_base64(data))})).attn;\n"
        "console.log(JSON.stringify(Array.from(headMatrix(a, 1, 2))));\n"
    )
    np.testing.assert_array_equal(np.array(_node(code), np.float32), t[1, 2].half().float().flatten().numpy())


def test_inlined_classic_script_runs_as_a_plain_script():
    # what static pages execute: the module with its exports turned into locals, inside a function
    header, data = pack_arrays({"attn": torch.tensor([[0.25, 0.75]])})
    code = (
        "(function(){\n" + classic_script("attention.js") + "\n"
        f"const out = decodePayload({json.dumps(header)}, base64ToBytes({json.dumps(to_base64(data))}));\n"
        "console.log(JSON.stringify({data: Array.from(out.attn.data), render: typeof __default.render, mount: typeof mount}));\n"
        "})();\n"
    )
    got = _node(code, module=False)
    assert got == {"data": [0.25, 0.75], "render": "function", "mount": "function"}
