"""Episodic evaluation with 95% confidence intervals."""

from metadl.evaluation.confidence import format_ci, mean_ci95
from metadl.evaluation.episodes import EvalResult, evaluate

__all__ = ["EvalResult", "evaluate", "format_ci", "mean_ci95"]
