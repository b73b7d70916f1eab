"""Every widget and view of the table renders in JupyterLab 4 after a real Run All, with the network blocked."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_renders_in_jupyterlab(case, lab_notebook):
    lab_notebook.assert_renders(case)


def test_hostile_token_shows_as_text_in_jupyterlab(lab_notebook, hostile_token):
    lab_notebook.assert_tokens_are_text(hostile_token)


def test_jupyterlab_needed_no_network_and_logged_no_errors(lab_notebook):
    # last in the file: by now every widget has rendered and been scrolled to
    lab_notebook.assert_clean()
