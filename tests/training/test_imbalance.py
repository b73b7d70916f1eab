"""Class weights equal scikit-learn's "balanced" weights; WeightedCrossEntropy equals the weighted mean computed by
hand (and the model's own loss for equal weights); training with it moves predictions toward the minority class."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.errors import InvalidInputError
from labkit.models import Encoder, EncoderConfig
from labkit.training import WeightedCrossEntropy, class_weights, train

sk_utils = pytest.importorskip("sklearn.utils")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=200).filter(lambda y: set(y) == set(range(max(y) + 1))))
def test_class_weights_equal_sklearn_balanced(labels):
    import numpy as np

    ref = sk_utils.class_weight.compute_class_weight("balanced", classes=np.arange(max(labels) + 1), y=labels)
    torch.testing.assert_close(class_weights(labels), torch.tensor(ref, dtype=torch.float32))


def test_weighted_loss_is_the_weighted_mean_of_per_example_losses():
    torch.manual_seed(0)
    model = Encoder(EncoderConfig.preset("encoder-tiny", vocab_size=50, head="classification", num_labels=3)).eval()
    batch = {"input_ids": torch.randint(1, 50, (6, 7)), "labels": torch.tensor([0, 0, 0, 0, 1, 2])}
    weights = class_weights(batch["labels"])
    loss = WeightedCrossEntropy(weights)(model, batch)
    logits = model(batch["input_ids"]).logits
    per_example = -torch.log_softmax(logits, -1)[torch.arange(6), batch["labels"]]
    w = weights[batch["labels"]]
    torch.testing.assert_close(loss, (w * per_example).sum() / w.sum())
    plain = WeightedCrossEntropy(torch.ones(3))(model, batch)
    torch.testing.assert_close(plain, model(**batch).loss)  # equal weights: the model's own loss


def test_weighting_raises_minority_recall(one_torch_thread):
    """On a 9:1 task whose features carry little signal, the plain loss predicts the majority; weights shift it."""
    g = torch.Generator().manual_seed(0)
    n = 200
    labels = (torch.rand(n, generator=g) < 0.1).long()
    ids = torch.randint(1, 40, (n, 6), generator=g)
    ids[:, 1] = torch.where(labels.bool() & (torch.rand(n, generator=g) < 0.5), 41, ids[:, 1])  # a weak cue
    items = [{"input_ids": ids[i], "labels": labels[i]} for i in range(n)]

    def fit(loss_fn):
        torch.manual_seed(0)
        model = Encoder(EncoderConfig.preset("encoder-tiny", vocab_size=50, head="classification", dropout=0.0))
        batches = [{k: torch.stack([it[k] for it in items[s : s + 50]]) for k in items[0]} for s in range(0, n, 50)]
        train(model, batches, steps=40, lr=3e-3, seed=0, loss_fn=loss_fn, progress=False)
        with torch.no_grad():
            return model.eval()(ids).logits.argmax(-1)

    plain, weighted = fit(None), fit(WeightedCrossEntropy(class_weights(labels)))
    assert int((weighted == 1).sum()) > int((plain == 1).sum())


def test_bad_weights_and_labels():
    with pytest.raises(InvalidInputError, match="never occur"):
        class_weights([0, 2, 2])
    with pytest.raises(InvalidInputError, match="num_classes"):
        class_weights([0, 3], num_classes=2)
    with pytest.raises(InvalidInputError, match="one finite"):
        WeightedCrossEntropy([1.0, -1.0])
