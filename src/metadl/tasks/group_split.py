"""Entities split once into train / validation / test, and the grouped-table source a config can name.

A real task family is split by *entity* (a country, a user), never by row, so that the test entities are
never seen in meta-training: :func:`split_groups` deals the sorted entity names into the three splits
by a seeded permutation, the same for every run with the same ``split_seed``. :func:`grouped_table`
is the registry entry ``"grouped_table"``: a :class:`~metadl.tasks.grouped.GroupedTableSource` over a
table given as an object or read from a file (what a YAML config can name), restricted to one split's
groups when ``split`` is given.

Example:
    >>> names = tuple(f"u{i}" for i in range(10))
    >>> parts = [split_groups(names, s, fractions=(0.8, 0.1, 0.1)) for s in SPLITS]
    >>> [len(p) for p in parts], sorted(sum(parts, [])) == sorted(names)
    ([8, 1, 1], True)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch

from metadl.tasks.grouped import GroupedTable, GroupedTableSource
from metadl.tasks.source import TaskSourceError
from metadl.tasks.tables import TableFormat

SPLITS = ("train", "val", "test")
Split = Literal["train", "val", "test"]


def split_groups(
    names: Sequence[str], split: str, *, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0
) -> list[str]:
    """The names of one split: a fixed seeded permutation of the sorted names cut at ``fractions``.

    The train and validation sizes are rounded; the test split takes the rest. Every name lands in
    exactly one split, whatever ``split`` is asked for.
    """
    if split not in SPLITS:
        raise TaskSourceError(f"split={split!r}; choose one of {SPLITS}")
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise TaskSourceError(f"split fractions {list(fractions)}: give three shares >= 0 that sum to 1")
    ordered = sorted(names)
    perm = torch.randperm(len(ordered), generator=torch.Generator().manual_seed(seed)).tolist()
    n_train, n_val = round(fractions[0] * len(ordered)), round(fractions[1] * len(ordered))
    bounds = {
        "train": (0, n_train),
        "val": (n_train, n_train + n_val),
        "test": (n_train + n_val, len(ordered)),
    }
    low, high = bounds[split]
    return [ordered[i] for i in perm[low:high]]


def grouped_table(
    table: GroupedTable | str | Path,
    *,
    key_column: str | None = None,
    target_column: str | None = None,
    feature_columns: Sequence[str] = (),
    time_column: str | None = None,
    format: TableFormat | None = None,
    split: Split | None = None,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    split_seed: int = 0,
    n_query: int | None = None,
    query_fraction: float | None = None,
    k_shot: int | None = None,
    min_group_size: int | None = None,
    max_group_size: int | None = None,
    query_order: Literal["random", "last"] = "random",
    seed: int | torch.Generator = 0,
) -> GroupedTableSource:
    """Task source ``"grouped_table"``: each group (user, entity) of ``table`` a regression task.

    Args:
        table: a :class:`GroupedTable`, or a CSV / TSV / JSON Lines file read with ``key_column``,
            ``target_column``, ``feature_columns`` (and ``time_column``) as :meth:`GroupedTable.read` does.
        split, split_fractions, split_seed: keep only the groups of one split (:func:`split_groups`);
            None keeps every group.
        The other arguments are :class:`GroupedTableSource`'s.
    """
    if not isinstance(table, GroupedTable):
        if key_column is None or target_column is None or not feature_columns:
            raise TaskSourceError(
                f"grouped_table reads {table} with key_column, target_column and feature_columns: give all three"
            )
        table = GroupedTable.read(
            table,
            key_column=key_column,
            target_column=target_column,
            feature_columns=feature_columns,
            time_column=time_column,
            format=format,
        )
    if split is not None:
        table = table.subset(
            split_groups(table.group_names, split, fractions=split_fractions, seed=split_seed)
        )
        if not table.group_names:
            raise TaskSourceError(
                f"split {split!r} holds no group; the table has too few groups for {list(split_fractions)}"
            )
    return GroupedTableSource(
        table,
        n_query=n_query,
        query_fraction=query_fraction,
        k_shot=k_shot,
        min_group_size=min_group_size,
        max_group_size=max_group_size,
        query_order=query_order,
        seed=seed,
    )
