"""Training: the supervised pipeline and meta-training."""

from metadl.training.meta import NonFiniteLossError, meta_step, meta_train
from metadl.training.supervised import (
    Classifier,
    SupervisedResult,
    evaluate_supervised,
    split_examples,
    train_supervised,
)

__all__ = [
    "Classifier",
    "NonFiniteLossError",
    "SupervisedResult",
    "evaluate_supervised",
    "meta_step",
    "meta_train",
    "split_examples",
    "train_supervised",
]
