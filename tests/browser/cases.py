"""The browser tests' table: one notebook cell per widget or view, and the CSS selector that proves it drew.

Both browser tests (JupyterLab, and the static report from `labkit run`) run ONE notebook built from this
table and look for each row's selector inside that row's cell output. A row whose modules do not import
(a widget still being written) is left out of the notebook and its tests skip, naming the import error.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import nbformat

HOSTILE = "</script><img src=x onerror=alert(1)>"

# Runs first: a tiny random GPT and its attention cache (CPU, well under a second once torch is imported).
SETUP = f"""\
import torch
from labkit.models import GPT, GPTConfig
torch.manual_seed(0)
model = GPT(GPTConfig(vocab_size=50, block_size=32, n_layer=2, n_head=3, n_embd=24)).eval()
ids = torch.randint(0, 50, (1, 6))
_, cache = model.run_with_cache(ids, names=lambda n: n.endswith(("hook_pattern", "hook_q", "hook_k")))
toks = ["The", {HOSTILE!r}, " cat", " sat", " on", "."]"""


@dataclass(frozen=True)
class Case:
    """One row: a notebook cell that displays something, and how to tell that it rendered."""

    name: str  # test id and screenshot name
    code: str  # the cell (3-8 lines, CPU-fast, offline, its own imports); may use SETUP's model, cache and toks
    selector: str  # CSS selector, looked up inside this cell's output area (or inside `frame`)
    needs: tuple[str, ...] = ()  # "module" or "module:name" that must import, else the row is skipped
    shows_tokens: bool = False  # the view shows `toks` in full (so the hostile token must appear as text)
    frame: str = ""  # CSS selector of an iframe in the output whose document holds `selector` (bertviz)


CASES: list[Case] = [
    Case(
        "intslider",
        "import ipywidgets as W\nW.IntSlider(value=7, description='slide')",
        ".widget-slider",
        ("ipywidgets",),
    ),
    # labkit.widgets.attention / labkit.viz.attention
    Case(
        "attention_widget",
        "from labkit.widgets.attention import AttentionWidget\n"
        "AttentionWidget.from_cache(cache, toks, view='head', layer=1)",
        ".labkit-attn-view .lk-chip",
        ("labkit.widgets.attention:AttentionWidget",),
        shows_tokens=True,
    ),
    Case(
        "attention_widget_model",
        "from labkit.widgets.attention import AttentionWidget\nAttentionWidget.from_cache(cache, toks, view='model')",
        ".labkit-attn-view .lk-grid canvas",
        ("labkit.widgets.attention:AttentionWidget",),
    ),
    Case(
        "head_view",
        "from labkit.viz import attention as A\nA.head_view(cache, toks)",
        ".labkit-attn-live .labkit-attn-view .lk-lane canvas",
        ("labkit.viz.attention:head_view",),
        shows_tokens=True,
    ),
    Case(
        "model_view",
        "from labkit.viz import attention as A\nA.model_view(cache, toks)",
        ".labkit-attn-live .lk-grid canvas",
        ("labkit.viz.attention:model_view",),
    ),
    Case(
        "qk_view",
        "from labkit.viz import attention as A\nA.qk_view(cache, toks, layer=1, head=2)",
        ".labkit-attn-live table.lk-qk td.lk-tok",
        ("labkit.viz.attention:qk_view",),
        shows_tokens=True,
    ),
    Case(
        "heatmap",
        "from labkit.viz import attention as A\nA.attention_heatmap(cache, toks, layer=1, head=1)",
        ".labkit-attn-live .lk-heat canvas",
        ("labkit.viz.attention:attention_heatmap",),
    ),
    # labkit.widgets.tokens / labkit.viz.tokens
    Case(
        "tokenizer_explorer",
        "from labkit.data import train_tokenizer\n"
        "from labkit.widgets.tokens import TokenizerExplorer\n"
        "text = 'the cat sat on the mat. the dog sat on the log. ' * 10\n"
        "char, bpe = train_tokenizer([text], kind='char'), train_tokenizer([text], kind='bpe', vocab_size=300)\n"
        "TokenizerExplorer({'char': char, 'bpe': bpe}, text='the cat sat ' + toks[1])",
        ".labkit-tok .labkit-tok-view .lk-tk-t",
        ("labkit.widgets.tokens:TokenizerExplorer", "labkit.data:train_tokenizer"),
    ),
    Case(
        "token_view",
        "from labkit.data import train_tokenizer\n"
        "from labkit.viz.tokens import token_view\n"
        "text = 'the cat sat on the mat. the dog sat on the log. ' * 10\n"
        "bpe, char = train_tokenizer([text], kind='bpe', vocab_size=300), train_tokenizer([text], kind='char')\n"
        "token_view(bpe, 'the cat sat on the log', compare=char)",
        ".labkit-tok-view .lk-tk-t",
        ("labkit.viz.tokens:token_view", "labkit.data:train_tokenizer"),
    ),
    # labkit.widgets.attention_math / labkit.viz.attention_math
    Case(
        "attention_math_widget",
        "from labkit.widgets.attention_math import AttentionMathWidget\n"
        "AttentionMathWidget(model, ids, tokens=toks, layer=1, head=0, step=2)",
        ".lk-am-live .lk-am-step:visible .lk-am-table",
        ("labkit.widgets.attention_math:AttentionMathWidget",),
    ),
    Case(
        "attention_walkthrough",
        "from labkit.viz.attention_math import attention_walkthrough\n"
        "attention_walkthrough(model, ids, layer=1, head=0, tokens=toks, step=2)",
        ".labkit-am .lk-am-step:visible .lk-am-table",
        ("labkit.viz.attention_math:attention_walkthrough",),
    ),
    Case(
        "attention_by_hand_widget",
        "from labkit.widgets.attention_math import AttentionMathWidget\n"
        "AttentionMathWidget.from_matrices('1 0 1 0; 0 2 0 1; 1 1 0 1', '1 0 1; 0 1 0; 1 0 0; 0 1 1',\n"
        "    '0 1 1; 1 0 0; 0 1 0; 1 0 1', '1 0 2; 0 1 0; 2 1 0; 0 0 1', causal=True, step=7)",
        ".lk-am-edit textarea",
        ("labkit.viz:attention_by_hand",),
    ),
    # labkit.viz.cleaning
    Case(
        "cleaning_view",
        "from labkit.data import Cleaner\n"
        "from labkit.viz import cleaning_view\n"
        "cleaning_view(Cleaner(), ['Ｔｈｅ ﬁrst Day, of the Rest!', 'It is a river.'])",
        ".labkit-clean td del",
        ("labkit.viz:cleaning_view",),
    ),
    # labkit.widgets.lora
    Case(
        "lora_explorer",
        "from labkit.widgets.lora import LoraExplorer\nLoraExplorer(model, targets='attn', rank=4)",
        ".labkit-lora .lk-lo-count",
        ("labkit.widgets.lora:LoraExplorer",),
    ),
    # labkit.widgets.dashboard (after a real 4-step run)
    Case(
        "training_dashboard",
        "from labkit.training import train\n"
        "from labkit.widgets.dashboard import TrainingDashboard\n"
        "dash, x = TrainingDashboard(min_interval_s=0), torch.randint(0, 50, (2, 8))\n"
        "small = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=16))\n"
        "train(small, [{'input_ids': x, 'labels': x}] * 4, steps=4, callbacks=[dash.callback], log_every=1, progress=False)\n"
        "dash",
        ".labkit-dash svg.lk-chart",
        ("labkit.widgets.dashboard:TrainingDashboard", "labkit.training:train"),
    ),
    # labkit.widgets.playground (after one generation)
    Case(
        "generation_playground",
        "from labkit.data import train_tokenizer\n"
        "from labkit.widgets.playground import GenerationPlayground\n"
        "tok = train_tokenizer(['the cat sat on the mat. ' * 20], kind='char')\n"
        "lm = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16)).eval()\n"
        "pg = GenerationPlayground(lm, tok, prompt='the ', max_new_tokens=5, seed=0)\n"
        "pg.generate()\npg",
        ".labkit-play .lk-gen-tok",
        ("labkit.widgets.playground:GenerationPlayground", "labkit.data:train_tokenizer"),
    ),
    # labkit.widgets.projector / labkit.viz.projector (plotly)
    Case(
        "projector_widget",
        "from labkit.widgets.projector import ProjectorWidget\n"
        "emb = torch.randn(40, 8, generator=torch.Generator().manual_seed(0))\n"
        "ProjectorWidget(emb, [f'tok{i}' for i in range(39)] + [toks[1]], query='tok3')",
        ".labkit-proj canvas.lk-canvas",
        ("labkit.widgets.projector:ProjectorWidget",),
    ),
    Case(
        "projector_figure",
        "from labkit.viz.projector import projector_figure\n"
        "emb = torch.randn(40, 8, generator=torch.Generator().manual_seed(0))\n"
        "projector_figure(emb, [f'tok{i}' for i in range(40)])",
        ".js-plotly-plot .main-svg",
        ("labkit.viz.projector:projector_figure", "plotly"),
    ),
    # labkit.viz lens / attribution / neurons / patching and labkit.widgets.interpret (records from labkit.interpret)
    Case(
        "logit_lens_view",
        "from labkit.interpret import logit_lens\nfrom labkit.viz import logit_lens_view\n"
        "lens = logit_lens(model, ids, target='next')\nlens.tokens = toks\nlogit_lens_view(lens)",
        ".labkit-look-live table.lk-lk-grid td.lk-lk-cell",
        ("labkit.viz.lens:logit_lens_view",),
        shows_tokens=True,
    ),
    Case(
        "attribution_view",
        "from labkit.interpret import attention_rollout, attribute\nfrom labkit.viz import attribution_view\n"
        "rows = [attribute(model, ids, steps=8), attention_rollout(model, ids)]\n"
        "for r in rows: r.tokens = toks\nattribution_view(rows)",
        ".labkit-look-live .lk-lk-arow .lk-lk-atok",
        ("labkit.viz.attribution:attribution_view", "captum"),
        shows_tokens=True,
    ),
    Case(
        "neuron_view",
        "from labkit.interpret import neuron_activations, neuron_logit_effect\nfrom labkit.viz import neuron_view\n"
        "acts = neuron_activations(model, [ids[0]], layer=1)\nacts.tokens = [toks]\n"
        "neuron_view(acts, 0, effect=neuron_logit_effect(model, 1, 0))",
        ".labkit-look-live .lk-lk-ctx .lk-lk-atok",
        ("labkit.viz.neurons:neuron_view",),
        shows_tokens=True,
    ),
    Case(
        "patching_view",
        "from labkit.interpret import activation_patching\nfrom labkit.viz import patching_view\n"
        "other = ids.clone(); other[0, 2] = (ids[0, 2] + 1) % 50\n"
        "result = activation_patching(model, ids, other, hook='head_out', by='head_pos', answer=1, wrong=2)\n"
        "result.tokens = toks\npatching_view(result)",
        ".labkit-look-live table.lk-lk-heat td.lk-lk-hcell",
        ("labkit.viz.patching:patching_view",),
        shows_tokens=True,
    ),
    Case(
        "logit_lens_widget",
        "from labkit.data import train_tokenizer\nfrom labkit.widgets.interpret import LogitLensWidget\n"
        "char = train_tokenizer(['the cat sat on the mat. ' * 20], kind='char')\n"
        "LogitLensWidget(model, char, 'the cat sat', target='next')",
        ".labkit-look .labkit-look-view td.lk-lk-cell",
        ("labkit.widgets.interpret:LogitLensWidget", "labkit.data:train_tokenizer"),
    ),
    Case(
        "attribution_widget",
        "from labkit.data import train_tokenizer\nfrom labkit.widgets.interpret import AttributionWidget\n"
        "char = train_tokenizer(['the cat sat on the mat. ' * 20], kind='char')\n"
        "AttributionWidget(model, char, 'the cat sat', steps=8)",
        ".labkit-look .labkit-look-view .lk-lk-atok",
        ("labkit.widgets.interpret:AttributionWidget", "labkit.data:train_tokenizer", "captum"),
    ),
    Case(
        "neuron_widget",
        "from labkit.data import train_tokenizer\nfrom labkit.interpret import neuron_activations\n"
        "from labkit.widgets.interpret import NeuronWidget\n"
        "char = train_tokenizer(['the cat sat on the mat. ' * 20], kind='char')\n"
        "acts = neuron_activations(model, ['the cat sat on the mat.'], layer=1, tokenizer=char)\n"
        "NeuronWidget(acts, model=model, tokenizer=char, neuron=0)",
        ".labkit-look .labkit-look-view .lk-lk-ctx",
        ("labkit.widgets.interpret:NeuronWidget", "labkit.data:train_tokenizer"),
    ),
    Case(
        "patching_widget",
        "from labkit.data import train_tokenizer\nfrom labkit.widgets.interpret import PatchingWidget\n"
        "char = train_tokenizer(['the cat sat on the mat. ' * 20], kind='char')\n"
        "PatchingWidget(model, char.encode('the cat sat'), char.encode('the hat sat'), answer='a', wrong='o',\n"
        "               tokenizer=char, hook='head_out')",
        ".labkit-look .labkit-look-view td.lk-lk-hcell",
        ("labkit.widgets.interpret:PatchingWidget", "labkit.data:train_tokenizer"),
    ),
    # labkit.viz.bertviz: bertviz's own UI in an <iframe srcdoc>
    Case(
        "bertviz_head_view",
        "from labkit.viz.bertviz import bertviz_head_view\nbertviz_head_view(cache, toks)",
        "#vis svg text",
        ("labkit.viz.bertviz:bertviz_head_view", "bertviz"),
        frame="iframe",
        shows_tokens=True,
    ),
    Case(
        "bertviz_model_view",
        "from labkit.viz.bertviz import bertviz_model_view\nbertviz_model_view(cache, toks)",
        "#vis svg [id^='attn_background_']",
        ("labkit.viz.bertviz:bertviz_model_view", "bertviz"),
        frame="iframe",
    ),
    Case(
        "bertviz_neuron_view",
        "from labkit.viz.bertviz_neuron import bertviz_neuron_view\nbertviz_neuron_view(cache, toks, layer=1, head=2)",
        "#vis #collapsed #rightText text",
        ("labkit.viz.bertviz_neuron:bertviz_neuron_view", "bertviz"),
        frame="iframe",
        shows_tokens=True,
    ),
]


def unavailable(case: Case) -> str | None:
    """Return why a row cannot run here (an import that fails), or None when it can."""
    for need in case.needs:
        module, _, name = need.partition(":")
        try:
            found = importlib.import_module(module)
            if name:
                getattr(found, name)
        except Exception as exc:  # an unfinished module may fail in any way; the row skips with the reason
            return f"{need} does not import ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    return None


def build_notebook(path, cases: list[Case]) -> dict[str, int]:
    """Write the notebook (parameters cell, SETUP, one cell per case); return case name -> code-cell index.

    Every case cell is tagged `raises-exception`, so one broken widget does not stop Run All (JupyterLab)
    or the papermill run (`labkit run`); its own test then fails and shows the error.
    """
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell("seed: int = 0  # unused; `labkit run` needs a parameters cell")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        # a formula beside the widgets: KaTeX must typeset on a page that also carries require.js
        nbformat.v4.new_markdown_cell(
            "# labkit widgets in a real browser\n\n$$\\mathrm{softmax}(QK^\\top/\\sqrt{d_k})\\,V$$"
        ),
        params,
        nbformat.v4.new_code_cell(SETUP),
    ]
    index = {}
    for case in cases:
        cell = nbformat.v4.new_code_cell(case.code)
        cell.metadata["tags"] = ["raises-exception"]
        index[case.name] = sum(c.cell_type == "code" for c in nb.cells)
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return index
