"""Reading and encoding tables: categorical columns, missing values, bad targets."""

from __future__ import annotations

import numpy as np
import pytest

from metadl.automl.tabular import AutoMLError, encode_rows, read_csv_dataset, read_dataset, subsample


def test_numeric_categorical_and_missing_values_are_encoded():
    rows = [
        ["1.5", "red", "", "a"],
        ["?", "blue", "x", "b"],
        ["3", "red", "y", "a"],
        ["NA", "green", "x", "b"],
    ]
    table = encode_rows(["num", "colour", "code", "y"], rows, "y")
    assert table.feature_names == (
        "num",
        "colour=blue",
        "colour=green",
        "colour=red",
        "code=?",
        "code=x",
        "code=y",
    )
    assert table.n_categorical == 2
    X = table.dataset.X
    assert np.isnan(X[1, 0]) and np.isnan(X[3, 0]) and X[0, 0] == 1.5 and X[2, 0] == 3.0
    np.testing.assert_array_equal(X[:, 1:4], [[0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(
        X[:, 4:], [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0]]
    )  # missing is a level
    assert table.dataset.y.tolist() == ["a", "b", "a", "b"]


def test_many_levels_become_ordinal_codes():
    rows = [[f"v{i % 12}", str(i % 2)] for i in range(24)]
    table = encode_rows(["city", "y"], rows, "y", max_onehot=10)
    assert table.feature_names == ("city",)
    assert sorted(set(table.dataset.X[:, 0].tolist())) == list(range(12))


@pytest.mark.parametrize(
    ("rows", "target", "message"),
    [
        ([["1", "a"], ["2", "b"]], "label", "target column 'label' is not among"),
        ([["1", "a"], ["2", ""]], "y", "missing in 1 rows"),
        ([["1", "a"], ["2", "a"]], "y", "has 1 class"),
    ],
)
def test_bad_targets_fail_with_one_line(rows, target, message):
    with pytest.raises(AutoMLError, match=message) as err:
        encode_rows(["x", "y"], rows, target)
    assert "\n" not in str(err.value)


def test_csv_and_npz_read_the_same_numbers(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,0\n3,,1\n5,6,0\n7,8,1\n")
    np.savez(tmp_path / "d.npz", X=np.array([[1, 2], [3, np.nan], [5, 6], [7, 8]]), y=np.array([0, 1, 0, 1]))
    csv, npz = read_csv_dataset(tmp_path / "d.csv", "y"), read_dataset(tmp_path / "d.npz")
    np.testing.assert_array_equal(csv.dataset.X, npz.dataset.X)
    with pytest.raises(AutoMLError, match="--target"):
        read_dataset(tmp_path / "d.csv")
    with pytest.raises(AutoMLError, match="unknown extension"):
        read_dataset(tmp_path / "d.parquet")


def test_subsample_keeps_every_class_and_is_seeded():
    X, y = np.arange(1000.0).reshape(-1, 1), np.array([0] * 990 + [1] * 10)
    Xs, ys = subsample(X, y, 100, seed=3)
    assert len(ys) == 100 and (ys == 1).sum() == 1
    np.testing.assert_array_equal(Xs, subsample(X, y, 100, seed=3)[0])
    assert not np.array_equal(Xs, subsample(X, y, 100, seed=4)[0])
