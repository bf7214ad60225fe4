"""A user's table as a numeric dataset: categorical columns encoded, missing values kept as NaN.

The same encoding serves the datasets the recommender learns from (keel's raw ``.dat`` tables) and the
table a user brings, so their meta-features are computed the same way. A column is *numeric* when every
non-missing value parses as a finite float; otherwise it is *categorical*. Missing values are the empty
string and the tokens in :data:`MISSING` (case-insensitive). Encoding:

- numeric column: its floats, missing -> NaN (imputed later by the median, in the meta-features and in
  every pipeline, never by crashing);
- categorical column with at most ``max_onehot`` levels: one 0/1 column per level (sorted), missing is
  a level of its own (a missing category often carries signal);
- categorical column with more levels: ordinal codes in sorted order, missing -> its own code.

Example:
    >>> table = encode_rows(["colour", "size", "y"], [["red", "1", "a"], ["blue", "?", "b"], ["red", "3", "a"]], "y")
    >>> table.feature_names, table.n_categorical
    (('colour=blue', 'colour=red', 'size'), 1)
    >>> table.dataset.X.tolist(), table.dataset.y.tolist()
    ([[0.0, 1.0, 1.0], [1.0, 0.0, nan], [0.0, 1.0, 3.0]], ['a', 'b', 'a'])
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metadl.tasks.dataset_source import NamedDataset, read_npz
from metadl.tasks.tables import read_table, read_text

MISSING = frozenset({"", "?", "na", "n/a", "nan", "null", "none"})
MAX_ONEHOT = 10


class AutoMLError(ValueError):
    """Bad input to algorithm selection (the message names the value and the fix)."""


@dataclass(frozen=True)
class EncodedTable:
    """A numeric dataset plus what the encoding saw: ``n_categorical`` of the source columns were categorical."""

    dataset: NamedDataset
    feature_names: tuple[str, ...]
    n_categorical: int


def _is_missing(value: str) -> bool:
    return value.strip().lower() in MISSING


def _as_float(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _encode_column(name: str, values: list[str], max_onehot: int) -> tuple[np.ndarray, list[str], bool]:
    """One source column -> ``(n, k)`` floats, their names, and whether it was categorical."""
    present = [v.strip() for v in values if not _is_missing(v)]
    if all(_as_float(v) is not None for v in present):
        column = [math.nan if _is_missing(v) else float(v) for v in values]
        return np.array(column, dtype=np.float64).reshape(-1, 1), [name], False
    levels = sorted({"?" if _is_missing(v) else v.strip() for v in values})
    codes = np.array([levels.index("?" if _is_missing(v) else v.strip()) for v in values])
    if len(levels) <= max_onehot:
        return np.eye(len(levels))[codes], [f"{name}={level}" for level in levels], True
    return codes.astype(np.float64).reshape(-1, 1), [name], True


def encode_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    target: str,
    *,
    name: str = "table",
    max_onehot: int = MAX_ONEHOT,
) -> EncodedTable:
    """Encode string ``rows`` (one value per column) with ``target`` as the class column."""
    if target not in columns:
        raise AutoMLError(f"target column {target!r} is not among the columns {list(columns)}; pass --target")
    t = list(columns).index(target)
    labels = [row[t].strip() for row in rows]
    missing = [i for i, label in enumerate(labels) if _is_missing(label)]
    if missing:
        raise AutoMLError(
            f"{name}: target {target!r} is missing in {len(missing)} rows (first: data row {missing[0] + 1}); "
            "drop those rows or fill them"
        )
    if len(set(labels)) < 2:
        raise AutoMLError(f"{name}: target {target!r} has {len(set(labels))} class; need at least 2")
    blocks, names, n_categorical = [], [], 0
    for j, column in enumerate(columns):
        if j == t:
            continue
        block, block_names, categorical = _encode_column(column, [row[j] for row in rows], max_onehot)
        blocks.append(block)
        names.extend(block_names)
        n_categorical += categorical
    if not blocks:
        raise AutoMLError(f"{name}: no feature columns besides the target {target!r}")
    X = np.hstack(blocks)
    return EncodedTable(NamedDataset(name, X, np.array(labels)), tuple(names), n_categorical)


def read_csv_dataset(path: str | Path, target: str, *, max_onehot: int = MAX_ONEHOT) -> EncodedTable:
    """A CSV file with a header row; ``target`` names the class column."""
    path = Path(path)
    table = read_table(path, "csv")
    rows = [[str(row[c]) for c in table.columns] for row in table.rows]
    if not rows:
        raise AutoMLError(f"{path} has a header but no rows")
    return encode_rows(table.columns, rows, target, name=path.stem, max_onehot=max_onehot)


def read_keel_dat(path: str | Path, *, max_onehot: int = MAX_ONEHOT) -> EncodedTable:
    """A keel raw ``.dat`` table: comma-separated, no header, the class in the last column."""
    path = Path(path)
    rows = [r for r in csv.reader(io.StringIO(read_text(path), newline="")) if r]
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise AutoMLError(f"{path}: rows have different numbers of fields")
    columns = [f"x{j}" for j in range(width - 1)] + ["class"]
    return encode_rows(columns, rows, "class", name=path.stem, max_onehot=max_onehot)


def read_dataset(path: str | Path, target: str | None = None) -> EncodedTable:
    """A user's dataset: ``.csv`` (``target`` names the class column) or ``.npz`` with ``X``/``y``."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        data = read_npz(path)
        X = data.X.astype(np.float64)
        names = tuple(f"x{j}" for j in range(X.shape[1]))
        return EncodedTable(NamedDataset(data.name, X, data.y), names, 0)
    if path.suffix.lower() == ".csv":
        if target is None:
            raise AutoMLError(f"{path} is a CSV: name its class column with --target COLUMN")
        return read_csv_dataset(path, target)
    raise AutoMLError(f"{path}: unknown extension {path.suffix!r}; give a .csv (with --target) or a .npz")


def subsample(X: np.ndarray, y: np.ndarray, max_rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_rows`` rows, each class keeping its share (and at least one row); seeded.

    Example:
        >>> X, y = np.arange(10.0).reshape(-1, 1), np.array([0] * 8 + [1] * 2)
        >>> Xs, ys = subsample(X, y, 5)
        >>> sorted(ys.tolist())
        [0, 0, 0, 0, 1]
    """
    if len(y) <= max_rows:
        return X, y
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    keep: list[np.ndarray] = []
    for label, count in zip(classes, counts, strict=True):
        rows = np.flatnonzero(y == label)
        take = max(1, int(round(count * max_rows / len(y))))
        keep.append(rng.choice(rows, size=min(take, count), replace=False))
    index = np.sort(np.concatenate(keep))
    return X[index], y[index]
