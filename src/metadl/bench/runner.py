"""``metadl bench``: train and evaluate the table's cells, then write the results and the table.

Every training and evaluation runs as its own ``metadl train`` / ``metadl eval`` process, so that its
peak memory (the child's maximum resident set size, from ``wait4``) is its own and a crash cannot take
the bench down. Work is kept: a finished run is not trained again, a run stopped by ``--time-limit``
(or killed) is resumed, and an evaluation whose run, shape and episode count are unchanged is not
repeated. ``--quick`` trains every run for 5 iterations and evaluates on 16 episodes, in a separate
folder: it checks the whole pipeline in minutes and its figures mean nothing.

The output folder holds ``runs/<run>/`` (run folders, each with ``bench.json``: every training
session's seconds and peak memory; logs beside them), ``results/<row>.json`` (one file per row, so
that benches of different rows can run at the same time), and ``table.md`` and ``curves.png``
(validation score against training time, for runs that validate), redrawn from every row's results.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metadl.bench.report import plot_curves, render_table
from metadl.bench.results import CellResult, RowResult, Score, ScoreKey, Training, read_results, read_row
from metadl.bench.table import QUICK_EPISODES, QUICK_ITERATIONS, ROWS, Cell, Row
from metadl.config import find_config, load_config
from metadl.fileio import atomic_write_bytes
from metadl.training.checkpoint import load_checkpoint
from metadl.training.data import is_task_source
from metadl.training.metrics import read_metrics
from metadl.training.trainer import LAST, resumed_config


@dataclass(frozen=True)
class BenchSettings:
    """Where to write, how much to run, and where the data is.

    ``data_root`` holds one folder per dataset (``DIR/omniglot``); ``None`` keeps each config's root
    (which downloads). ``time_limit``: seconds per training session (``None``: train to the end).
    ``train=False`` trains nothing: the runs that exist are evaluated as they are, the others marked "not run".
    """

    out: Path
    quick: bool = False
    data_root: Path | None = None
    time_limit: float | None = None
    device: str | None = None
    train: bool = True

    @property
    def folder(self) -> Path:
        return self.out / "quick" if self.quick else self.out


def training_overrides(cell: Cell, settings: BenchSettings) -> list[str]:
    """The ``--set`` values a cell's run is trained with: the cell's own, the data root, quick mode."""
    sets = list(cell.overrides)
    cfg = load_config(find_config(cell.config))
    dataset = cfg.dataset.name
    if settings.data_root is not None and not is_task_source(cfg):
        sets += [f"dataset.root={settings.data_root / dataset}", "dataset.download=false"]
    if settings.device is not None:
        sets.append(f"device={settings.device}")
    if settings.quick:
        sets += [
            f"train.iterations={QUICK_ITERATIONS}",
            "train.val_every=0",
            f"train.checkpoint_every={QUICK_ITERATIONS}",
        ]
    return sets


def run_process(args: list[str], log_file: Path) -> tuple[int, float, float]:
    """Run ``python -m metadl.cli ARGS``, appending its output to ``log_file``.

    Returns ``(exit code, wall seconds, peak resident memory in MiB)`` of that process alone. The
    command tunes its own allocator (:mod:`metadl.allocator`).
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log_file, "a") as log:
        log.write(f"$ metadl {' '.join(args)}\n")
        log.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "metadl.cli", *args], stdout=log, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen so it does not wait again
    return proc.returncode, time.monotonic() - start, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def _progress(run_dir: Path) -> tuple[int, int] | None:
    """``(iterations done, iterations planned)`` of a run folder, or ``None`` when it holds no checkpoint."""
    if not (run_dir / LAST).is_file():
        return None
    return int(load_checkpoint(run_dir / LAST)["iteration"]), resumed_config(run_dir).train.iterations


def train_cell(cell: Cell, settings: BenchSettings, log: Callable[[str], None]) -> Training | None:
    """Train (or resume, or reuse) the cell's run; returns its training record.

    With ``settings.train`` off, nothing is trained: the record of the run as it is, ``None`` if there is none.
    """
    run_dir = settings.folder / "runs" / cell.run_name
    record_file = run_dir / "bench.json"
    record = json.loads(record_file.read_text()) if record_file.is_file() else {"sessions": []}
    progress = _progress(run_dir)
    if progress is None and not settings.train:
        return None
    if settings.train and (progress is None or progress[0] < progress[1]):
        session, progress = _train_session(
            cell, run_dir, settings, 0 if progress is None else progress[0], log
        )
        record["sessions"].append(session)
        atomic_write_bytes(record_file, (json.dumps(record, indent=1) + "\n").encode())
    assert progress is not None
    done, planned = progress
    return Training(
        run=cell.run_name,
        run_dir=str(run_dir),
        iterations=done,
        planned=planned,
        complete=done >= planned,
        seconds=_training_seconds(run_dir, record),
        peak_rss_mib=max((s["peak_rss_mib"] for s in record["sessions"]), default=None),
    )


