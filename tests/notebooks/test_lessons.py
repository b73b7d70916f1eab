"""Every lesson in notebooks/: committed clean with a typed signature; run at its defaults and at its smallest
parameters; displays the labkit views its entry in LESSONS lists; typesets its formulas in the report.

Each lesson runs twice a session, and every check shares those two runs:
- at its defaults, once, by the session fixture `lesson_gallery` (tests/conftest.py and tests/lesson_jobs.py:
  `build_gallery` through the runner, lessons in parallel, in a child process from the session's first test). That run is what nbval checks on a lesson committed without outputs
  (every cell runs, none raises; `pytest --nbval-lax notebooks/` still runs nbval itself), and its executed
  notebook, report and gallery page are what the view, formula and browser checks read;
- at its SMALLEST parameters, once, through `run_notebook` (`labkit run`'s parameter path: typed values,
  papermill's injected cell), by the session fixture `smallest_runs` (the same child process, after the gallery).

Lesson developers: keep your lesson's SMALLEST entry current, fill in its LESSONS entry, tag the cell that
shows the lesson's main view `main-view` (the gallery's thumbnail), and delete the entry's `pending=` line
when the lesson is rewritten: from then on its views and formulas are checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

from labkit.frontend import MATH_CLASS, find_formulas
from labkit.notebooks import read_parameters
from labkit.notebooks.gallery import PAGE_LIMIT_BYTES, describe, lesson_paths

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
LESSONS_FOUND = lesson_paths(NOTEBOOKS)
REMOTE = re.compile(r"""<(script|link)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", re.I)
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PLOTLY = "application/vnd.plotly.v1+json"


# ---------------------------------------------------------------- what each lesson must show


@dataclass(frozen=True)
class View:
    """How a displayed labkit view shows in an executed notebook."""

    widget: str = ""  # anywidget class: its saved model is reachable from a displayed widget output
    html: str = ""  # regex that a displayed text/html output matches (static views)
    plotly: bool = False  # a function that returns a plotly figure: some output is a plotly figure


VIEWS: dict[str, View] = {
    **{
        name: View(widget=name)
        for name in (
            "TokenizerExplorer",
            "AttentionMathWidget",
            "AttentionWidget",
            "TrainingDashboard",
            "ProjectorWidget",
            "GenerationPlayground",
            "LoraExplorer",
            "LogitLensWidget",
            "AttributionWidget",
            "NeuronWidget",
            "PatchingWidget",
        )
    },
    **{f"{kind}_view": View(html=rf'class="labkit-attn-data">\{{"view":"{kind}"') for kind in ("head", "model", "qk")},
    "cross_attention_view": View(html=r'class="labkit-attn-data">\{"view":"cross"'),
    "attention_heatmap": View(html=r'class="labkit-attn-data">\{"view":"heatmap"'),
    "bertviz_head_view": View(html=r'class="labkit-bertviz labkit-bertviz-head"'),
    "bertviz_model_view": View(html=r'class="labkit-bertviz labkit-bertviz-model"'),
    "bertviz_neuron_view": View(html=r'class="labkit-bertviz labkit-bertviz-neuron"'),
    "token_view": View(html=r'class="labkit-tok"'),
    "attention_walkthrough": View(html=r'class="labkit-am"'),
    "attention_by_hand": View(html=r'class="labkit-am"'),
    "cleaning_view": View(html=r'class="labkit-clean"'),
    "summary_view": View(html=r'class="labkit-summ"'),
    "confusion_view": View(html=r'class="labkit-confusion"'),
    **{
        name: View(html=rf'class="labkit-look-data">\{{"kind":"{kind}"')
        for name, kind in (
            ("logit_lens_view", "lens"),
            ("attribution_view", "attr"),
            ("neuron_view", "neuron"),
            ("patching_view", "patch"),
        )
    },
    "lora_parameter_table": View(html=r'class="labkit-lora"'),
    "moment_view": View(html=r'class="labkit-mom"'),
    "build_page": View(html=r'class="labkit-page-frame"'),
    "training_curves": View(plotly=True),
    "optimizer_curves": View(plotly=True),
    "seed_spread_figure": View(plotly=True),
    "projector_figure": View(plotly=True),
    "lora_parameter_figure": View(plotly=True),
    "lora_singular_value_figure": View(plotly=True),
}

