"""The plot of a study: best validation score so far against the study's wall-clock time."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from metadl.fileio import atomic_write_bytes


def best_so_far(points: Sequence[tuple[float, float]], *, maximize: bool) -> list[tuple[float, float]]:
    """``(time, best value up to that time)`` for ``(time, value)`` points, in time order.

    Example:
        >>> best_so_far([(2.0, 0.5), (1.0, 0.3), (3.0, 0.4)], maximize=True)
        [(1.0, 0.3), (2.0, 0.5), (3.0, 0.5)]
    """
    out: list[tuple[float, float]] = []
    for t, v in sorted(points):
        best = v if not out else (max if maximize else min)(out[-1][1], v)
        out.append((t, best))
    return out


def plot_best_vs_time(trials: Sequence[Any], path: Path, *, maximize: bool) -> Path | None:
    """Draw the best complete trial's value against seconds since the study's first trial started.

    ``trials`` are Optuna ``FrozenTrial`` objects; returns ``None`` (and draws nothing) without a complete one.
    """
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    points = [
        ((t.datetime_complete - min(starts)).total_seconds(), float(t.value))
        for t in trials
        if t.state.name == "COMPLETE" and t.value is not None and t.datetime_complete is not None
    ]
    if not points:
        return None
    curve = best_so_far(points, maximize=maximize)
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([t for t, _ in points], [v for _, v in points], "o", alpha=0.4, label="complete trials")
    ax.step([t for t, _ in curve], [v for _, v in curve], where="post", label="best so far")
    ax.set_xlabel("seconds since the study started")
    ax.set_ylabel("validation score")
    ax.legend()
    ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())
    return path
