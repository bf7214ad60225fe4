"""Tasks given as files: one file (or group of split files) per task, each with its own label space.

A task file is named ``<task>[.<split>][.<ext>]``: ``bank_intents.csv`` is the task ``bank_intents``;
``apparel.t2.train`` / ``apparel.t2.test`` are the ``train`` and ``test`` files of the task
``apparel.t2`` (the layout of the ARSC sentiment benchmark). Extensions ``.csv`` (header row),
``.tsv`` (no header, ``text<TAB>label``) and ``.jsonl`` say the format; files without one (ARSC's) are
read in ``format`` when given and their name ends in a split (``train``, ``dev``, ``val``, ``test`` or a
split named in the arguments). Anything else in the folder (``README.md``, ``SHA256SUMS``) is ignored.

Two ways to make a task from its files:

- **sampled** (default): the task's pool is its file for ``split`` (or its split-less file); each
  ``sample()`` draws ``n_way`` of its labels (all of them, in name order, when ``n_way`` is None) and
  ``k_shot`` support + ``n_query`` query examples of each, support and query ordered label by label;
- **fixed** (``support=`` and ``query=`` split names): the benchmark's own support and query files,
  used verbatim and in file order; the label space is the support file's labels.

Examples are strings (``text_column``; a task's ``x`` is an index column into ``source.texts``, see
:mod:`metadl.tasks.source`) or numeric vectors (``feature_columns``; a JSON Lines column may hold a list).

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "pets.csv").write_text("text,label\\npurrs,cat\\nmeows,cat\\nbarks,dog\\nwags,dog\\n")
    >>> source = TaskFileSource(root, k_shot=1, n_query=1, seed=0)
    >>> task = source.sample()
    >>> task.name, task.classes, task.support_y.tolist(), len(task.query_texts())
    ('pets', ('cat', 'dog'), [0, 1], 2)
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from metadl.tasks.source import NamedTask, SeededSource, TaskKind, TaskSourceError, pick, seeded_generator
from metadl.tasks.tables import FORMATS, MAX_FILE_BYTES, MAX_ROWS, TableFormat, format_of, read_table

SPLITS = ("train", "dev", "val", "test")


@dataclass(frozen=True)
class _TaskFiles:
    """One task's label space and examples (global example ids): per class, or a fixed support/query."""

    name: str
    classes: tuple[str, ...]
    members: tuple[Tensor, ...] = ()  # sampled: ids of each class's examples
    fixed: tuple[Tensor, Tensor, Tensor, Tensor] | None = (
        None  # fixed: support ids, labels, query ids, labels
    )


