"""PNG learning curves of a run, drawn from its ``metrics.csv`` with matplotlib's Agg canvas.

No pyplot and no global backend switch: a :class:`~matplotlib.figure.Figure` is drawn on its own Agg
canvas, so plotting works headless and never touches the caller's matplotlib state. The file is
replaced atomically, so a run killed while plotting never leaves a broken image.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from metadl.fileio import atomic_write_bytes

PLOT_FILE = "learning_curves.png"


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` values (shorter at the start).

    Example:
        >>> moving_average([1.0, 3.0, 5.0, 7.0], 2).tolist()
        [1.0, 2.0, 4.0, 6.0]
    """
    x = np.asarray(values, dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(1, len(x) + 1)
    start = np.maximum(idx - window, 0)
    return (csum[idx] - csum[start]) / (idx - start)


def plot_learning_curves(
    rows: Sequence[dict[str, Any]], path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Draw training loss and metric (raw and smoothed) and the validation metric with its 95% CI.

    ``rows`` are :func:`~metadl.training.metrics.read_metrics` rows: ``iteration``, ``loss``,
    ``accuracy`` or ``mse``, and on validation iterations ``val_accuracy`` / ``val_mse`` with ``val_ci95``.
    """
    path = Path(path)
    metric = "accuracy" if any("accuracy" in r for r in rows) else "mse"
    it = np.array([r["iteration"] for r in rows])
    window = max(1, len(rows) // 50)
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_metric = fig.subplots(1, 2)
    for ax, key in ((ax_loss, "loss"), (ax_metric, metric)):
        values = [r.get(key, np.nan) for r in rows]
        if rows:
            ax.plot(it, values, color="tab:blue", alpha=0.25, linewidth=0.8)
            ax.plot(it, moving_average(values, window), color="tab:blue", label=f"train (mean of {window})")
        ax.set_xlabel("iteration")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    val = [r for r in rows if f"val_{metric}" in r]
    if val:
        ax_metric.errorbar(
            [r["iteration"] for r in val],
            [r[f"val_{metric}"] for r in val],
            yerr=[r.get("val_ci95", 0.0) for r in val],
            color="tab:orange",
            marker="o",
            capsize=3,
            label="validation (95% CI)",
        )
    if metric == "mse":
        for ax in (ax_loss, ax_metric):
            ax.set_yscale("log")
    ax_metric.legend(loc="best")
    if title:
        fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())
    return path
