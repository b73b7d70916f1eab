"""Class imbalance on the loss side: class weights and a class-weighted cross-entropy for `train(loss_fn=...)`.

With weights $w_c$, the loss of a batch is $\\sum_i w_{y_i} \\, \\ell_i / \\sum_i w_{y_i}$ where $\\ell_i$ is
example i's cross-entropy: PyTorch's `F.cross_entropy(..., weight=w)`. "balanced" weights,
$w_c = n / (k \\, n_c)$ ($n$ examples, $k$ classes, $n_c$ of class c), are scikit-learn's
`compute_class_weight("balanced")`: each class then carries the same total weight. The data-side treatment
(resampling) is `labkit.data.resample`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from labkit.checks import check_int
from labkit.errors import InvalidInputError

__all__ = ["class_weights", "WeightedCrossEntropy"]


def class_weights(labels: Any, num_classes: int | None = None) -> torch.Tensor:
    """Class ids in, "balanced" weights [num_classes] out: n / (num_classes * count of the class).

    labels: one class id per example (list, tensor, or a dataset with `.labels`).
    num_classes: classes in the model's output (default max label + 1); every one of them must occur.
    """
    labels = getattr(labels, "labels", labels)
    y = torch.as_tensor(labels)
    if y.dim() != 1 or y.numel() == 0 or y.is_floating_point() or y.dtype == torch.bool:
        raise InvalidInputError("labels must be a non-empty 1-D sequence of integer class ids")
    if int(y.min()) < 0:
        raise InvalidInputError(f"labels must be non-negative class ids, got {int(y.min())}")
    k = check_int("num_classes", int(y.max()) + 1 if num_classes is None else num_classes)
    if int(y.max()) >= k:
        raise InvalidInputError(f"label {int(y.max())} is outside [0, num_classes={k}); raise num_classes")
    counts = torch.bincount(y.long(), minlength=k)
    if (counts == 0).any():
        missing = (counts == 0).nonzero().flatten().tolist()
        raise InvalidInputError(
            f"classes {missing} never occur in the labels, so they have no weight; pass labels that contain every class"
        )
    return (y.numel() / (k * counts)).float()


class WeightedCrossEntropy:
    """Class weights in, a `loss_fn(model, batch)` for `train` out: the model's logits, cross-entropy weighted per class.

    weights: one weight per class (e.g. `class_weights(train_labels)`); a list or a tensor.
    label_key: the batch key holding the class ids ("labels"); the model is called without it.
    """

    def __init__(self, weights: Any, label_key: str = "labels") -> None:
        w = torch.as_tensor(weights, dtype=torch.float32)
        if w.dim() != 1 or w.numel() < 2 or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise InvalidInputError(
                f"weights must be one finite, non-negative weight per class (at least 2), got {w.tolist()}"
            )
        self.weights, self.label_key = w, label_key

    def __call__(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
        """Model and batch in, the weighted mean cross-entropy (a scalar tensor) out."""
        if self.label_key not in batch:
            raise InvalidInputError(f"the batch has no {self.label_key!r}; WeightedCrossEntropy needs class ids")
        inputs = {k: v for k, v in batch.items() if k != self.label_key}
        logits = model(**inputs).logits
        if logits.dim() != 2 or logits.size(-1) != self.weights.numel():
            raise InvalidInputError(
                f"logits of shape {tuple(logits.shape)} do not match {self.weights.numel()} class weights; "
                "give one weight per class of a classification head"
            )
        return F.cross_entropy(logits, batch[self.label_key], weight=self.weights.to(logits.device, logits.dtype))

    def __repr__(self) -> str:
        return f"WeightedCrossEntropy(weights={[round(x, 4) for x in self.weights.tolist()]})"
