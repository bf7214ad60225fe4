"""Top-N recommendations for a new user from a CSV of their ratings."""

from __future__ import annotations

import pytest
import torch

from metadl.apps.recsys.meta import EpisodeSettings
from metadl.apps.recsys.protocol import ColdStartProtocol, split_users
from metadl.apps.recsys.recommend import new_user_task, read_user_ratings, top_n
from metadl.apps.recsys.registry import create_recommender
from metadl.data.ratings import RatingsFormatError
from metadl.data.synthetic_ratings import planted_ratings

pytestmark = pytest.mark.usefixtures("one_thread_per_module")  # tests/conftest.py


@pytest.fixture(scope="module")
def split():
    return split_users(planted_ratings(n_users=80, n_items=50, seed=2), ColdStartProtocol(), seed=0)


@pytest.mark.parametrize("name", ["melu", "user_item_bias"])
def test_top_n_for_a_new_user_from_csv(tmp_path, split, name):
    (tmp_path / "me.csv").write_text("item,rating\ni1,5\ni2,1\ni4,4\n")
    pairs = read_user_ratings(tmp_path / "me.csv")
    assert pairs == [("i1", 5.0), ("i2", 1.0), ("i4", 4.0)]
    kwargs = {"settings": EpisodeSettings(steps=3, meta_batch=4, validate_every=3)} if name == "melu" else {}
    model = create_recommender(name, **kwargs)
    model.fit(split)
    task = new_user_task(split.ratings.item_ids, pairs, user=split.ratings.n_users)
    assert int(task.support_x[0, 0]) == split.ratings.n_users  # a new user: features unknown
    top = top_n(model, task, split.ratings.item_ids, n=5)
    assert len(top) == 5 and not {"i1", "i2", "i4"} & {r.item for r in top}
    assert all(r.rating == r.score for r in top)  # these rank by their predicted ratings
    scores = [r.score for r in top]
    assert scores == sorted(scores, reverse=True)
    all_scores = model.scores(task)
    unseen = torch.ones(split.ratings.n_items, dtype=torch.bool)
    unseen[task.support_x[:, 1]] = False
    assert scores[0] == pytest.approx(float(all_scores[unseen].max()))
    assert torch.isfinite(all_scores).all()


def test_new_user_errors(tmp_path, split):
    with pytest.raises(RatingsFormatError, match="item 'i999' is not in the catalogue"):
        new_user_task(split.ratings.item_ids, [("i999", 3.0)], user=0)
    with pytest.raises(RatingsFormatError, match="empty"):
        new_user_task(split.ratings.item_ids, [], user=0)
    (tmp_path / "bad.csv").write_text("item,rating\ni1,five\n")
    with pytest.raises(RatingsFormatError, match=r"bad\.csv:2: rating 'five'"):
        read_user_ratings(tmp_path / "bad.csv")
    (tmp_path / "bad.csv").write_text("item,score\ni1,5\n")
    with pytest.raises(RatingsFormatError, match="no 'rating' column"):
        read_user_ratings(tmp_path / "bad.csv")
