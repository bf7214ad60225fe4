"""Ground truth: every portfolio pipeline scored on every dataset, cached on disk one cell per file.

A cell is one (dataset, pipeline): balanced accuracy by repeated stratified k-fold cross-validation on
at most ``max_rows`` rows (larger datasets are subsampled, seeded and stratified; the cell records it).
Two *independent* sets of repeats are run: ``selection`` (what selectors and the per-dataset oracle
see) and ``report`` (the score every method is credited with), so that picking the best of 14 noisy
estimates does not inflate the oracle (the winner's curse).

The cache is ``root/<dataset>/<pipeline>.json`` plus ``root/<dataset>/metafeatures.json``, each
written atomically (temporary file, fsync, rename), each holding a key (a digest of the data and the
settings); a cell whose key differs is recomputed, a killed build resumes where it stopped. The key
leaves the number of repeats out: repeat ``r`` of the selection set always uses seed ``seed + r`` and
of the report set ``seed + r + REPORT_SEED_OFFSET``, so asking for more repeats than a cell holds runs
only the missing ones and appends them (a cell's first repeats never change), and asking for fewer
reads the first ones.

Example:
    >>> import tempfile
    >>> from sklearn.datasets import load_iris
    >>> iris = load_iris()
    >>> entry = DatasetEntry(NamedDataset("iris", iris.data, iris.target), "iris", "sklearn")
    >>> cell = score_cell(entry, "knn_5", CVSettings(folds=3, repeats=1), tempfile.mkdtemp())
    >>> round(cell.selection_mean, 2) > 0.9, len(cell.report)
    (True, 1)
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from metadl.automl.collection import DatasetEntry
from metadl.automl.metafeatures import NAMES, MetaFeatures, compute_metafeatures
from metadl.automl.portfolio import create_pipeline, list_pipelines
from metadl.automl.tabular import AutoMLError, subsample
from metadl.fileio import atomic_write_bytes
from metadl.tasks.dataset_source import NamedDataset

REPORT_SEED_OFFSET = 10_000  # the report repeats use seeds no selection repeat uses


@dataclass(frozen=True)
class CVSettings:
    """Cross-validation of one cell: ``folds`` x ``repeats`` per set, on at most ``max_rows`` rows."""

    folds: int = 3
    repeats: int = 1
    max_rows: int = 500
    seed: int = 0


@dataclass(frozen=True)
class CellScore:
    """One (dataset, pipeline): balanced accuracy per repeat in each set, and what it cost."""

    dataset: str
    pipeline: str
    key: str
    selection: list[float]
    report: list[float]
    rows_used: int
    rows_total: int
    failed_fits: int
    seconds: float

    @property
    def selection_mean(self) -> float:
        return float(np.mean(self.selection))

    @property
    def report_mean(self) -> float:
        return float(np.mean(self.report))


def data_digest(dataset: NamedDataset) -> str:
    """sha256 of a dataset's arrays (shape, dtype and bytes), to key its cache entries."""
    h = hashlib.sha256()
    for array in (np.ascontiguousarray(dataset.X), np.ascontiguousarray(dataset.y.astype(str))):
        h.update(f"{array.shape}{array.dtype}".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def _key(digest: str, *parts: object) -> str:
    return hashlib.sha256(json.dumps([digest, *parts], sort_keys=True, default=str).encode()).hexdigest()[:16]


def cross_validate(
    pipeline: str, X: np.ndarray, y: np.ndarray, folds: int, seeds: Sequence[int]
) -> tuple[list[float], int]:
    """Mean balanced accuracy per seed (one stratified k-fold each); a fit that raises scores 0 and is counted.

    Runs single-threaded: on a shared 2-core machine, OpenMP/BLAS threads of gradient boosting and the
    MLP oversubscribe the cores (a 1000-row boosting fit went from 0.7 s to 60 s).
    """
    folds = max(2, min(folds, int(np.unique(y, return_counts=True)[1].max())))
    means, failed = [], 0
    for seed in seeds:
        scores = []
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore")
                try:
                    model = create_pipeline(pipeline).fit(X[train], y[train])
                    scores.append(balanced_accuracy_score(y[test], model.predict(X[test])))
                except (ValueError, np.linalg.LinAlgError):
                    failed += 1
                    scores.append(0.0)
        means.append(float(np.mean(scores)))
    return means, failed


def _read(path: Path, key: str) -> dict[str, object] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or torn by a crash before the atomic write existed: recompute
    return record if isinstance(record, dict) and record.get("key") == key else None


def cell_key(entry: DatasetEntry, pipeline: str, settings: CVSettings) -> str:
    """The cache key of a cell: the data, the pipeline and every setting but ``repeats``."""
    fixed = {"folds": settings.folds, "max_rows": settings.max_rows, "seed": settings.seed}
    return _key(data_digest(entry.dataset), repr(create_pipeline(pipeline)), fixed)


def score_cell(entry: DatasetEntry, pipeline: str, settings: CVSettings, root: str | Path) -> CellScore:
    """The cached score of ``pipeline`` on ``entry``; missing repeats are computed and appended to the file."""
    key = cell_key(entry, pipeline, settings)
    path = Path(root) / entry.name / f"{pipeline}.json"
    cached = _read(path, key)
    cell = CellScore(**cached) if cached is not None else None  # type: ignore[arg-type]
    have = 0 if cell is None else min(len(cell.selection), len(cell.report))
    if cell is not None and have >= settings.repeats:
        return replace(
            cell, selection=cell.selection[: settings.repeats], report=cell.report[: settings.repeats]
        )
    start = time.perf_counter()
    y = np.unique(entry.dataset.y, return_inverse=True)[1].reshape(-1)
    X, y = subsample(entry.dataset.X.astype(np.float64), y, settings.max_rows, settings.seed)
    seeds = [settings.seed + r for r in range(have, settings.repeats)]
    selection, failed_a = cross_validate(pipeline, X, y, settings.folds, seeds)
    report, failed_b = cross_validate(pipeline, X, y, settings.folds, [s + REPORT_SEED_OFFSET for s in seeds])
    before = cell or CellScore(entry.name, pipeline, key, [], [], len(y), len(entry.dataset.y), 0, 0.0)
    cell = replace(
        before,
        selection=before.selection[:have] + selection,
        report=before.report[:have] + report,
        failed_fits=before.failed_fits + failed_a + failed_b,
        seconds=before.seconds + time.perf_counter() - start,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(asdict(cell)).encode())
    return cell


def cached_repeats(
    entry: DatasetEntry, pipelines: Sequence[str], settings: CVSettings, root: str | Path
) -> int:
    """How many repeats (of each set) every one of ``entry``'s cells holds in the cache: 0 if any is missing or stale."""
    held = []
    for pipeline in pipelines:
        record = _read(Path(root) / entry.name / f"{pipeline}.json", cell_key(entry, pipeline, settings))
        if record is None:
            return 0
        held.append(min(len(record["selection"]), len(record["report"])))  # type: ignore[arg-type]
    return min(held, default=0)


def metafeatures_cell(entry: DatasetEntry, settings: CVSettings, root: str | Path) -> MetaFeatures:
    """The cached meta-features of ``entry`` (computed on the same ``max_rows`` cap as the scores)."""
    key = _key(data_digest(entry.dataset), "metafeatures", NAMES, entry.n_categorical, settings.max_rows)
    path = Path(root) / entry.name / "metafeatures.json"
    cached = _read(path, key)
    if cached is not None:
        return MetaFeatures(np.array(cached["values"], dtype=np.float64))
    mf = compute_metafeatures(
        entry.dataset.X, entry.dataset.y, n_categorical=entry.n_categorical, max_rows=settings.max_rows
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps({"key": key, "names": NAMES, "values": mf.values.tolist()}).encode())
    return mf


@dataclass(frozen=True)
class GroundTruth:
    """The meta-dataset: one row per dataset. ``metafeatures`` ``(n, F)``; ``selection``/``report`` ``(n, P)``."""

    names: tuple[str, ...]
    families: tuple[str, ...]
    pipelines: tuple[str, ...]
    metafeature_names: tuple[str, ...]
    metafeatures: np.ndarray
    selection: np.ndarray
    report: np.ndarray
    max_rows: int = CVSettings.max_rows  # the cap the meta-features were computed under
    cell_seconds: float = 0.0  # compute time of all its cells, as measured when each was computed
    repeats: int = CVSettings.repeats  # CV repeats behind each mean, in each of the two sets

    def __post_init__(self) -> None:
        n, p = len(self.names), len(self.pipelines)
        if self.metafeatures.shape != (n, len(self.metafeature_names)) or self.selection.shape != (n, p):
            raise AutoMLError(
                f"ground truth shapes disagree: {n} datasets, {p} pipelines, metafeatures "
                f"{self.metafeatures.shape}, selection {self.selection.shape}"
            )
        if self.report.shape != (n, p):
            raise AutoMLError(f"report scores {self.report.shape}, expected {(n, p)}")

    def subset(self, rows: Sequence[int] | np.ndarray) -> GroundTruth:
        """The table restricted to ``rows`` (in that order), every other field kept.

        Example:
            >>> gt = GroundTruth(("a", "b"), ("f", "g"), ("p",), ("m",), np.zeros((2, 1)), np.ones((2, 1)), np.ones((2, 1)))
            >>> gt.subset([1]).names, gt.subset([1]).families
            (('b',), ('g',))
        """
        rows = [int(r) for r in rows]
        return replace(
            self,
            names=tuple(self.names[r] for r in rows),
            families=tuple(self.families[r] for r in rows),
            metafeatures=self.metafeatures[rows],
            selection=self.selection[rows],
            report=self.report[rows],
        )

    def save(self, path: str | Path) -> None:
        """Write the table as JSON (no pickle: it is data anyone can read and diff)."""
        table = {
            "names": self.names,
            "families": self.families,
            "pipelines": self.pipelines,
            "metafeature_names": self.metafeature_names,
            "metafeatures": np.round(self.metafeatures, 6).tolist(),
            "selection": np.round(self.selection, 6).tolist(),
            "report": np.round(self.report, 6).tolist(),
            "max_rows": self.max_rows,
            "cell_seconds": round(self.cell_seconds, 1),
            "repeats": self.repeats,
        }
        atomic_write_bytes(path, json.dumps(table, indent=0).encode())

    @classmethod
    def load(cls, path: str | Path) -> GroundTruth:
        """Read a table written by :meth:`save`; unknown or missing keys fail with the file named."""
        try:
            table = json.loads(Path(path).read_text())
            return cls(
                tuple(table["names"]),
                tuple(table["families"]),
                tuple(table["pipelines"]),
                tuple(table["metafeature_names"]),
                np.array(table["metafeatures"], dtype=np.float64),
                np.array(table["selection"], dtype=np.float64),
                np.array(table["report"], dtype=np.float64),
                int(table["max_rows"]),
                float(table["cell_seconds"]),
                int(table["repeats"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise AutoMLError(f"cannot read ground truth {path}: {err}") from None


def build_ground_truth(
    entries: Sequence[DatasetEntry],
    root: str | Path,
    *,
    settings: CVSettings = CVSettings(),
    pipelines: Sequence[str] | None = None,
    deadline: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> GroundTruth:
    """Score every pipeline on every entry (cached); datasets not finished by ``deadline`` are left out.

    Args:
        deadline: a ``time.monotonic()`` value; no new dataset is started after it.
    """
    pipelines = tuple(pipelines or list_pipelines())
    rows: list[tuple[DatasetEntry, MetaFeatures, list[CellScore]]] = []
    for entry in entries:
        if deadline is not None and time.monotonic() > deadline:
            break
        start = time.perf_counter()
        mf = metafeatures_cell(entry, settings, root)
        cells = [score_cell(entry, p, settings, root) for p in pipelines]
        rows.append((entry, mf, cells))
        if progress is not None:
            best = max(cells, key=lambda c: c.selection_mean)
            progress(
                f"{len(rows)}/{len(entries)} {entry.name} ({entry.family}, {cells[0].rows_used}/"
                f"{cells[0].rows_total} rows): best {best.pipeline} {best.selection_mean:.3f} "
                f"[{time.perf_counter() - start:.1f}s]"
            )
    return GroundTruth(
        tuple(e.name for e, _, _ in rows),
        tuple(e.family for e, _, _ in rows),
        pipelines,
        NAMES,
        np.array([mf.values for _, mf, _ in rows]).reshape(len(rows), len(NAMES)),
        np.array([[c.selection_mean for c in cells] for _, _, cells in rows]).reshape(
            len(rows), len(pipelines)
        ),
        np.array([[c.report_mean for c in cells] for _, _, cells in rows]).reshape(len(rows), len(pipelines)),
        settings.max_rows,
        float(sum(c.seconds for _, _, cells in rows for c in cells)),
        settings.repeats,
    )
