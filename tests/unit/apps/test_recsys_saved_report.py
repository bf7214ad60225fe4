"""Saved recommenders (round trip, hostile files) and the model-beside-baselines report of ``metadl eval``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from metadl.apps.recsys.evaluate import METRICS, evaluate_users, paired, summarise
from metadl.apps.recsys.meta import EpisodeSettings
from metadl.apps.recsys.protocol import ColdStartProtocol, split_users
from metadl.apps.recsys.recommend import new_user_task, top_n
from metadl.apps.recsys.registry import BASELINES, create_recommender
from metadl.apps.recsys.report import evaluate_against_baselines
from metadl.apps.recsys.saved import SavedRecommenderError, load_recommender, save_recommender
from metadl.data.synthetic_ratings import planted_ratings

pytestmark = pytest.mark.usefixtures("one_thread_per_module")  # tests/conftest.py


@pytest.fixture(scope="module")
def split():
    ratings = planted_ratings(n_users=120, n_items=50, min_ratings=15, max_ratings=40, selection=1.0, seed=3)
    return split_users(ratings, ColdStartProtocol(), seed=0)


@pytest.fixture(scope="module")
def model(split):
    rec = create_recommender("twohead", settings=EpisodeSettings(steps=20, meta_batch=8, shots=(5,)), dim=4)
    rec.fit(split)
    return rec


def test_saved_recommender_ranks_exactly_as_the_fitted_one(tmp_path, split, model):
    folder = save_recommender(tmp_path / "run" / "model", model.learner, beta=model.beta,
                              item_ids=split.ratings.item_ids, metadata={"seed": 0})  # fmt: skip
    saved = load_recommender(tmp_path / "run")  # a run folder holds it in model/
    assert saved.item_ids == split.ratings.item_ids and saved.metadata == {"seed": 0}
    assert folder == tmp_path / "run" / "model"
    for task in split.tasks("test")[:3]:
        torch.testing.assert_close(saved.recommender.ranking(task), model.ranking(task))
        torch.testing.assert_close(saved.recommender.scores(task), model.scores(task))
    me = new_user_task(saved.item_ids, [("i1", 5.0), ("i2", 1.0)], user=0)
    top = top_n(saved.recommender, me, saved.item_ids, n=4)
    assert [r.item for r in top] == [r.item for r in top_n(model, me, split.ratings.item_ids, n=4)]
    assert all(r.rating is not None and 1 < r.rating < 6 for r in top)


def _saved(tmp_path, split, model):
    return save_recommender(tmp_path / "m", model.learner, beta=0.5, item_ids=split.ratings.item_ids)


def test_corrupt_or_hostile_folders_fail_with_one_line(tmp_path, split, model):
    folder = _saved(tmp_path, split, model)
    doc = json.loads((folder / "recommender.json").read_text())
    with pytest.raises(SavedRecommenderError, match="holds no recommender.json"):
        load_recommender(tmp_path / "nothing")

    def broken(change, match):
        bad = json.loads(json.dumps(doc))
        change(bad)
        (folder / "recommender.json").write_text(json.dumps(bad))
        with pytest.raises(SavedRecommenderError, match=match):
            load_recommender(folder)

    broken(lambda d: d.update(format="other"), "not a metadl recommender")
    broken(lambda d: d.update(beta="x"), "'beta' = 'x' is not a finite number")
    broken(lambda d: d.update(item_ids=[]), "non-empty list of strings")
    broken(lambda d: d["hyperparameters"].update(dim=10**9), "hyperparameters.dim = 1000000000")
    broken(lambda d: d["hyperparameters"].update(dim=4000), "larger than its")
    broken(lambda d: d["hyperparameters"].update(dim=5), "do not fit the recommender")
    broken(lambda d: d["hyperparameters"].pop("inner_lr"), "must hold exactly")
    broken(lambda d: d.update(item_ids=doc["item_ids"][:-1]), "do not fit the recommender")
    (folder / "recommender.json").write_text(json.dumps(doc))
    blob = bytearray((folder / "weights.safetensors").read_bytes())
    blob[-1] ^= 1
    (folder / "weights.safetensors").write_bytes(bytes(blob))
    with pytest.raises(SavedRecommenderError, match="does not match the sha256"):
        load_recommender(folder)


def test_saving_refuses_a_mismatched_catalogue_or_a_diverged_model(tmp_path, split, model):
    with pytest.raises(ValueError, match="item_ids has 2 ids"):
        save_recommender(tmp_path / "m", model.learner, beta=0.5, item_ids=["a", "b"])
    with pytest.raises(ValueError, match="NaN or infinite"):
        save_recommender(tmp_path / "m", model.learner, beta=math.nan, item_ids=split.ratings.item_ids)


def test_report_holds_the_model_and_every_baseline_under_stable_keys(split, model):
    report = evaluate_against_baselines(model, split)
    out = report.as_json()
    json.dumps(out, allow_nan=False)  # strict JSON: undefined metrics are null, not NaN
    assert set(out) == {"model", "baselines", "vs_best_baseline", "users"}
    assert set(out["model"]) == set(METRICS) and set(out["baselines"]) == set(BASELINES)
    assert out["baselines"]["popularity"]["mae"] == {"mean": None, "ci95": None, "n": 0}
    tasks = split.tasks("test")
    assert out["users"] == len(tasks)
    ours = evaluate_users(model, tasks)
    expected = summarise(ours["ndcg@10_full"])
    assert out["model"]["ndcg@10_full"] == {"mean": expected.mean, "ci95": expected.ci95, "n": expected.n}
    # the best baseline on MAE is the one with the lowest mean MAE, and the paired difference is against it
    maes = {b: out["baselines"][b]["mae"]["mean"] for b in BASELINES if out["baselines"][b]["mae"]["mean"]}
    best = min(maes, key=maes.__getitem__)
    vs = out["vs_best_baseline"]["mae"]
    assert vs["baseline"] == best
    rec = create_recommender(best)
    rec.fit(split)
    d = paired(ours, evaluate_users(rec, tasks), "mae")
    assert vs["mean"] == pytest.approx(d.mean) and vs["ci95"] == pytest.approx(d.ci95)
    assert vs["better"] == bool(d.mean < 0 and abs(d.mean) > d.ci95)


def test_report_refuses_no_baselines(split, model):
    with pytest.raises(ValueError, match="baselines is empty"):
        evaluate_against_baselines(model, split, baselines=[])
    assert np.isfinite(
        evaluate_against_baselines(model, split, baselines=["item_mean"], users="val").model["mae"].mean
    )
