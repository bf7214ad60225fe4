"""The bench's outputs: the Markdown table of ``results.json`` and the scores plotted against training time."""

from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from metadl.bench.results import RowResult, Score, Training
from metadl.bench.table import QUICK_EPISODES, QUICK_ITERATIONS, ROWS
from metadl.training.metrics import read_metrics


def _duration(seconds: float | None) -> str:
    """``"1 h 05 min"``, ``"12 min"``, ``"40 s"``.

    Example:
        >>> _duration(3900), _duration(720), _duration(40), _duration(None)
        ('1 h 05 min', '12 min', '40 s', '?')
    """
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _score(score: Score) -> str:
    if score.metric == "mse":
        return f"{score.mean:.3f} ± {score.ci95:.3f}"
    return f"{100 * score.mean:.2f} ± {100 * score.ci95:.2f}"


def _training(training: Training) -> str:
    done, planned = training.iterations, training.planned
    its = f"{done:,}" if training.complete else f"**{done:,} of {planned:,}** (stopped early)"
    return f"{its}, {_duration(training.seconds)}"


def _memory(training: Training | None) -> str:
    if training is None:
        return "-"
    return "?" if training.peak_rss_mib is None else f"{training.peak_rss_mib / 1024:.2f} GiB"


def render_table(results: dict[str, RowResult], *, quick: bool = False) -> str:
    """Markdown: one line per row of ``results``, cells separated by " / ", in the order of :data:`ROWS`."""
    lines = []
    if quick:
        lines.append(
            f"**Quick mode: {QUICK_ITERATIONS} training iterations and {QUICK_EPISODES} test episodes per cell; these figures mean nothing.**\n"
        )
    lines += [
        "| setting | published | metadl (mean ± 95% CI) | test episodes | training iterations, time | peak memory | source | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = [row.name for row in ROWS if row.name in results] + sorted(
        set(results) - {row.name for row in ROWS}
    )
    for name in order:
        row = results[name]
        cells = row.cells
        published = " / ".join("report" if c.published is None else f"{c.published:g}" for c in cells)
        scores = " / ".join(f"{c.label}: {_score(c.score) if c.score else 'not run'}" for c in cells)
        episodes = " / ".join(str(c.score.episodes) if c.score else "-" for c in cells)
        training = " / ".join(_training(c.training) if c.training else "-" for c in cells)
        memory = " / ".join(_memory(c.training) for c in cells)
        command = f"`metadl bench --rows {name}{' --quick' if quick else ''}`"
        lines.append(
            f"| {row.setting} | {published} | {scores} | {episodes} | {training} | {memory} | {row.source} | {command} |"
        )
    return "\n".join(lines) + "\n"


def validation_curves(results: dict[str, RowResult]) -> dict[str, tuple[str, list[float], list[float]]]:
    """``{run: (metric, hours, values)}`` for every run whose ``metrics.csv`` has validated rows."""
    curves = {}
    for row in results.values():
        for cell in row.cells:
            if cell.training is None:
                continue
            run_dir = Path(cell.training.run_dir)
            metrics = run_dir / "metrics.csv"
            if run_dir.name in curves or not metrics.is_file():
                continue
            rows = [
                r for r in read_metrics(metrics) if "time_s" in r and any(k.startswith("val_") for k in r)
            ]
            metric = (
                next((k for k in rows[0] if k.startswith("val_") and k != "val_ci95"), None) if rows else None
            )
            if metric is not None:
                curves[run_dir.name] = (metric, [r["time_s"] / 3600 for r in rows], [r[metric] for r in rows])
    return curves


def scored_points(results: dict[str, RowResult]) -> list[tuple[str, str, str, float, float, float]]:
    """``(run, label, metric, hours, mean, ci95)`` per tested cell whose training time is known.

    Runs too slow to reach their first validation still get a point: their test score at the time
    they stopped (the weights tested are the best validated ones, or the last where none was).
    """
    points = []
    for row in results.values():
        for cell in row.cells:
            training, score = cell.training, cell.score
            if training is None or score is None or training.seconds is None:
                continue
            key = score.key
            shape = f"{key.ways}-way {key.shots}-shot" if key.ways else f"{key.shots}-shot"
            hours = training.seconds / 3600
            points.append(
                (training.run, f"test, {shape}", f"val_{score.metric}", hours, score.mean, score.ci95)
            )
    return points


def plot_curves(results: dict[str, RowResult], path: str | Path) -> bool:
    """Validation score (lines) and test score (crosses, with 95% CI) against training hours.

    ``False`` when no run validated and none was tested.
    """
    curves, points = validation_curves(results), scored_points(results)
    kinds = sorted({metric for metric, _, _ in curves.values()} | {metric for _, _, metric, *_ in points})
    if not kinds:
        return False
    runs = sorted(set(curves) | {run for run, *_ in points})
    palette = matplotlib.colormaps["tab20"]
    color = {run: palette(i % palette.N) for i, run in enumerate(runs)}  # a run's curve and crosses match
    fig = Figure(figsize=(6.5 * len(kinds), 5.0))
    FigureCanvasAgg(fig)
    for i, kind in enumerate(kinds):
        ax = fig.add_subplot(1, len(kinds), i + 1)
        for name, (metric, hours, values) in sorted(curves.items()):
            if metric == kind:
                ax.plot(hours, values, marker=".", color=color[name], label=f"{name} (validation)")
        for run, label, metric, at, mean, ci95 in sorted(points):
            if metric == kind:
                ax.errorbar(
                    [at], [mean], yerr=[ci95], color=color[run], marker="x", linestyle="none", capsize=3,
                    label=f"{run} ({label})",
                )  # fmt: skip
        ax.set_xlabel("training time (hours of wall clock)")
        ax.set_ylabel(kind.removeprefix("val_"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True
