"""The interpret widgets answer the page in JupyterLab 4: a control changed in the browser reaches Python, which
recomputes with labkit.interpret and sends a new view back (the static report can only show the saved state)."""

from __future__ import annotations

import sys

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _rendered_view(lab_notebook, name):
    """The widget's view in its cell, once the row has rendered (the table is loaded by conftest.py)."""
    case = next(c for c in sys.modules["labkit_browser_cases"].CASES if c.name == name)
    lab_notebook.assert_renders(case)
    return lab_notebook.cell(case).locator(".labkit-look .labkit-look-view")


def test_neuron_widget_recomputes_when_the_page_picks_a_neuron(lab_notebook):
    from playwright.sync_api import expect

    view = _rendered_view(lab_notebook, "neuron_widget")
    expect(view.locator(".lk-lk-sub")).to_contain_text("neuron 0 of")
    number = view.locator("input[type=number]")
    number.fill("5")
    number.press("Enter")  # commits the value: the change event sets the `neuron` trait
    expect(view.locator(".lk-lk-sub")).to_contain_text("neuron 5 of", timeout=30_000)
    expect(view.locator(".lk-lk-ctx").first).to_be_visible()


def test_patching_widget_recomputes_when_the_page_picks_a_hook(lab_notebook):
    from playwright.sync_api import expect

    view = _rendered_view(lab_notebook, "patching_widget")
    expect(view.locator(".lk-lk-sub")).to_contain_text("head_out patched by layer \u00d7 head")
    view.locator("select[data-name=hook]").select_option("resid_pre")
    expect(view.locator(".lk-lk-sub")).to_contain_text("resid_pre patched by layer \u00d7 pos", timeout=30_000)
    assert view.locator("td.lk-lk-hcell").count() == 2 * 11  # 2 layers x 11 positions of "the cat sat"