NOT_REWRITTEN = "lesson not yet rewritten (issue 13): delete this pending= line when it is"
NOT_WRITTEN = "lesson not yet written: check its views here (and how they show, in VIEWS), then delete this line"


@dataclass(frozen=True)
class Lesson:
    """A lesson's required labkit views ("a|b": either will do) and primitives its code must call."""

    views: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    pending: str = ""  # set: views and formulas are not checked yet, and the test says why


# The lesson number -> what issue 13 (and issues 17, 18 for lessons 11, 12) asks it to show.
LESSONS: dict[str, Lesson] = {
    "01": Lesson(
        views=("TokenizerExplorer",),
    ),
    "02": Lesson(
        views=("AttentionMathWidget",),  # on the learner's own small matrices (AttentionMathWidget.from_matrices)
    ),
    "03": Lesson(
        views=(
            "TrainingDashboard",
            "head_view|AttentionWidget",
            "model_view|AttentionWidget",
            "ProjectorWidget",
            "optimizer_curves",  # issue 15: SGD, SGD + momentum, Adam, AdamW on the same model and data
            "moment_view",  # issue 15: the optimizer state of a small layer
        ),
        uses=("compare_optimizers", "MomentRecorder", "hand_adam_step"),
    ),
    "04": Lesson(
        views=("GenerationPlayground",),
        uses=("SamplingOptions", "stream", "num_beams", "use_cache"),
    ),
    "05": Lesson(
        views=("head_view|AttentionWidget", "model_view|AttentionWidget", "confusion_view"),
        uses=(
            "next_sentence_pairs",
            "imbalanced_split",
            "WeightedCrossEntropy",
            "resample",
        ),  # issue 15: NSP, imbalance
    ),
    "06": Lesson(
        views=("LoraExplorer",),
        uses=("merge_and_unload", "lora_singular_values"),
    ),
    "07": Lesson(
        views=("cross_attention_view", "summary_view"),
        uses=("bleu", "chrf", "rouge", "summary_pairs", "extract"),  # issue 15 item 6: summarisation, ROUGE
    ),
    "08": Lesson(
        views=("ProjectorWidget",),
    ),
    "09": Lesson(
        views=(
            "bertviz_head_view",
            "bertviz_model_view",
            "bertviz_neuron_view",
            "head_view|AttentionWidget",
            "model_view|AttentionWidget",
            "qk_view",
            "GenerationPlayground",
        ),
    ),
    "10": Lesson(
        views=("TrainingDashboard", "seed_spread_figure"),
        uses=("collect", "compare_augmentations", "record"),
    ),
    "11": Lesson(
        views=(
            "logit_lens_view|LogitLensWidget",
            "attribution_view|AttributionWidget",
            "neuron_view|NeuronWidget",
            "patching_view|PatchingWidget",
        ),
        uses=("logit_lens", "attribute", "attention_rollout", "neuron_activations", "activation_patching"),
    ),
    "12": Lesson(
        views=("build_page", "model_view|head_view"),
        uses=("to_onnx", "quantize_onnx", "check_quantization", "to_hf", "serve"),
    ),
}

