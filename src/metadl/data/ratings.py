"""Explicit ratings (user, item, rating, time) with categorical user and item features.

Every reader (MovieLens 100K / 1M, RecBole atomic files, a generic CSV: ``metadl.data.movielens`` and
:func:`read_ratings_csv`) returns one :class:`Ratings`: users and items are re-indexed ``0..n-1`` (the
original ids kept in ``user_ids`` / ``item_ids``), and features are integer codes per column with
``0`` reserved for "unknown" (a user missing from the feature table, an empty field), so an
embedding table of ``size`` rows covers every value. Multi-valued item fields (genres) are a multi-hot
matrix. A (user, item) pair rated twice keeps its latest rating (by time, then file order), so a
user's ratings are a set of distinct items and a query item can never also sit in the support.

Malformed input fails with :class:`RatingsFormatError`, one line naming the file and line number.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.csv"
    >>> _ = p.write_text("user,item,rating\\nann,film1,4\\nann,film2,2\\nbob,film1,5\\n")
    >>> r = read_ratings_csv(p)
    >>> r.user_ids, r.item_ids, r.rating.tolist()
    (('ann', 'bob'), ('film1', 'film2'), [4.0, 2.0, 5.0])
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor


class RatingsFormatError(ValueError):
    """A ratings or feature file is malformed (the message names the file and line)."""


@dataclass(frozen=True)
class Features:
    """Categorical features of users or items, row ``i`` for entity ``i``.

    Attributes:
        columns: the name of each categorical column.
        codes: ``(n, len(columns))`` int64; ``0`` is "unknown", ``1..size-1`` index ``vocab[c]``.
        vocab: per column, the values of codes ``1, 2, ...``.
        multi_hot: ``(n, len(tags))`` float32 for a multi-valued field (genres), or ``(n, 0)``.
        tags: the names of the ``multi_hot`` columns.
    """

    columns: tuple[str, ...]
    codes: Tensor
    vocab: tuple[tuple[str, ...], ...]
    multi_hot: Tensor
    tags: tuple[str, ...] = ()

    @property
    def sizes(self) -> tuple[int, ...]:
        """Embedding rows each column needs (its values plus "unknown")."""
        return tuple(len(v) + 1 for v in self.vocab)

    @classmethod
    def empty(cls, n: int) -> Features:
        return cls((), torch.zeros(n, 0, dtype=torch.long), (), torch.zeros(n, 0))

    @classmethod
    def build(
        cls,
        ids: Sequence[str],
        values: Mapping[str, Mapping[str, str]],
        columns: Sequence[str],
        tags: Mapping[str, Sequence[str]] | None = None,
    ) -> Features:
        """Encode ``values[id][column]`` (strings; missing or empty -> 0) and ``tags[id]`` (multi-hot).

        Example:
            >>> f = Features.build(["u1", "u2", "u3"], {"u1": {"sex": "F"}, "u2": {"sex": "M"}}, ["sex"])
            >>> f.codes.flatten().tolist(), f.vocab, f.sizes
            ([1, 2, 0], (('F', 'M'),), (3,))
        """
        vocab = tuple(tuple(sorted({row[c] for row in values.values() if row.get(c, "")})) for c in columns)
        lookup = [{v: i + 1 for i, v in enumerate(vs)} for vs in vocab]
        codes = torch.tensor(
            [[lookup[j].get(values.get(u, {}).get(c, ""), 0) for j, c in enumerate(columns)] for u in ids],
            dtype=torch.long,
        ).view(len(ids), len(columns))
        tags = tags or {}
        names = tuple(sorted({t for ts in tags.values() for t in ts}))
        where = {t: i for i, t in enumerate(names)}
        hot = torch.zeros(len(ids), len(names))
        for row, u in enumerate(ids):
            for t in tags.get(u, ()):
                hot[row, where[t]] = 1.0
        return cls(tuple(columns), codes, vocab, hot, names)


@dataclass(frozen=True)
class Ratings:
    """A ratings table with its users' and items' features.

    Attributes:
        user, item: ``(N,)`` int64 indices into ``user_ids`` / ``item_ids``.
        rating: ``(N,)`` float32.
        time: ``(N,)`` float64 timestamps (file order when the source has none).
        user_ids, item_ids: the original ids.
        user_features, item_features: :class:`Features` with one row per user / item.
    """

    user: Tensor
    item: Tensor
    rating: Tensor
    time: Tensor
    user_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    user_features: Features
    item_features: Features

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.rating)


@dataclass(frozen=True)
class RatingRow:
    """One parsed rating and where it came from."""

    user: str
    item: str
    rating: float
    time: float
    where: str


def lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """``(line number, line without its newline)`` for the non-blank lines of ``path``."""
    if not path.is_file():
        raise RatingsFormatError(f"{path} does not exist; check the folder or the file name")
    try:
        with open(path, encoding=encoding, newline="") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    yield number, line.rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise RatingsFormatError(
            f"{path}: not {encoding} text ({err.reason}); pass the file's encoding"
        ) from None


def split_fields(line: str, sep: str, n: int, where: str, at_least: bool = False) -> list[str]:
    """``line.split(sep)``, checked to have ``n`` fields (or at least ``n``)."""
    fields = line.split(sep)
    if len(fields) < n or (not at_least and len(fields) != n):
        raise RatingsFormatError(
            f"{where}: expected {n}{' or more' if at_least else ''} fields separated by {sep!r}, got {len(fields)}"
        )
    return fields


def number(text: str, what: str, where: str) -> float:
    """A finite float parsed from ``text``, or a one-line error naming ``what`` and ``where``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise RatingsFormatError(f"{where}: {what} {text!r} is not a finite number")
    return value


