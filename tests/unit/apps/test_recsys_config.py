"""Recommendation configs: the shipped one pins the cold-start protocol; overrides, bad values and the
data formats found at dataset.root; per-head early stopping and the time limit of meta-training."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch

from metadl.apps.recsys.config import (
    DatasetSection,
    ModelSection,
    find_config,
    list_recsys_configs,
    load_recsys_config,
    read_dataset,
)
from metadl.apps.recsys.meta import (
    EpisodeSettings,
    MetaRecommender,
    TwoHeadMetaRecommender,
    ridge_builder,
    twohead_builder,
)
from metadl.apps.recsys.protocol import ColdStartProtocol, split_users
from metadl.apps.recsys.train import TWOHEAD_EPISODES
from metadl.config import ConfigError
from metadl.data.synthetic_ratings import planted_ratings
from metadl.evaluation.ranking import mae

pytestmark = pytest.mark.usefixtures("one_thread_per_module")  # tests/conftest.py

SHIPPED = "recsys_movielens100k_coldstart"


def test_the_shipped_config_pins_the_protocol_and_the_benchmark_settings():
    assert list_recsys_configs() == [SHIPPED]
    cfg = load_recsys_config(find_config(SHIPPED))
    assert cfg.protocol == ColdStartProtocol(13, 100, 10, (0.8, 0.1, 0.1), "random") and cfg.split_seed == 0
    assert cfg.train == TWOHEAD_EPISODES  # the schedule of benchmarks/recsys_coldstart.py
    defaults = {k: p.default for k, p in inspect.signature(twohead_builder).parameters.items()}
    assert ModelSection() == cfg.model and vars(cfg.model) == defaults
    assert cfg.dataset == DatasetSection(root="data/ml-100k", format="auto", name="ml-100k")


def test_overrides_are_typed_and_unknown_or_bad_values_name_the_key():
    path = find_config(SHIPPED)
    cfg = load_recsys_config(path, ["protocol.query_order=last", "protocol.split_seed=3", "train.shots=[5, 10]",
                                    "model.eval_inner_steps=null", "train.lr=1e-2"])  # fmt: skip
    assert (cfg.protocol.query_order, cfg.split_seed, cfg.train.shots) == ("last", 3, (5, 10))
    assert cfg.model.eval_inner_steps is None and cfg.train.lr == 0.01
    for override, message in [
        ("protocol.bogus=1", "protocol: unknown keys ['bogus']"),
        ("protocol.split_seed=-1", "protocol.split_seed = -1; expected an integer >= 0"),
        ("protocol.min_ratings=5", "min_ratings = 5 must exceed n_query = 10"),
        ("model.dim=two", "model.dim = 'two'; expected int"),
        ("model.rating_loss=huber", "model.rating_loss='huber'; choose 'l1' or 'mse'"),
        ("train.steps=0", "steps, meta_batch and validate_every must be >= 1"),
        ("extra.key=1", "unknown sections ['extra']"),
    ]:
        with pytest.raises(ConfigError, match=None) as err:
            load_recsys_config(path, [override])
        assert message in str(err.value) and "\n" not in str(err.value)


def test_find_config_takes_shipped_names_and_recsys_yaml_files_only(tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text("app: recsys\ndataset: {root: x}\n")
    other = tmp_path / "other.yaml"
    other.write_text("app: text\n")
    assert find_config(SHIPPED).name == f"{SHIPPED}.yaml" and find_config(str(own)) == own
    assert find_config(str(other)) is None and find_config("maml_sinusoid") is None
    assert load_recsys_config(own).train == EpisodeSettings()  # sections left out take their defaults


def _write_formats(root):
    r = planted_ratings(n_users=20, n_items=30, min_ratings=5, max_ratings=10, seed=1)
    rows = list(zip(r.user.tolist(), r.item.tolist(), r.rating.tolist(), strict=True))
    (root / "csv").mkdir()
    (root / "csv" / "ratings.csv").write_text(
        "user,item,rating\n" + "".join(f"{u},{i},{y:g}\n" for u, i, y in rows)
    )
    (root / "rb").mkdir()
    (root / "rb" / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        + "".join(f"{u}\t{i}\t{y:g}\t{n}\n" for n, (u, i, y) in enumerate(rows))
    )
    (root / "ml1m").mkdir()
    (root / "ml1m" / "ratings.dat").write_text(
        "".join(f"{u + 1}::{i + 1}::{y:g}::{n}\n" for n, (u, i, y) in enumerate(rows))
    )
    (root / "ml1m" / "users.dat").write_text("".join(f"{u + 1}::M::25::4::12345\n" for u in range(20)))
    (root / "ml1m" / "movies.dat").write_text("".join(f"{i + 1}::Film (1990)::Drama\n" for i in range(30)))
    return len(rows)


def test_auto_format_reads_what_lies_at_dataset_root(tmp_path):
    n = _write_formats(tmp_path)
    for where in ("csv/ratings.csv", "rb", "ml1m"):
        ratings = read_dataset(DatasetSection(root=str(tmp_path / where)))
        assert len(ratings.rating) == n, where
    with pytest.raises(ConfigError, match=r"holds none of ml-100k\.inter \(RecBole\), u\.data"):
        read_dataset(DatasetSection(root=str(tmp_path)))
    with pytest.raises(ConfigError, match="does not exist"):
        read_dataset(DatasetSection(root=str(tmp_path / "nope"), format="recbole"))
    with pytest.raises(ConfigError, match=r"is a file but not a \.csv"):
        read_dataset(DatasetSection(root=str(tmp_path / "rb" / "ml-100k.inter")))


@pytest.fixture(scope="module")
def split():
    ratings = planted_ratings(n_users=200, n_items=60, min_ratings=15, max_ratings=40, selection=1.5, seed=2)
    return split_users(ratings, ColdStartProtocol(), seed=0)


def test_heads_are_early_stopped_each_at_its_own_best_validation_step(split):
    settings = EpisodeSettings(steps=60, meta_batch=8, shots=(5,), lr=3e-2, validate_every=5)
    model = TwoHeadMetaRecommender(settings, select="heads", dim=4, implicit_dim=8)
    model.fit(split)
    curve = {name: [v[name] for _, v in model.meta.history] for name in ("mae", "implicit")}
    assert np.argmin(curve["mae"]) != np.argmin(curve["implicit"])  # else the test shows nothing
    learner, tasks = model.learner, split.tasks("val")
    with torch.no_grad():
        val_mae = np.mean(
            [mae(model.scores(t)[t.query_x[:, 1]].numpy(), t.query_y[:, 0].numpy()) for t in tasks]
        )
        val_ce = np.mean([float(learner.implicit_loss(t.support_x[None], t.query_x[None])) for t in tasks])
    assert math.isclose(val_mae, min(curve["mae"]), rel_tol=1e-5)
    assert math.isclose(val_ce, min(curve["implicit"]), rel_tol=1e-5)


def test_heads_selection_needs_the_two_head_learner(split):
    with pytest.raises(ValueError, match="select='heads' needs a TwoHeadRecommender, not UserRidge"):
        MetaRecommender(ridge_builder(dim=4), EpisodeSettings(steps=1), select="heads").fit(split)


def test_time_limit_ends_meta_training_after_one_last_validation(split):
    meta = MetaRecommender(ridge_builder(dim=4), EpisodeSettings(steps=10**6, meta_batch=4, shots=(5,),
                                                                 validate_every=10**6, time_limit=0.3))  # fmt: skip
    meta.fit(split)
    assert 1 <= meta.steps_done < 10**6 and [step for step, _ in meta.history] == [meta.steps_done]
    with pytest.raises(ValueError, match="time_limit must be a positive number of seconds"):
        EpisodeSettings(time_limit=0)