# The smallest parameters of each lesson: every code path runs, in seconds.
SMALLEST: dict[str, dict[str, Any]] = {
    "01_tokenization": {
        "max_chars": 50_000,
        "vocab_size": 300,
        "korean_verses": 200,
        "sweep_sizes": "270,400",
        "compare_pretrained": False,
    },
    "02_attention_from_scratch": {"text": "a b a", "n_positions": 8, "causal": True, "layer": 5, "head": 11},
    "03_train_gpt_shakespeare": {
        "preset": "gpt-nano",
        "steps": 20,
        "eval_every": 10,
        "sample_chars": 20,
        "block_size": 32,
        "checkpoint_every": 10,
        "compare_steps": 4,
    },
    "04_generation_and_sampling": {"max_new_tokens": 4, "num_beams": 2, "kv_tokens": 4},
    "05_bert_mlm_and_sentiment": {
        "preset": "encoder-tiny",
        "vocab_size": 500,
        "nsp_pairs": 200,
        "pretrain_steps": 5,
        "finetune_steps": 5,
        "max_length": 16,
        "imbalance_ratio": 0.5,
    },
    "06_lora_fine_tuning": {"pretrain_steps": 5, "finetune_steps": 5, "ranks": "[1, 2]"},
    "07_translation": {
        "steps": 5,
        "n_test": 3,
        "num_beams": 2,
        "max_chars": 40,
        "vocab_size": 300,
        "summary_steps": 5,
        "n_articles": 3,
        "article_tokens": 16,
    },
    "08_embeddings": {"n_texts": 20, "max_chars": 80, "n_tokens": 50, "use_umap": True},
    "09_inside_a_pretrained_model": {"load_smollm2": False},
    "10_lstm_vs_transformer": {
        "steps": 5,
        "block_size": 32,
        "copy_steps": 5,
        "copy_length": 4,
        "train_sentences": 40,
        "copies": 1,
        "clf_steps": 4,
        "n_seeds": 2,
        "each_edit": True,
        "sweep_seeds": 1,
    },
    "11_looking_inside": {"steps": 5, "n_layer": 1, "n_sentences": 200, "pretrained": False},
    "12_deployment": {
        "steps": 5,
        "block_size": 32,
        "new_tokens": 4,
        "repeat": 1,
        "serve_tokens": 3,
        "page_quantize": True,
    },
}


def _number(lesson: Path | str) -> str:
    return Path(str(lesson)).stem.split("_")[0]


def _entry(lesson: Path) -> Lesson:
    entry = LESSONS[_number(lesson)]
    if entry.pending:
        pytest.skip(f"{lesson.stem}: {entry.pending}")
    return entry


# ---------------------------------------------------------------- reading an executed notebook


def _code(nb: Any) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