def assemble(rows: Sequence[RatingRow], user_features: Features | None = None, item_features: Features | None = None,
             user_ids: Sequence[str] | None = None, item_ids: Sequence[str] | None = None) -> Ratings:  # fmt: skip
    """Index users and items (given id orders, else first appearance) and keep one rating per pair."""
    if not rows:
        raise RatingsFormatError("no ratings were read; the ratings file is empty")
    latest: dict[tuple[str, str], int] = {}
    for i, r in enumerate(rows):
        j = latest.get((r.user, r.item))
        if j is None or r.time >= rows[j].time:
            latest[(r.user, r.item)] = i
    kept = sorted(latest.values())
    users = {u: i for i, u in enumerate(user_ids or dict.fromkeys(r.user for r in rows))}
    items = {t: i for i, t in enumerate(item_ids or dict.fromkeys(r.item for r in rows))}
    for u in dict.fromkeys(rows[i].user for i in kept):
        users.setdefault(u, len(users))
    for t in dict.fromkeys(rows[i].item for i in kept):
        items.setdefault(t, len(items))
    uf = user_features or Features.empty(len(users))
    itf = item_features or Features.empty(len(items))
    if len(uf.codes) != len(users) or len(itf.codes) != len(items):
        raise RatingsFormatError(
            f"ratings name {len(users)} users / {len(items)} items but the feature tables have "
            f"{len(uf.codes)} / {len(itf.codes)} rows; build features over the same ids"
        )
    return Ratings(
        user=torch.tensor([users[rows[i].user] for i in kept], dtype=torch.long),
        item=torch.tensor([items[rows[i].item] for i in kept], dtype=torch.long),
        rating=torch.tensor([rows[i].rating for i in kept], dtype=torch.float32),
        time=torch.tensor([rows[i].time for i in kept], dtype=torch.float64),
        user_ids=tuple(users),
        item_ids=tuple(items),
        user_features=uf,
        item_features=itf,
    )


def read_csv_rows(path: Path, key: str) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    """Header and ``(where, row)`` of each data line of a CSV that has a column named ``key``."""
    numbered = list(lines(path))
    if not numbered:
        raise RatingsFormatError(f"{path} is empty; it needs a header row naming a {key!r} column")
    header = next(csv.reader([numbered[0][1]]))
    if key not in header:
        raise RatingsFormatError(f"{path}:{numbered[0][0]}: the header {header} has no {key!r} column")
    out: list[tuple[str, dict[str, str]]] = []
    for at, line in numbered[1:]:
        fields = next(csv.reader([line]))
        if len(fields) != len(header):
            raise RatingsFormatError(f"{path}:{at}: {len(fields)} fields but the header has {len(header)}")
        out.append((f"{path}:{at}", dict(zip(header, fields, strict=True))))
    return header, out


def read_feature_csv(path: str | Path, key: str, ids: Sequence[str], tag_column: str = "genres") -> Features:
    """Categorical features from a CSV with an id column ``key``; ``tag_column`` holds ``|``-separated tags.

    Every other column is categorical (its distinct strings are the values). Ids absent from the file
    get code 0 ("unknown"); a duplicate id is an error.
    """
    path = Path(path)
    header, rows = read_csv_rows(path, key)
    values: dict[str, dict[str, str]] = {}
    tags: dict[str, list[str]] = {}
    for where, row in rows:
        k = row[key]
        if k in values:
            raise RatingsFormatError(f"{where}: {key} {k!r} appears twice; give each one row")
        values[k] = row
        if tag_column in row:
            tags[k] = [t for t in row[tag_column].split("|") if t]
    columns = [c for c in header if c not in (key, tag_column)]
    return Features.build(ids, values, columns, tags)


def read_ratings_csv(
    path: str | Path,
    *,
    user_features: str | Path | None = None,
    item_features: str | Path | None = None,
) -> Ratings:
    """Ratings from a CSV with a header ``user,item,rating[,timestamp]`` (extra columns are ignored).

    Args:
        path: the ratings file.
        user_features: optional CSV keyed by ``user`` (every other column categorical).
        item_features: optional CSV keyed by ``item``; a ``genres`` column holds ``|``-separated tags.
    """
    path = Path(path)
    header, rows = read_csv_rows(path, "user")
    for column in ("item", "rating"):
        if column not in header:
            raise RatingsFormatError(f"{path}:1: the header {header} has no {column!r} column")
    timed = "timestamp" in header
    parsed = [
        RatingRow(
            row["user"],
            row["item"],
            number(row["rating"], "rating", where),
            number(row["timestamp"], "timestamp", where) if timed else float(i),
            where,
        )  # fmt: skip
        for i, (where, row) in enumerate(rows)
    ]
    base = assemble(parsed)
    uf = None if user_features is None else read_feature_csv(user_features, "user", base.user_ids)
    itf = None if item_features is None else read_feature_csv(item_features, "item", base.item_ids)
    return assemble(parsed, uf, itf, base.user_ids, base.item_ids)
