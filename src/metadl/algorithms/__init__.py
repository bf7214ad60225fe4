"""Few-shot learners behind one API: ``learner(batch) -> LearnerOutput``, ``learner.adapt(x, y).predict(x)``."""

from metadl.algorithms.base import (
    Capabilities,
    Learner,
    LearnerOutput,
    Predictor,
    gaussian_nll,
    query_loss,
)
from metadl.algorithms.inner_loop import convert_batch_norm
from metadl.algorithms.registry import LEARNERS, create_learner, list_learners

__all__ = [
    "LEARNERS",
    "Capabilities",
    "Learner",
    "LearnerOutput",
    "Predictor",
    "convert_batch_norm",
    "create_learner",
    "gaussian_nll",
    "list_learners",
    "query_loss",
]
