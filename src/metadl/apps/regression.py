"""``metadl predict`` for regression models: a support table with targets in, one prediction per query row out.

The support file (CSV with a header row, or JSON Lines) holds numeric feature columns and the target
column (``y`` unless told otherwise); every other column is a feature, in file order. The query file
must hold the same feature columns (a target column there is ignored). Targets stay floats end to end.
Each query row gets ``prediction`` (a float, or a list for a model with several outputs) and, when the
learner predicts a variance (``cnp``, ``anp``), ``std`` and ``interval95`` (``prediction ± 1.96 std``).

Example:
    >>> import pathlib, tempfile
    >>> from metadl.algorithms import create_learner
    >>> from metadl.models import create_backbone
    >>> from metadl.saving import SavedModel
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "s.csv").write_text("year,y\\n0,6.1\\n1,5.2\\n2,4.0\\n")
    >>> _ = (root / "q.csv").write_text("year\\n3\\n")
    >>> cnp = create_learner("cnp", backbone=create_backbone("mlp", in_features=1, hidden=[8]), out_features=1, hidden=8)
    >>> row = predict_table(SavedModel(cnp.eval(), {"learner": {"out_features": 1}}), root / "s.csv", root / "q.csv")[0]
    >>> sorted(row), row["row"]
    (['interval95', 'prediction', 'row', 'std'], 1)
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from torch import Tensor

from metadl.saving import SavedModel
from metadl.tasks.source import TaskSourceError
from metadl.tasks.tables import Table, format_of, read_table

Z95 = 1.959963984540054


def _read(path: str | os.PathLike[str], role: str) -> Table:
    p = Path(path)
    fmt = format_of(p)
    if fmt not in ("csv", "jsonl"):
        raise TaskSourceError(f"{role} {p}: give a .csv (with a header row) or .jsonl table of numbers")
    if not p.is_file():
        raise TaskSourceError(f"{role} {p} does not exist")
    table = read_table(p, fmt)
    if not len(table):
        raise TaskSourceError(f"{role} {p} has no rows")
    return table


def _values(row: Tensor) -> float | list[float]:
    values = [float(v) for v in row.tolist()]
    return values[0] if len(values) == 1 else values


def support_table(path: str | os.PathLike[str], target_column: str) -> tuple[Tensor, Tensor, list[str]]:
    """A support table's features ``(S, F)``, float targets ``(S, out)`` and feature column names."""
    sup = _read(path, "support")
    if target_column not in sup.columns:
        raise TaskSourceError(
            f"support {path}: no target column {target_column!r}; its columns are {list(sup.columns)} "
            "(name the target with --target-column)"
        )
    features = [c for c in sup.columns if c != target_column]
    if not features:
        raise TaskSourceError(
            f"support {path}: only the target column {target_column!r}; add feature columns"
        )
    return sup.numbers(features), sup.numbers([target_column], "target column"), features


def predict_table(
    model: SavedModel,
    support: str | os.PathLike[str],
    query: str | os.PathLike[str],
    *,
    target_column: str = "y",
) -> list[dict[str, Any]]:
    """Adapt a regression ``model`` to the ``support`` table and predict every row of ``query`` (in order)."""
    if not model.is_regression:
        raise ValueError(
            f"the model at {model.path} is a classifier; a table of float targets needs a regression model"
        )
    sx, sy, features = support_table(support, target_column)
    predictor = model.adapt(sx, sy)
    qx = _read(query, "query").numbers(features)
    mean = predictor.predict(qx).float().cpu()
    std = predictor.predict_variance(qx).float().cpu().sqrt() if predictor.has_variance else None
    rows: list[dict[str, Any]] = []
    for i in range(len(qx)):
        row: dict[str, Any] = {"row": i + 1, "prediction": _values(mean[i])}
        if std is not None:
            row["std"] = _values(std[i])
            low, high = mean[i] - Z95 * std[i], mean[i] + Z95 * std[i]
            row["interval95"] = [_values(low), _values(high)]
        rows.append(row)
    if not all(math.isfinite(v) for v in mean.flatten().tolist()):
        raise ValueError(f"the model at {model.path} predicted a non-finite value; check the feature scales")
    return rows
