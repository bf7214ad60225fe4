"""A text table of experiment-database records, for ``metadl runs``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from metadl.experiments.database import RunRecord


def format_runs(records: Sequence[RunRecord], path: Path) -> str:
    """One line per record: id, date, kind, config, distribution, metrics, seconds, peak memory.

    Example:
        >>> r = RunRecord(kind="train", distribution="d", config={}, metrics={"val_accuracy": 0.5},
        ...               config_name="demo", seconds=3.0, peak_memory_mb=200.0, id=1, created=0.0)
        >>> print(format_runs([r], Path("x.sqlite")).splitlines()[-1])
           1  1970-01-01 00:00  train  demo  d  val_accuracy=0.5  3s  200 MiB
    """
    if not records:
        return f"no runs recorded in {path} match"
    lines = [f"{len(records)} run(s) in {path}"]
    for r in records:
        date = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.created or 0.0))
        metrics = " ".join(f"{k}={v:.4g}" for k, v in sorted(r.metrics.items()))
        seconds = "-" if r.seconds is None else f"{r.seconds:.0f}s"
        memory = "-" if r.peak_memory_mb is None else f"{r.peak_memory_mb:.0f} MiB"
        name = r.config_name or (r.study and f"study:{r.study}") or "-"
        lines.append(f"{r.id:>4}  {date}  {r.kind}  {name}  {r.distribution}  {metrics}  {seconds}  {memory}")
    return "\n".join(lines)
