"""Entities as tasks: the rows of a table grouped by a key column (users and their ratings).

Each group (a user's rows) is one regression task: ``x`` the row's features (item ids, item and user
features: any tensor, gathered as is), ``y`` the float target (a rating) as ``(n, 1)``. The split into
support and query happens per group on every ``sample()``: a query of ``n_query`` rows (or
``query_fraction`` of the group), drawn at random (seeded) or, with ``query_order="last"``, the group's
latest rows by ``time`` (the cold-start protocol "predict a user's last 10 ratings"); the support is
``k_shot`` rows drawn from the rest, or all the rest when ``k_shot`` is None. Groups smaller than
``min_group_size`` (or larger than ``max_group_size``) are dropped up front.

Example:
    >>> table = GroupedTable.from_columns(["ann", "ann", "ann", "bob", "bob", "bob"],
    ...     x=torch.arange(6.0).view(6, 1), y=torch.tensor([4.0, 5.0, 3.0, 1.0, 2.0, 2.0]))
    >>> source = GroupedTableSource(table, k_shot=2, n_query=1, seed=0)
    >>> task = source.sample("bob")
    >>> task.name, tuple(task.support_y.shape), sorted(torch.cat([task.support_x, task.query_x]).flatten().tolist())
    ('bob', (2, 1), [3.0, 4.0, 5.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from metadl.tasks.source import NamedTask, SeededSource, TaskKind, TaskSourceError, pick, seeded_generator
from metadl.tasks.tables import MAX_FILE_BYTES, MAX_ROWS, TableFormat, format_of, read_table


@dataclass(frozen=True)
class GroupedTable:
    """Rows with a group per row.

    Attributes:
        groups: ``(N,)`` int64 group index of each row, in ``0..len(group_names)-1``.
        group_names: the key of each group (e.g. the user id as a string).
        x: ``(N, *x_shape)`` row features, any dtype (int64 item ids or float features).
        y: ``(N, out)`` float32 targets.
        time: ``(N,)`` row times (only ``query_order="last"`` needs them), or None.
    """

    groups: Tensor
    group_names: tuple[str, ...]
    x: Tensor
    y: Tensor
    time: Tensor | None = None

    def __post_init__(self) -> None:
        n = len(self.groups)
        sizes = {"x": len(self.x), "y": len(self.y)} | ({} if self.time is None else {"time": len(self.time)})
        if any(s != n for s in sizes.values()):
            raise TaskSourceError(
                f"grouped table: {n} group keys but {sizes}; every column needs one value per row"
            )
        if self.y.dim() != 2 or not torch.is_floating_point(self.y):
            raise TaskSourceError(
                f"grouped table: y must be float (N, out), got {self.y.dtype} {tuple(self.y.shape)}"
            )

    @classmethod
    def from_columns(
        cls, keys: Sequence[object] | Tensor, *, x: Tensor, y: Tensor, time: Tensor | None = None
    ) -> GroupedTable:
        """Group rows by ``keys`` (any hashable values; groups ordered by first appearance)."""
        values = keys.tolist() if isinstance(keys, Tensor) else list(keys)
        index: dict[str, int] = {}
        groups = torch.tensor([index.setdefault(str(k), len(index)) for k in values], dtype=torch.long)
        y = y.float()
        return cls(groups, tuple(index), x, y.unsqueeze(-1) if y.dim() == 1 else y, time)

    def subset(self, names: Sequence[str]) -> GroupedTable:
        """The rows of the groups ``names`` only (in the given group order; rows keep their table order).

        Example:
            >>> t = GroupedTable.from_columns(["a", "b", "a", "c"], x=torch.arange(4.0).view(4, 1), y=torch.ones(4))
            >>> s = t.subset(["c", "a"])
            >>> s.group_names, s.groups.tolist(), s.x.flatten().tolist()
            (('c', 'a'), [1, 1, 0], [0.0, 2.0, 3.0])
        """
        index = {n: i for i, n in enumerate(self.group_names)}
        unknown = [n for n in names if n not in index]
        if unknown:
            raise TaskSourceError(f"grouped table: no group named {unknown[0]!r}; subset takes group names")
        new_index = torch.full((len(self.group_names),), -1, dtype=torch.long)
        new_index[torch.tensor([index[n] for n in names], dtype=torch.long)] = torch.arange(len(names))
        mapped = new_index[self.groups]
        keep = mapped >= 0
        time = None if self.time is None else self.time[keep]
        return GroupedTable(mapped[keep], tuple(names), self.x[keep], self.y[keep], time)

    @classmethod
    def read(
        cls,
        path: str | Path,
        *,
        key_column: str,
        target_column: str,
        feature_columns: Sequence[str],
        time_column: str | None = None,
        format: TableFormat | None = None,
        tsv_columns: Sequence[str] = (),
        max_file_bytes: int = MAX_FILE_BYTES,
        max_rows: int = MAX_ROWS,
    ) -> GroupedTable:
        """Read a CSV / TSV (``tsv_columns`` name its fields) / JSON Lines file into a grouped table.

        Features and targets must be numbers; bad values fail with the file and line number.
        """
        path = Path(path)
        fmt = format or format_of(path)
        if fmt is None:
            raise TaskSourceError(
                f"{path}: cannot tell the format from the extension; pass format='csv', 'tsv' or 'jsonl'"
            )
        table = read_table(path, fmt, tsv_columns=tsv_columns, max_bytes=max_file_bytes, max_rows=max_rows)
        if not len(table):
            raise TaskSourceError(f"{path} has no rows")
        keys = table.labels(key_column, "key_column")
        time = (
            None if time_column is None else table.numbers([time_column], "time_column").squeeze(-1).double()
        )
        return cls.from_columns(
            keys,
            x=table.numbers(feature_columns),
            y=table.numbers([target_column], "target_column"),
            time=time,
        )


class GroupedTableSource(SeededSource):
    """Each group of a :class:`GroupedTable` is a regression task (see the module docstring).

    Args:
        table: the rows and their groups.
        n_query, query_fraction: the query size per group: a count or a fraction (give exactly one).
        k_shot: support rows per task; None uses every row not in the query.
        min_group_size, max_group_size: keep only groups with this many rows (default minimum: what
            one task needs, ``k_shot + n_query``, at least 2).
        query_order: ``"random"`` (seeded) or ``"last"`` (the latest rows by ``table.time``).
        seed: an int or a ``torch.Generator``.
    """

    kind: TaskKind = "regression"

    def __init__(
        self,
        table: GroupedTable,
        *,
        n_query: int | None = None,
        query_fraction: float | None = None,
        k_shot: int | None = None,
        min_group_size: int | None = None,
        max_group_size: int | None = None,
        query_order: Literal["random", "last"] = "random",
        seed: int | torch.Generator = 0,
    ) -> None:
        if (n_query is None) == (query_fraction is None):
            raise TaskSourceError(
                f"give exactly one of n_query and query_fraction, got {n_query=}, {query_fraction=}"
            )
        if n_query is not None and n_query < 1:
            raise TaskSourceError(f"n_query must be >= 1, got {n_query}")
        if query_fraction is not None and not 0.0 < query_fraction < 1.0:
            raise TaskSourceError(f"query_fraction must lie in (0, 1), got {query_fraction}")
        if k_shot is not None and k_shot < 1:
            raise TaskSourceError(
                f"k_shot must be >= 1 (or None for all rows not in the query), got {k_shot}"
            )
        if query_order not in ("random", "last"):
            raise TaskSourceError(f"query_order={query_order!r}; use 'random' or 'last'")
        if query_order == "last" and table.time is None:
            raise TaskSourceError(
                "query_order='last' needs the table's time column; give time= (or time_column=)"
            )
        need = max(2, (k_shot or 1) + (n_query or 1))
        low = need if min_group_size is None else min_group_size
        if low < need:
            raise TaskSourceError(
                f"min_group_size = {low} but one task needs {need} rows (k_shot + n_query); raise it"
            )
        sizes = torch.bincount(table.groups, minlength=len(table.group_names))
        keep = (sizes >= low) & (sizes <= (max_group_size if max_group_size is not None else sizes.max()))
        kept = keep.nonzero().flatten().tolist()
        if not kept:
            raise TaskSourceError(
                f"no group has between {low} and {max_group_size or 'any number of'} rows (largest: {int(sizes.max())}); "
                "lower min_group_size"
            )
        order = torch.arange(len(table.groups))
        if table.time is not None and query_order == "last":
            order = torch.argsort(table.time, stable=True)  # ties keep table order
        order = order[
            torch.argsort(table.groups[order], stable=True)
        ]  # a group's rows contiguous, in that order
        offsets = torch.cumsum(sizes, 0) - sizes
        self._rows = tuple(order[int(offsets[g]) : int(offsets[g] + sizes[g])] for g in kept)
        self.table, self.names = table, tuple(table.group_names[g] for g in kept)
        self.n_query, self.query_fraction, self.k_shot, self.query_order = (
            n_query,
            query_fraction,
            k_shot,
            query_order,
        )
        self.batchable = k_shot is not None and n_query is not None
        self.generator = seeded_generator(seed)

    def _query_size(self, size: int) -> int:
        if self.n_query is not None:
            return self.n_query
        assert self.query_fraction is not None
        return min(size - 1, max(1, round(self.query_fraction * size)))

    def sample(self, name: str | None = None) -> NamedTask:
        """The task of group ``name``, or of a group drawn uniformly (seeded)."""
        g = self.generator
        i = pick(self.names, name, g, "grouped table")
        rows = self._rows[i]
        q = self._query_size(len(rows))
        if self.query_order == "last":
            query, rest = rows[len(rows) - q :], rows[: len(rows) - q]
            rest = rest[torch.randperm(len(rest), generator=g)]
        else:
            perm = rows[torch.randperm(len(rows), generator=g)]
            query, rest = perm[:q], perm[q:]
        support = rest if self.k_shot is None else rest[: self.k_shot]
        t = self.table
        return NamedTask(t.x[support], t.y[support], t.x[query], t.y[query], name=self.names[i])
