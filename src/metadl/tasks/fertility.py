"""A real meta-regression family: one task per country, its total fertility rate over the years.

The data are the World Bank's "Fertility rate, total (births per woman)" (indicator SP.DYN.TFRT.IN,
1960-2013, CC BY 4.0), as shipped inside the ``statsmodels`` wheel (``statsmodels/datasets/fertility/
fertility.csv``; install with ``pip install metadl[regression]``), so the family builds offline. The file
is read directly (``csv``), without importing statsmodels or pandas.

Each country is a task: ``x`` the year as decades since 1960 (``(year - 1960) / 10``, float ``(n, 1)``),
``y`` births per woman (float ``(n, 1)``, unscaled). The five regional aggregates in the file
(:data:`AGGREGATES`) are dropped, since they average the countries, and so are countries with fewer than
``min_years`` observed years. Countries are split once into ``train`` / ``val`` / ``test`` (60/20/20) by a
fixed seeded permutation of their codes, so the test countries are never seen in meta-training.

Curves differ in level and in when and how fast the demographic transition happened, but share their
shape: a few years of one country say little to a per-task regressor and a lot to a learner that has
seen the others.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import torch

from metadl.tasks.group_split import Split, split_groups
from metadl.tasks.grouped import GroupedTable, GroupedTableSource
from metadl.tasks.source import TaskSourceError

AGGREGATES = ("CAA", "LCN", "OED", "OSS", "PSS")  # regions and country groups, not countries
FIRST_YEAR = 1960


class MissingExtraError(TaskSourceError):
    """An optional package that a task family reads its data from is not installed."""


def statsmodels_fertility_csv() -> Path:
    """Path of the fertility CSV inside the installed statsmodels package (statsmodels is not imported)."""
    spec = importlib.util.find_spec("statsmodels")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            "the fertility task family reads its data from the statsmodels package; "
            "install it with `pip install metadl[regression]` (or pass path=)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "fertility" / "fertility.csv"


def read_fertility(path: str | Path | None = None, *, min_years: int = 40) -> GroupedTable:
    """All countries of the World Bank fertility file (wide format: one row per country, one column per year).

    Args:
        path: the CSV; None reads the copy inside statsmodels.
        min_years: drop countries with fewer observed years.
    """
    path = statsmodels_fertility_csv() if path is None else Path(path)
    if not path.is_file():
        raise TaskSourceError(f"fertility data: {path} is not a file")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0] if rows else []
    if header[:2] != ["Country Name", "Country Code"] or len(header) < 5:
        raise TaskSourceError(
            f"{path}: expected the World Bank wide format (Country Name, Country Code, ..., one column per year)"
        )
    years = [int(y) for y in header[4:]]
    keys, xs, ys = [], [], []
    for line, row in enumerate(rows[1:], start=2):
        code = row[1]
        if code in AGGREGATES:
            continue
        observed = [(year, v) for year, v in zip(years, row[4:], strict=False) if v.strip()]
        if len(observed) < min_years:
            continue
        try:
            values = [float(v) for _, v in observed]
        except ValueError:
            raise TaskSourceError(f"{path}:{line}: a fertility rate that is not a number in {code}") from None
        keys += [code] * len(observed)
        xs += [(year - FIRST_YEAR) / 10 for year, _ in observed]
        ys += values
    if not keys:
        raise TaskSourceError(f"{path}: no country has {min_years} observed years; lower min_years")
    return GroupedTable.from_columns(keys, x=torch.tensor(xs).unsqueeze(-1), y=torch.tensor(ys))


def split_countries(names: tuple[str, ...], split: Split, seed: int = 0) -> list[str]:
    """The countries of one split: a fixed seeded 60/20/20 permutation of the sorted codes.

    Example:
        >>> codes = tuple(f"C{i:02d}" for i in range(10))
        >>> [len(split_countries(codes, s)) for s in ("train", "val", "test")]
        [6, 2, 2]
    """
    return split_groups(names, split, fractions=(0.6, 0.2, 0.2), seed=seed)


def fertility_table(
    split: Split, path: str | Path | None = None, *, min_years: int = 40, split_seed: int = 0
) -> GroupedTable:
    """The rows of one split's countries (the split drawn with ``split_seed``) as a :class:`GroupedTable`."""
    table = read_fertility(path, min_years=min_years)
    keep = set(split_countries(table.group_names, split, seed=split_seed))
    rows = torch.tensor([table.group_names[int(g)] in keep for g in table.groups])
    keys = [table.group_names[int(g)] for g in table.groups[rows]]
    return GroupedTable.from_columns(keys, x=table.x[rows], y=table.y[rows])


def fertility_tasks(
    *,
    split: Split = "train",
    k_shot: int = 5,
    n_query: int = 20,
    path: str | Path | None = None,
    min_years: int = 40,
    split_seed: int = 0,
    seed: int | torch.Generator = 0,
) -> GroupedTableSource:
    """Task source ``"fertility"``: each country of ``split`` a task of ``k_shot`` support and ``n_query``
    query years drawn at random (seeded by ``seed``) on every ``sample()``; ``split_seed`` chooses
    the split of the countries (0: the split of the benchmark tables)."""
    table = fertility_table(split, path, min_years=min_years, split_seed=split_seed)
    return GroupedTableSource(table, k_shot=k_shot, n_query=n_query, seed=seed)