def _train_session(
    cell: Cell, run_dir: Path, settings: BenchSettings, start: int, log: Callable[[str], None]
) -> tuple[dict[str, Any], tuple[int, int]]:
    """One ``metadl train`` process: a new run, or ``--resume`` of one (also one killed before its first checkpoint).

    Returns the session's record and the run's ``(iterations done, iterations planned)`` after it.
    """
    if (run_dir / "config.yaml").exists():
        args = ["train", "--resume", str(run_dir)]
    else:
        sets = [f"--set={s}" for s in training_overrides(cell, settings)]
        args = ["train", str(find_config(cell.config)), "--out", str(run_dir), *sets]
    if settings.time_limit is not None:
        args += ["--time-limit", f"{settings.time_limit:.3f}s"]
    log(f"training {cell.run_name} from iteration {start} ({cell.config} {' '.join(cell.overrides)})")
    log_file = run_dir.parent / f"{cell.run_name}.log"
    code, seconds, peak = run_process([*args, "--no-progress"], log_file)
    if code != 0:
        raise RuntimeError(f"training {cell.run_name} failed (exit {code}); see {log_file}")
    progress = _progress(run_dir)
    assert progress is not None
    session = {"from": start, "to": progress[0], "seconds": round(seconds, 1), "peak_rss_mib": round(peak, 1)}
    return session, progress


def _training_seconds(run_dir: Path, record: dict[str, Any]) -> float | None:
    """Wall-clock training time: the run's own ``time_s`` column, else the bench's session times."""
    rows = read_metrics(run_dir / "metrics.csv") if (run_dir / "metrics.csv").is_file() else []
    if rows and "time_s" in rows[-1]:
        return rows[-1]["time_s"]
    return sum(s["seconds"] for s in record["sessions"]) or None


def evaluate_cell(
    cell: Cell,
    row: Row,
    training: Training,
    settings: BenchSettings,
    previous: Score | None,
    log: Callable[[str], None],
) -> Score:
    """Score the cell's run on its test episodes (reusing ``previous`` when nothing changed)."""
    episodes = QUICK_EPISODES if settings.quick else row.episodes
    key = ScoreKey(cell.run_name, training.iterations, cell.ways, cell.shots, episodes)
    if previous is not None and previous.key == key:
        return previous
    args = [
        "eval",
        training.run_dir,
        "--shots",
        str(cell.shots),
        "--episodes",
        str(episodes),
        "--json",
        "--no-progress",
    ]
    if cell.ways is not None:
        args += ["--ways", str(cell.ways)]
    if settings.device is not None:
        args += ["--device", settings.device]
    log(
        f"evaluating {cell.run_name} {cell.label} ({'' if cell.ways is None else f'{cell.ways}-way '}"
        f"{cell.shots}-shot, {episodes} episodes)"
    )
    out_file = Path(training.run_dir).parent / f"{cell.run_name}.eval.log"
    code, seconds, _ = run_process(args, out_file)
    if code != 0:
        raise RuntimeError(f"evaluating {cell.run_name} failed (exit {code}); see {out_file}")
    report = json.loads(out_file.read_text().strip().splitlines()[-1])
    return Score(key, report["mean"], report["ci95"], report["episodes"], report["metric"], round(seconds, 1))


def save_row(row_file: Path, row: Row, cells: list[CellResult]) -> None:
    """Write ``cells`` into the row's results; the row's other cells keep what the file holds now.

    The file is read again under a lock, not taken from the start of this call: two benches that run
    different cells of one row side by side (hours apart) would otherwise each drop the other's result.
    """
    with open(row_file.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        on_disk = read_row(row_file)
        by_label = {c.label: c for c in (on_disk.cells if on_disk else ())} | {c.label: c for c in cells}
        full_row = next((r for r in ROWS if r.name == row.name), row)  # ``row`` may be one cell of it
        ordered = [by_label.pop(c.label) for c in full_row.cells if c.label in by_label] + list(
            by_label.values()
        )
        result = RowResult(row.setting, row.source, tuple(ordered))
        atomic_write_bytes(row_file, result.to_json().encode())


def run_bench(
    rows: list[Row], settings: BenchSettings, log: Callable[[str], None] = print
) -> dict[str, RowResult]:
    """Train and evaluate every cell of ``rows``, save each row's results, redraw the table and curves.

    Returns the results of every row in the folder (these and earlier ones), by row name.
    """
    folder = settings.folder
    (folder / "results").mkdir(parents=True, exist_ok=True)
    for row in rows:
        row_file = folder / "results" / f"{row.name}.json"
        previous = read_row(row_file)
        old = {c.label: c.score for c in (previous.cells if previous else ())}
        cells: list[CellResult] = []
        for cell in row.cells:
            training = train_cell(cell, settings, log)
            if training is None:
                log(f"{row.name} {cell.label}: not run ({cell.run_name} has no checkpoint)")
                cells.append(CellResult(cell.label, cell.published, None, None))
                continue
            score = evaluate_cell(cell, row, training, settings, old.get(cell.label), log)
            cells.append(CellResult(cell.label, cell.published, training, score))
            log(
                f"{row.name} {cell.label}: {score.mean:.4g} ± {score.ci95:.2g} ({score.metric}, "
                f"{score.episodes} episodes; published {cell.published})"
            )
        save_row(row_file, row, cells)
    results = read_results(folder)
    atomic_write_bytes(folder / "table.md", render_table(results, quick=settings.quick).encode())
    plot_curves(results, folder / "curves.png")
    log(f"table in {folder / 'table.md'}; results in {folder / 'results'}")
    return results