class TaskFileSource(SeededSource):
    """A folder of task files; every task keeps its own label space (see the module docstring).

    Args:
        root: the folder (not searched recursively).
        n_way, k_shot, n_query: sampled tasks: labels per task (None: all the task's labels), support
            and query examples per label.
        split: sampled tasks: which split file is a task's pool (None: the file without a split).
        support, query: fixed tasks: the split names of the support and query files (give both).
        format: ``"csv"``, ``"tsv"`` or ``"jsonl"`` for files without an extension (e.g. ARSC's).
        text_column, label_column: CSV/JSON Lines column names; a TSV line is ``tsv_columns``.
        feature_columns: numeric columns to use as ``x`` instead of the text column.
        include, exclude: shell patterns on task names (hold out ``exclude=["books.*"]``).
        max_file_bytes, max_rows: bounds on each file, checked before it is read / while parsing.
        seed: an int or a ``torch.Generator``.
    """

    kind: TaskKind = "classification"

    def __init__(
        self,
        root: str | Path,
        *,
        n_way: int | None = None,
        k_shot: int = 1,
        n_query: int = 1,
        split: str | None = None,
        support: str | None = None,
        query: str | None = None,
        format: TableFormat | None = None,
        text_column: str = "text",
        label_column: str = "label",
        feature_columns: Sequence[str] | None = None,
        tsv_columns: Sequence[str] = ("text", "label"),
        include: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
        max_file_bytes: int = MAX_FILE_BYTES,
        max_rows: int = MAX_ROWS,
        seed: int | torch.Generator = 0,
    ) -> None:
        self.root = Path(root)
        if (support is None) != (query is None):
            raise TaskSourceError(
                f"give both support= and query= split names for fixed tasks, got {support=}, {query=}"
            )
        if format is not None and format not in FORMATS:
            raise TaskSourceError(f"format={format!r} is not one of {list(FORMATS)}")
        if k_shot < 1 or n_query < 0 or (n_way is not None and n_way < 1):
            raise TaskSourceError(
                f"need n_way >= 1, k_shot >= 1, n_query >= 0; got {n_way=}, {k_shot=}, {n_query=}"
            )
        if feature_columns is not None and not feature_columns:
            raise TaskSourceError("feature_columns is empty; name at least one column, or None for text")
        self.fixed = support is not None
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self._format, self._columns = format, (text_column, label_column, feature_columns, tuple(tsv_columns))
        self._bounds = (max_file_bytes, max_rows)
        self._texts: list[str] = []
        self._features: list[Tensor] = []
        self._width_source: tuple[Path, int] | None = None

        splits = {*SPLITS, *(s for s in (split, support, query) if s is not None)}
        groups = self._find(splits, include, exclude)
        wanted = (support, query) if self.fixed else (split,)
        tasks = []
        for name, files in sorted(groups.items()):
            present = [s for s in wanted if s in files]
            if not present:
                continue
            if len(present) < len(wanted):
                lost = next(s for s in wanted if s not in files)
                raise TaskSourceError(
                    f"task {name!r} has {files[present[0]].name} but no {lost!r} file in {self.root}"
                )
            tasks.append(
                self._fixed_task(name, files[support], files[query])
                if support and query
                else self._pool_task(name, files[split])
            )
        if not groups:
            raise TaskSourceError(
                f"no task files in {self.root} (*.csv, *.tsv, *.jsonl, or <task>.<split> with format=); "
                "check the folder"
            )
        if not tasks:
            where = f"splits {support!r} and {query!r}" if self.fixed else f"split {split!r}"
            raise TaskSourceError(
                f"{self.root} has task files ({sorted(groups)[:5]}) but none with {where}; "
                "set split= (or support= and query=) to the splits its file names end in"
            )
        self._tasks = tuple(tasks)
        self.names = tuple(t.name for t in tasks)
        self.texts: tuple[str, ...] | None = tuple(self._texts) if feature_columns is None else None
        self._x = torch.cat(self._features) if feature_columns is not None else None
        counts = {len(t.classes) for t in tasks}
        self.batchable = not self.fixed and (n_way is not None or len(counts) == 1)
        self.generator = seeded_generator(seed)

    def _find(
        self, splits: set[str], include: Sequence[str], exclude: Sequence[str]
    ) -> dict[str, dict[str | None, Path]]:
        """Task name -> {split or None: file}, for the task files in ``root``."""
        if not self.root.is_dir():
            raise TaskSourceError(
                f"task folder {self.root} does not exist (or is not a folder); check the path"
            )
        groups: dict[str, dict[str | None, Path]] = {}
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            stem = path.name if format_of(path) is None else path.name[: -len(path.suffix)]
            name, _, last = stem.rpartition(".")
            split = last if name and last in splits else None
            name = name if split else stem
            if format_of(path) is None and (self._format is None or split is None):
                continue  # not a task file: README.md, SHA256SUMS, ...
            if not any(fnmatch.fnmatchcase(name, p) for p in include) or any(
                fnmatch.fnmatchcase(name, p) for p in exclude
            ):
                continue
            if split in groups.setdefault(name, {}):
                raise TaskSourceError(
                    f"task {name!r} has two {split or 'split-less'} files: {groups[name][split].name} and {path.name}; keep one"
                )
            groups[name][split] = path
        return groups

    def _read(self, path: Path) -> tuple[Tensor, list[str]]:
        """Append the file's examples to the store; their global ids and their label names."""
        text_column, label_column, feature_columns, tsv_columns = self._columns
        fmt = format_of(path) or self._format
        assert fmt is not None  # _find keeps only files with a format
        table = read_table(
            path, fmt, tsv_columns=tsv_columns, max_bytes=self._bounds[0], max_rows=self._bounds[1]
        )
        if not len(table):
            raise TaskSourceError(f"{path} has no examples; remove it or fill it")
        labels = table.labels(label_column)
        start = len(self._texts) + sum(len(f) for f in self._features)
        if feature_columns is None:
            self._texts.extend(table.texts(text_column))
        else:
            x = table.numbers(feature_columns)
            if self._width_source is None:
                self._width_source = (path, x.shape[1])
            elif x.shape[1] != self._width_source[1]:
                first, width = self._width_source
                raise TaskSourceError(
                    f"inconsistent feature widths: {path.name} has {x.shape[1]} features, {first.name} has {width}"
                )
            self._features.append(x)
        return torch.arange(start, start + len(labels)), labels

    def _pool_task(self, name: str, path: Path) -> _TaskFiles:
        ids, labels = self._read(path)
        classes = tuple(sorted(set(labels)))
        if self.n_way is not None and self.n_way > len(classes):
            raise TaskSourceError(
                f"task {name!r} has {len(classes)} labels {list(classes)} but n_way = {self.n_way}; lower n_way or exclude the task"
            )
        label_ids = torch.tensor([classes.index(label) for label in labels])
        members = tuple(ids[label_ids == c] for c in range(len(classes)))
        need = self.k_shot + self.n_query
        for label, m in zip(classes, members, strict=True):
            if len(m) < need:
                raise TaskSourceError(
                    f"task {name!r}: label {label!r} has {len(m)} examples but k_shot + n_query = {need}; "
                    f"lower k_shot or n_query, or exclude the task"
                )
        return _TaskFiles(name, classes, members=members)

    def _fixed_task(self, name: str, support: Path, query: Path) -> _TaskFiles:
        support_ids, support_labels = self._read(support)
        query_ids, query_labels = self._read(query)
        classes = tuple(sorted(set(support_labels)))
        unknown = sorted(set(query_labels) - set(classes))
        if unknown:
            raise TaskSourceError(
                f"task {name!r}: query labels {unknown} of {query.name} never occur in {support.name}"
            )
        encode = {label: i for i, label in enumerate(classes)}
        fixed = (
            support_ids,
            torch.tensor([encode[label] for label in support_labels]),
            query_ids,
            torch.tensor([encode[label] for label in query_labels]),
        )
        return _TaskFiles(name, classes, fixed=fixed)

    def _x_of(self, ids: Tensor) -> Tensor:
        return ids.unsqueeze(-1) if self._x is None else self._x[ids]

    def sample(self, name: str | None = None) -> NamedTask:
        """A task: the one called ``name``, or one drawn uniformly (seeded)."""
        g = self.generator
        task = self._tasks[pick(self.names, name, g, f"task folder {self.root}")]
        if task.fixed is not None:
            support_ids, support_y, query_ids, query_y = task.fixed
            classes = task.classes
        else:
            n_all = len(task.classes)
            chosen = (
                list(range(n_all))
                if self.n_way is None
                else torch.randperm(n_all, generator=g)[: self.n_way].tolist()
            )
            k, parts = self.k_shot, []
            for c in chosen:
                members = task.members[c]
                parts.append(members[torch.randperm(len(members), generator=g)[: k + self.n_query]])
            support_ids = torch.cat([p[:k] for p in parts])
            query_ids = torch.cat([p[k:] for p in parts])
            support_y = torch.arange(len(chosen)).repeat_interleave(k)
            query_y = torch.arange(len(chosen)).repeat_interleave(self.n_query)
            classes = tuple(task.classes[c] for c in chosen)
        return NamedTask(
            self._x_of(support_ids),
            support_y,
            self._x_of(query_ids),
            query_y,
            name=task.name,
            classes=classes,
            texts=self.texts,
        )