def _outputs(nb: Any) -> Iterable[Mapping[str, Any]]:
    return (o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def _displayed_widgets(nb: Any) -> dict[str, str]:
    """Model id -> anywidget class name of every model that a displayed widget output reaches in the saved state."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    todo = [o["data"][WIDGET_VIEW]["model_id"] for o in _outputs(nb) if WIDGET_VIEW in o.get("data", {})]
    seen: set[str] = set()
    while todo:  # containers (VBox, Tab, Output) refer to their children as "IPY_MODEL_<id>"
        model = todo.pop()
        if model in seen or model not in state:
            continue
        seen.add(model)
        todo += re.findall(r"IPY_MODEL_([0-9a-f]+)", repr(state[model].get("state", {})))
    return {
        m: str(state[m]["state"].get("_anywidget_id") or state[m].get("model_name", "")).rsplit(".", 1)[-1]
        for m in seen
    }


def _shows(view: View, nb: Any, widgets: Mapping[str, str]) -> bool:
    if view.widget:
        return view.widget in widgets.values()
    if view.html:
        pattern = re.compile(view.html)
        return any(pattern.search(_text(o.get("data", {}).get("text/html", ""))) for o in _outputs(nb))
    if view.plotly:
        return any(PLOTLY in o.get("data", {}) for o in _outputs(nb))
    return False


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _missing_views(entry: Lesson, nb: Any) -> list[str]:
    """The entry's views (and primitives) that the lesson's code does not call or its outputs do not show."""
    code, widgets = _code(nb), _displayed_widgets(nb)
    imports_labkit = re.search(r"^\s*(from labkit[\w.]* import|import labkit)", code, re.M)
    missing = []
    for need in entry.views:
        options = need.split("|")
        unknown = [o for o in options if o not in VIEWS]
        if unknown:
            missing.append(f"{need}: no way to recognise {unknown} yet; add it to VIEWS in this file")
        elif not any(re.search(rf"\b{re.escape(o)}\b", code) and _shows(VIEWS[o], nb, widgets) for o in options):
            missing.append(f"{need}: not called in the code, or not displayed in the executed notebook")
    missing += [f"{u}: not called in the code" for u in entry.uses if not re.search(rf"\b{re.escape(u)}\b", code)]
    if not imports_labkit:
        missing.append("the lesson never imports labkit")
    return missing


# ---------------------------------------------------------------- committed lessons (no run)


def test_every_lesson_has_an_entry_and_a_smallest_parameter_set():
    assert LESSONS_FOUND, "no lessons found"
    assert {_number(p) for p in LESSONS_FOUND} <= set(LESSONS), "add the new lesson to LESSONS"
    assert set(SMALLEST) == {p.stem for p in LESSONS_FOUND}, "keep SMALLEST in step with notebooks/"
    missing = [n for n, e in LESSONS.items() if not e.pending and n not in {_number(p) for p in LESSONS_FOUND}]
    assert not missing, f"lessons {missing} have a finished entry but no notebook"


@pytest.mark.parametrize("lesson", LESSONS_FOUND, ids=lambda p: p.stem)
def test_lesson_is_clean_documented_and_typed(lesson):
    nb = nbformat.read(lesson, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit lessons without outputs"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "a lesson opens with its title"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and code[0] is tagged[0], "exactly one parameters cell, the first code cell"
    params = read_parameters(lesson)
    assert params, "a lesson declares its parameters"
    for p in params:
        assert p.help, f"parameter {p.name!r} needs a help comment"
        assert re.fullmatch(r"[a-z][a-z0-9_]*", p.name)
    title, summary = describe(lesson)
    assert title and summary, "the gallery needs a title and a one-line summary"
    source = "\n".join(c.source for c in code)
    assert not re.search(r"https?://", source), "lessons work offline: no hub, no CDN"
    # the defaults run below stands for nbval: it is the same check only while no cell asks nbval for more
    assert not re.search(r"#\s*NBVAL_", source), "nbval markers would make nbval and the defaults run disagree"
    assert sum("main-view" in c.metadata.get("tags", []) for c in code) <= 1, "tag one main view at most"


# ---------------------------------------------------------------- the two runs


def _entry_of(gallery: Any, lesson: Path) -> Any:
    return next(e for e in gallery.entries if e.name == lesson.stem)


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS_FOUND, ids=lambda p: p.stem)
def test_lesson_runs_at_its_defaults_into_an_offline_page(lesson, lesson_gallery):
    entry = _entry_of(lesson_gallery, lesson)
    assert entry.ok, f"{lesson.stem} failed at its defaults: {entry.error}"
    page = entry.page.read_text(encoding="utf-8")
    assert not REMOTE.search(page), "the page loads something from the network"
    assert 0 < entry.page_bytes <= PAGE_LIMIT_BYTES, f"page is {entry.page_bytes / 1e6:.1f} MB (limit 10 MB)"


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS_FOUND, ids=lambda p: p.stem)
def test_lesson_runs_under_labkit_run_at_its_smallest_parameters(lesson, smallest_runs):
    result = smallest_runs[lesson.stem]
    assert result.ok, result.error
    executed = nbformat.read(result.notebook_path, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected, "papermill injected no parameters cell"
    for name in SMALLEST[lesson.stem]:
        assert re.search(rf"^{name} = ", injected[0].source, re.M), f"{name} did not reach the kernel"
    assert set(SMALLEST[lesson.stem]) <= set(executed.metadata["labkit"]["parameters"])
    assert not REMOTE.search(result.html_path.read_text(encoding="utf-8"))
    assert result.html_path.stat().st_size <= PAGE_LIMIT_BYTES


# ---------------------------------------------------------------- what the default run shows


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS_FOUND, ids=lambda p: p.stem)
def test_lesson_imports_and_displays_its_views(lesson, lesson_gallery):
    entry = _entry(lesson)
    gallery_entry = _entry_of(lesson_gallery, lesson)
    assert gallery_entry.page, f"{lesson.stem} wrote no page: {gallery_entry.error}"
    executed = nbformat.read(gallery_entry.page.with_suffix(".ipynb"), as_version=4)
    missing = _missing_views(entry, executed)
    assert not missing, f"{lesson.stem}: " + "; ".join(missing)
    widgets = _displayed_widgets(executed)
    assert any(_shows(view, executed, widgets) for view in VIEWS.values()), "show at least one labkit view or widget"
    page = gallery_entry.page.read_text(encoding="utf-8")
    for model, name in widgets.items():  # the static page carries each displayed widget's saved state
        assert name not in VIEWS or model in page, f"{name}'s saved state is not in the page"


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS_FOUND, ids=lambda p: p.stem)
def test_lesson_report_typesets_every_formula(lesson, lesson_gallery):
    gallery_entry = _entry_of(lesson_gallery, lesson)
    assert gallery_entry.page, f"{lesson.stem} wrote no page: {gallery_entry.error}"
    executed = nbformat.read(gallery_entry.page.with_suffix(".ipynb"), as_version=4)
    formulas = [f for c in executed.cells if c.cell_type == "markdown" for f in find_formulas(c.source)]
    page = gallery_entry.page.read_text(encoding="utf-8")
    elements = page.count(f'<span class="{MATH_CLASS}"')
    visible = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S | re.I))
    assert "$$" not in visible, "display maths left as $$ text"
    assert elements >= len(formulas), f"{len(formulas)} formulas in the markdown, {elements} typeset in the page"
    _entry(lesson)  # a finished lesson also has formulas
    assert formulas, "a lesson explains its ideas with formulas ($...$, $$...$$)"


def test_view_check_finds_shown_views_and_names_missing_ones():
    """The checker on a notebook built here: a static view's HTML and a widget inside a container count as shown;
    a view named in the code but never displayed, or displayed but never called, is reported."""
    import ipywidgets
    import torch

    from labkit.data import train_tokenizer
    from labkit.models import GPT, GPTConfig
    from labkit.viz import head_view
    from labkit.widgets import TokenizerExplorer

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8)).eval()
    _, cache = model.run_with_cache(torch.tensor([[1, 2, 3]]), names=lambda n: n.endswith("hook_pattern"))
    explorer = TokenizerExplorer({"char": train_tokenizer(["abc abd"], kind="char")}, text="ab")
    box = ipywidgets.VBox([explorer])
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("from labkit.viz import head_view\nhead_view(cache, toks)"),
        nbformat.v4.new_code_cell("from labkit.widgets import TokenizerExplorer\nVBox([TokenizerExplorer(toks)])"),
    ]
    nb.cells[0].outputs = [
        nbformat.v4.new_output("display_data", head_view(cache, ["a", "b", "c"])._repr_mimebundle_())
    ]
    view = {"model_id": box.model_id, "version_major": 2, "version_minor": 0}
    nb.cells[1].outputs = [nbformat.v4.new_output("display_data", {WIDGET_VIEW: view, "text/plain": "VBox"})]
    state = {w.model_id: {"model_name": w._model_name, "state": w.get_state()} for w in (box, explorer)}
    state[box.model_id]["state"]["children"] = [f"IPY_MODEL_{explorer.model_id}"]  # as the widget manager saves it
    nb.metadata["widgets"] = {WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}
    try:
        assert _displayed_widgets(nb) == {box.model_id: "VBoxModel", explorer.model_id: "TokenizerExplorer"}
        assert _missing_views(Lesson(views=("head_view", "TokenizerExplorer|ProjectorWidget")), nb) == []
        missing = _missing_views(Lesson(views=("model_view", "ProjectorWidget", "neuron lens"), uses=("collect",)), nb)
        assert [m.split(":")[0] for m in missing] == ["model_view", "ProjectorWidget", "neuron lens", "collect"]
        nb.cells[1].outputs = []  # the widget no longer displayed: its saved state alone does not count
        assert _missing_views(Lesson(views=("TokenizerExplorer",)), nb)[0].startswith("TokenizerExplorer")
    finally:
        box.close()
        explorer.close()
