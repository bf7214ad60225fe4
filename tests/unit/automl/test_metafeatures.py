"""Meta-features against values computed by hand on tiny tables (and against pymfe where both define them)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metadl.automl.metafeatures import (
    GROUPS,
    NAMES,
    compute_metafeatures,
    discretize,
    entropy,
    mutual_information,
)

# x0 is the class, x1 is independent of it; every row appears twice
X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 2)
Y = np.array([0, 0, 1, 1] * 2)
BY_HAND = {
    "log_rows": math.log(8),
    "log_features": math.log(2),
    "n_classes": 2.0,
    "log_rows_per_feature": math.log(4),
    "log1p_categorical": 0.0,
    "frac_missing": 0.0,
    "minority_ratio": 1.0,
    "mean_abs_corr": 0.0,
    "mean_skew": 0.0,
    "mean_kurtosis": -2.0,  # a fair coin: E[z^4] = 1, minus 3
    "pca_95": 1.0,  # two uncorrelated unit-variance columns need both components
    "class_entropy": 1.0,
    "mean_attr_entropy": 1.0,  # each column: two equally likely bins
    "mean_mutual_info": 0.5,  # I(x0; y) = 1 bit, I(x1; y) = 0
    "enat": 2.0,  # H(y) / mean MI
    "noise_signal": 1.0,  # (1 - 0.5) / 0.5
    "tree_leaves_per_row": 2 / 8,
    "tree_depth": 1 / 3,  # depth 1 / log2(8)
    "tree_max_importance": 1.0,
    "lm_stump": 1.0,
    "lm_lda": 1.0,
}


@pytest.mark.parametrize("name", sorted(BY_HAND))
def test_values_on_a_tiny_table_match_hand_computation(name):
    assert compute_metafeatures(X, Y)[name] == pytest.approx(BY_HAND[name], abs=1e-9)


def test_groups_cover_every_name_once():
    assert set(GROUPS) == {"simple", "statistical", "info_theory", "model_based", "landmarkers"}
    assert len(NAMES) == len(set(NAMES)) == sum(len(g) for g in GROUPS.values())


def test_entropy_discretization_and_mutual_information():
    assert entropy(np.array([0, 1, 2, 3])) == pytest.approx(2.0)
    assert discretize(np.array([0.0, 0.09, 0.1, 0.99, 1.0])).tolist() == [0, 0, 1, 9, 9]
    a = np.array([0, 0, 1, 1])
    assert mutual_information(a, a) == pytest.approx(1.0)
    assert mutual_information(a, np.array([0, 1, 0, 1])) == pytest.approx(0.0)


def test_missing_values_and_categoricals_are_handled_not_crashed_on():
    Xm = X.copy()
    Xm[0, 0] = Xm[5, 1] = np.nan
    mf = compute_metafeatures(Xm, Y.astype(str), n_categorical=3)
    assert mf["frac_missing"] == pytest.approx(2 / 16)
    assert mf["log1p_categorical"] == pytest.approx(math.log(4))
    assert np.isfinite(mf.values).all() and mf.values.shape == (len(NAMES),)


def test_constant_and_single_column_tables_stay_finite():
    const = np.column_stack([np.ones(8), Y])
    assert np.isfinite(compute_metafeatures(const, Y).values).all()
    assert np.isfinite(compute_metafeatures(Y[:, None].astype(float), Y).values).all()


def test_large_tables_are_subsampled_but_keep_their_row_count():
    rng = np.random.default_rng(0)
    Xl, yl = rng.normal(size=(3000, 3)), rng.integers(0, 2, 3000)
    mf = compute_metafeatures(Xl, yl, max_rows=500)
    assert mf["log_rows"] == pytest.approx(math.log(3000))
    assert mf["tree_leaves_per_row"] <= 0.5  # computed on the 500-row subsample


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # pymfe's own canonical correlations divide by 0 here
def test_agrees_with_pymfe_where_both_define_the_same_quantity():
    mfe = pytest.importorskip("pymfe.mfe")
    extractor = mfe.MFE(
        features=["attr_ent", "class_ent", "mut_inf", "eq_num_attr", "ns_ratio", "cor"], summary=["mean"]
    )
    names, values = extractor.fit(X, Y).extract()
    theirs = dict(zip(names, values, strict=True))
    ours = compute_metafeatures(X, Y)
    assert ours["mean_attr_entropy"] == pytest.approx(theirs["attr_ent.mean"], abs=1e-5)
    assert ours["class_entropy"] == pytest.approx(theirs["class_ent"], abs=1e-5)  # log2(2) = 1: same scale
    assert ours["mean_mutual_info"] == pytest.approx(theirs["mut_inf.mean"], abs=1e-5)
    assert ours["enat"] == pytest.approx(theirs["eq_num_attr"], abs=1e-4)
    assert ours["noise_signal"] == pytest.approx(theirs["ns_ratio"], abs=1e-4)
    assert ours["mean_abs_corr"] == pytest.approx(abs(theirs["cor.mean"]), abs=1e-9)
