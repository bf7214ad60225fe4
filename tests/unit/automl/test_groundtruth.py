"""The ground-truth cache: one atomic file per cell, resumable, recomputed when stale; the table round-trips."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from metadl.automl import groundtruth
from metadl.automl.collection import DatasetEntry
from metadl.automl.groundtruth import CVSettings, GroundTruth, build_ground_truth, cached_repeats, score_cell
from metadl.automl.metafeatures import NAMES
from metadl.automl.tabular import AutoMLError
from metadl.tasks.dataset_source import NamedDataset

SETTINGS = CVSettings(folds=3, repeats=2, max_rows=60)


def _entry(name: str = "blobs", n: int = 90, seed: int = 0) -> DatasetEntry:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 3)) + y[:, None]
    return DatasetEntry(NamedDataset(name, X, y), "fam", "generated")


def test_cell_is_cached_and_reused_after_a_restart(tmp_path, monkeypatch):
    cell = score_cell(_entry(), "knn_5", SETTINGS, tmp_path)
    assert (tmp_path / "blobs" / "knn_5.json").is_file()
    assert not list(tmp_path.rglob("*.tmp"))  # atomic write left no temporary behind
    assert cell.rows_used == 60 and cell.rows_total == 90  # subsampled, and says so
    assert (
        len(cell.selection) == len(cell.report) == 2 and cell.selection != cell.report
    )  # independent repeats

    def boom(*args, **kwargs):
        raise AssertionError("a cached cell was recomputed")

    monkeypatch.setattr(groundtruth, "cross_validate", boom)
    assert score_cell(_entry(), "knn_5", SETTINGS, tmp_path) == cell


def test_stale_or_torn_cells_are_recomputed(tmp_path):
    cell = score_cell(_entry(), "knn_1", SETTINGS, tmp_path)
    other = score_cell(_entry(seed=1), "knn_1", SETTINGS, tmp_path)  # same name, different data
    assert other.key != cell.key
    (tmp_path / "blobs" / "knn_1.json").write_text('{"key": "tor')
    again = score_cell(_entry(seed=1), "knn_1", SETTINGS, tmp_path)
    assert (again.key, again.selection, again.report) == (other.key, other.selection, other.report)
    assert json.loads((tmp_path / "blobs" / "knn_1.json").read_text())["key"] == other.key


def test_build_respects_the_deadline_and_the_table_round_trips(tmp_path):
    entries = [_entry("a"), _entry("b", seed=2)]
    gt = build_ground_truth(entries, tmp_path, settings=SETTINGS, pipelines=["knn_5", "logreg_c1"])
    assert gt.names == ("a", "b") and gt.selection.shape == gt.report.shape == (2, 2)
    assert gt.metafeatures.shape == (2, len(NAMES)) and (gt.selection > 0.6).all()
    gt.save(tmp_path / "table.json")
    back = GroundTruth.load(tmp_path / "table.json")
    assert back.names == gt.names and np.allclose(back.report, gt.report, atol=1e-6)
    late = build_ground_truth(
        entries, tmp_path, settings=SETTINGS, pipelines=["knn_5"], deadline=time.monotonic() - 1
    )
    assert late.names == ()


def test_broken_table_names_the_file(tmp_path):
    (tmp_path / "t.json").write_text("{}")
    with pytest.raises(AutoMLError, match="cannot read ground truth .*t.json"):
        GroundTruth.load(tmp_path / "t.json")


def test_more_repeats_extend_a_cell_and_fewer_read_its_first_ones(tmp_path, monkeypatch):
    one, two = CVSettings(folds=3, repeats=1, max_rows=60), CVSettings(folds=3, repeats=2, max_rows=60)
    fresh = score_cell(_entry(), "knn_5", two, tmp_path / "fresh")  # both repeats at once
    first = score_cell(_entry(), "knn_5", one, tmp_path)
    seeds_run: list[int] = []
    real = groundtruth.cross_validate

    def spy(pipeline, X, y, folds, seeds):
        seeds_run.extend(seeds)
        return real(pipeline, X, y, folds, seeds)

    monkeypatch.setattr(groundtruth, "cross_validate", spy)
    extended = score_cell(_entry(), "knn_5", two, tmp_path)
    assert seeds_run == [1, 1 + groundtruth.REPORT_SEED_OFFSET]  # only the missing repeat of each set
    assert extended.selection[:1] == first.selection and extended.report[:1] == first.report
    assert (extended.selection, extended.report) == (fresh.selection, fresh.report)  # same seeds, same scores
    assert json.loads((tmp_path / "blobs" / "knn_5.json").read_text())["selection"] == extended.selection
    seeds_run.clear()
    again = score_cell(_entry(), "knn_5", one, tmp_path)
    assert seeds_run == [] and (again.selection, again.report) == (first.selection, first.report)


def test_the_table_records_its_repeats(tmp_path):
    gt = build_ground_truth([_entry("a")], tmp_path, settings=SETTINGS, pipelines=["knn_5"])
    gt.save(tmp_path / "t.json")
    assert gt.repeats == 2 and GroundTruth.load(tmp_path / "t.json").repeats == 2
    assert gt.subset([0]).names == ("a",) and gt.subset([]).selection.shape == (0, 1)


def test_cached_repeats_counts_what_every_cell_holds(tmp_path):
    entry, one = _entry(), CVSettings(folds=3, repeats=1, max_rows=60)
    pipelines = ["knn_5", "logreg_c1"]
    assert cached_repeats(entry, pipelines, SETTINGS, tmp_path) == 0
    score_cell(entry, "knn_5", SETTINGS, tmp_path)
    assert cached_repeats(entry, pipelines, SETTINGS, tmp_path) == 0  # logreg_c1 is missing
    score_cell(entry, "logreg_c1", one, tmp_path)
    assert cached_repeats(entry, pipelines, SETTINGS, tmp_path) == 1
    assert cached_repeats(entry, ["knn_5"], one, tmp_path) == 2  # repeats are not part of the key
    assert cached_repeats(_entry(seed=3), ["knn_5"], one, tmp_path) == 0  # other data: stale
