"""Confusion-matrix view: its numbers equal scikit-learn's (matrix, per-class precision/recall/F1, macro-F1,
accuracy); the HTML is offline and escaped; the SVG fallback parses; the text fallback lists every class."""

from __future__ import annotations

import re
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.errors import InvalidInputError
from labkit.viz import ConfusionView, confusion_view

skm = pytest.importorskip("sklearn.metrics")
HOSTILE = "</style><script>alert(1)</script>"


@settings(max_examples=60, deadline=None)
@given(data=st.data(), k=st.integers(2, 5))
def test_numbers_equal_sklearn(data, k):
    n = data.draw(st.integers(1, 60))
    y_true = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    y_pred = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    view = confusion_view(y_true, y_pred)
    labels = np.unique(np.concatenate([y_true, y_pred]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
        macro = skm.f1_score(y_true, y_pred, average="macro", zero_division=0)
        counts = skm.confusion_matrix(y_true, y_pred, labels=labels)
    np.testing.assert_array_equal(view.counts, counts)
    np.testing.assert_allclose(view.precision, p)
    np.testing.assert_allclose(view.recall, r)
    np.testing.assert_allclose(view.f1, f)
    np.testing.assert_array_equal(view.support, s)
    assert view.macro_f1 == pytest.approx(macro)
    assert view.accuracy == pytest.approx(skm.accuracy_score(y_true, y_pred))
    np.testing.assert_allclose(view.shares().sum(1)[view.counts.sum(1) > 0], 1.0)


def test_html_is_static_escaped_and_shows_every_cell():
    y_true = torch.tensor([0, 0, 0, 1, 1, 2])
    logits = torch.eye(3)[torch.tensor([0, 0, 1, 1, 2, 2])]  # scores are argmax-ed
    view = confusion_view(y_true, logits, label_names=["neg", HOSTILE, "pos & more"], title="<b>t</b>")
    assert isinstance(view, ConfusionView)
    page = view.to_html()
    assert 'class="labkit-confusion"' in page
    assert "<script" not in page and HOSTILE not in page and "&lt;/style&gt;" in page
    assert "pos &amp; more" in page and "&lt;b&gt;t&lt;/b&gt;" in page
    assert not re.search(r"(src|href)\s*=", page)
    cells = re.findall(r'<div class="n">(\d+)</div>', page)
    assert [int(c) for c in cells] == view.counts.flatten().tolist() == [2, 1, 0, 0, 1, 1, 0, 0, 1]
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/html", "image/svg+xml", "text/plain"}
    ET.fromstring(bundle["image/svg+xml"])  # well-formed, hostile name included
    text = bundle["text/plain"]
    assert "accuracy 0.667" in text and "neg" in text and "<script" not in text


def test_labels_pick_and_order_the_classes(tmp_path):
    view = confusion_view([0, 1, 2, 2], [0, 2, 2, 1], labels=[2, 0], label_names=["two", "zero"])
    assert view.names == ["two", "zero"] and view.counts.tolist() == [[1, 0], [0, 1]]
    page = view.save_html(tmp_path / "cm.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "labkit-confusion" in page


def test_bad_input_fails_in_one_line():
    with pytest.raises(InvalidInputError, match="one name per class"):
        confusion_view([0, 1], [1, 0], label_names=["a"])
    with pytest.raises(InvalidInputError, match="samples"):
        confusion_view([0, 1, 1], [1, 0])
