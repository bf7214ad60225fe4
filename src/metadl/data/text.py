"""Labelled sentences: ``(text, label)`` files, a folder of ``.txt`` files per class, CLINC150 and BANKING77.

Everything here returns a :class:`TextDataset`: the strings, int64 labels ``0..C-1`` and the class
names. Text stays text: an encoder (:mod:`metadl.models.text`) turns it into features or token ids later,
and a task made from it indexes ``texts`` (the design of :mod:`metadl.tasks.source`).

Files are parsed by :mod:`metadl.tasks.tables` (one reader for task files and datasets), so the errors
are the same: one line naming the file, the line and the fix, for a missing column, an empty text,
bytes that are not UTF-8 (with their line number) or a malformed line. :meth:`TextDataset.require`
checks that every label has enough examples for ``k_shot + n_query``.

Formats:

- CSV with a header (``text,label``; ``text_column=`` / ``label_column=`` name other columns) or JSON
  Lines (``{"text": ..., "label": ...}`` per line), chosen by the file's extension;
- a folder with one sub-folder per class holding ``.txt`` files (one example per non-empty line);
- CLINC150 (``data_full.json``: ``train``/``val``/``test`` lists of ``[text, intent]`` plus
  ``oos_train``/``oos_val``/``oos_test``; ``domains.json``): 150 in-scope intents in 10 domains;
- BANKING77 (``train.csv``/``test.csv`` with columns ``text,category``): 77 intents.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "intents.csv"
    >>> _ = path.write_text("text,label\\nhi there,greet\\nbye now,leave\\nhello,greet\\n")
    >>> ds = read_labelled_texts(path)
    >>> ds.texts, ds.labels.tolist(), ds.class_names
    (('hi there', 'bye now', 'hello'), [0, 1, 0], ('greet', 'leave'))
    >>> ds.require(2)
    Traceback (most recent call last):
    ...
    metadl.data.text.TextDataError: intents.csv: label 'leave' has 1 examples but k_shot + n_query = 2; lower k_shot or n_query, or drop the label
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from metadl.tasks.source import TaskSourceError
from metadl.tasks.tables import MAX_FILE_BYTES, format_of, read_table, read_text

OOS_LABEL = "oos"


class TextDataError(TaskSourceError):
    """Text data cannot be read as given (the message names the file, the line or label, and the fix)."""


@dataclass(frozen=True)
class TextDataset:
    """Sentences with labels.

    Attributes:
        texts: ``N`` non-empty strings.
        labels: ``(N,)`` int64 in ``0..C-1``; ``class_names[labels[i]]`` names the label of ``texts[i]``.
        class_names: ``C`` names, sorted unless a loader fixes the order.
        name: for messages (a file name, ``"clinc150/test"``).
    """

    texts: tuple[str, ...]
    labels: Tensor
    class_names: tuple[str, ...]
    name: str = "texts"

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise TextDataError(f"{self.name}: {len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    @staticmethod
    def from_names(texts: Sequence[str], labels: Sequence[str], name: str = "texts") -> TextDataset:
        """Build from label names (classes sorted by name)."""
        classes = tuple(sorted(set(labels)))
        index = {c: i for i, c in enumerate(classes)}
        return TextDataset(
            tuple(texts), torch.tensor([index[y] for y in labels], dtype=torch.long), classes, name
        )

    @property
    def class_counts(self) -> Tensor:
        return torch.bincount(self.labels, minlength=len(self.class_names))

    def label_names(self) -> list[str]:
        """The label of every text, as its name."""
        return [self.class_names[i] for i in self.labels.tolist()]

    def require(self, need: int) -> None:
        """Raise :class:`TextDataError` unless every class has at least ``need`` (= k_shot + n_query) examples."""
        counts = self.class_counts.tolist()
        for label, count in zip(self.class_names, counts, strict=True):
            if count < need:
                raise TextDataError(
                    f"{self.name}: label {label!r} has {count} examples but k_shot + n_query = {need}; "
                    "lower k_shot or n_query, or drop the label"
                )

    def subset(self, keep: Tensor, name: str | None = None) -> TextDataset:
        """The examples where the bool mask ``keep`` ``(N,)`` is True (same class names)."""
        idx = keep.nonzero().flatten().tolist()
        return TextDataset(
            tuple(self.texts[i] for i in idx), self.labels[keep], self.class_names, name or self.name
        )


def read_labelled_texts(
    path: str | os.PathLike[str],
    *,
    text_column: str = "text",
    label_column: str = "label",
    max_bytes: int = MAX_FILE_BYTES,
) -> TextDataset:
    """``(text, label)`` rows of a CSV (header row) or JSON Lines file, or a folder of ``.txt`` files per class.

    Raises :class:`TextDataError` for a missing file or column, an empty text or label, non-UTF-8 bytes
    (with the line), or a file with no rows.
    """
    p = Path(path)
    if p.is_dir():
        return text_folder(p)
    fmt = format_of(p)
    if fmt not in ("csv", "jsonl"):
        raise TextDataError(
            f"{p}: expected a .csv or .jsonl file of (text, label) rows, or a folder of <class>/*.txt"
        )
    if not p.is_file():
        raise TextDataError(f"{p} does not exist; check the path")
    try:
        table = read_table(p, fmt, max_bytes=max_bytes)
        if not len(table):
            raise TextDataError(f"{p} has no rows; it needs a header and one (text, label) row per line")
        texts = table.texts(text_column)
        labels = table.labels(label_column)
    except TextDataError:
        raise
    except TaskSourceError as err:
        raise TextDataError(str(err)) from None
    for text, line in zip(texts, table.lines, strict=True):
        if not text.strip():
            raise TextDataError(f"{p} line {line}: the text is only whitespace; every row needs a text")
    return TextDataset.from_names(texts, labels, name=p.name)


def text_folder(root: str | os.PathLike[str]) -> TextDataset:
    """``root/<class>/*.txt``: every non-empty line of a class's files is one example of that class."""
    base = Path(root)
    if not base.is_dir():
        raise TextDataError(
            f"{base} is not a folder; give a folder with one sub-folder of .txt files per class"
        )
    texts: list[str] = []
    labels: list[str] = []
    for folder in sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for file in sorted(folder.glob("*.txt")):
            for line in read_text(file).splitlines():
                if line.strip():
                    texts.append(line.strip())
                    labels.append(folder.name)
    if not texts:
        raise TextDataError(
            f"{base} holds no examples; expected {base}/<class>/<file>.txt with one sentence per line"
        )
    return TextDataset.from_names(texts, labels, name=base.name)


def _json(path: Path) -> object:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise TextDataError(f"{path} line {err.lineno}: not valid JSON ({err.msg})") from None
    except TaskSourceError as err:
        raise TextDataError(str(err)) from None


CLINC_SPLITS = ("train", "val", "test")


def clinc150(
    root: str | os.PathLike[str], split: str = "train", *, oos: bool = False, domains: Sequence[str] = ()
) -> TextDataset:
    """One split of CLINC150 (Larson et al. 2019) from ``root/data_full.json``.

    Args:
        split: ``"train"`` (100 per intent), ``"val"`` (20) or ``"test"`` (30).
        oos: also include the split's out-of-scope queries under the label ``"oos"``.
        domains: keep only the intents of these domains (``domains.json``; e.g. ``["banking"]``).
    """
    base = Path(root)
    if split not in CLINC_SPLITS:
        raise TextDataError(f"clinc150: split={split!r}; choose one of {list(CLINC_SPLITS)}")
    data = _json(_need(base / "data_full.json", "clinc150"))
    keys = [split] + ([f"oos_{split}"] if oos else [])
    if not isinstance(data, dict) or any(not isinstance(data.get(k), list) for k in keys):
        raise TextDataError(f"{base / 'data_full.json'}: expected lists under the keys {keys}")
    rows = [row for k in keys for row in data[k]]
    keep: set[str] | None = None
    if domains:
        table = _json(_need(base / "domains.json", "clinc150"))
        if not isinstance(table, dict):
            raise TextDataError(f"{base / 'domains.json'}: expected an object of domain -> intents")
        unknown = sorted(set(domains) - set(table))
        if unknown:
            raise TextDataError(f"clinc150: unknown domains {unknown}; choose from {sorted(table)}")
        keep = {intent for d in domains for intent in table[d]} | ({OOS_LABEL} if oos else set())
    texts, labels = [], []
    for i, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) == 2 and all(isinstance(v, str) and v for v in row)):
            raise TextDataError(
                f"{base / 'data_full.json'}: item {i} of {keys} is {row!r}, not [text, intent]"
            )
        if keep is None or row[1] in keep:
            texts.append(row[0])
            labels.append(row[1])
    return TextDataset.from_names(texts, labels, name=f"clinc150/{split}")


def banking77(root: str | os.PathLike[str], split: str = "train") -> TextDataset:
    """One split of BANKING77 (Casanueva et al. 2020): ``root/{train,test}.csv`` with columns ``text,category``."""
    if split not in ("train", "test"):
        raise TextDataError(f"banking77: split={split!r}; choose 'train' or 'test'")
    path = _need(Path(root) / f"{split}.csv", "banking77")
    ds = read_labelled_texts(path, label_column="category")
    return TextDataset(ds.texts, ds.labels, ds.class_names, name=f"banking77/{split}")


def _need(path: Path, dataset: str) -> Path:
    if not path.is_file():
        raise TextDataError(
            f"{dataset}: {path} not found; point root= at the folder holding the dataset's files"
        )
    return path
