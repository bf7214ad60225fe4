"""The user cold-start protocol: disjoint user splits, query never in support, train-only statistics."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from metadl.apps.recsys.protocol import ColdStartProtocol, ProtocolError, ratings_table, split_users
from metadl.data.synthetic_ratings import planted_ratings
from metadl.tasks.source import TaskSourceError


@pytest.fixture(scope="module")
def ratings():
    return planted_ratings(n_users=120, n_items=60, min_ratings=8, max_ratings=50, seed=3)


def test_users_filtered_and_split_8_1_1_without_overlap(ratings):
    split = split_users(ratings, ColdStartProtocol(), seed=0)
    train, val, test = set(split.train_users), set(split.val_users), set(split.test_users)
    assert not (train & val or train & test or val & test)
    counts = torch.bincount(ratings.user, minlength=ratings.n_users)
    eligible = {ratings.user_ids[u] for u in range(ratings.n_users) if 13 <= counts[u] <= 100}
    assert train | val | test == eligible and len(eligible) < ratings.n_users  # some users were too small
    n = len(eligible)
    assert len(val) == round(0.1 * n) and len(test) == round(0.1 * n)


@pytest.mark.parametrize("order", ["random", "last"])
def test_query_is_ten_ratings_never_in_support_and_support_is_the_rest(ratings, order):
    split = split_users(ratings, ColdStartProtocol(query_order=order), seed=1)
    counts = torch.bincount(ratings.user, minlength=ratings.n_users)
    for task in split.tasks("test"):
        s_items, q_items = set(task.support_x[:, 1].tolist()), set(task.query_x[:, 1].tolist())
        assert len(q_items) == 10 and not s_items & q_items
        user = int(task.query_x[0, 0])
        assert ratings.user_ids[user] == task.name and set(task.support_x[:, 0].tolist()) == {user}
        assert len(s_items) + 10 == int(counts[user])


def test_last_order_queries_the_latest_ratings(ratings):
    split = split_users(ratings, ColdStartProtocol(query_order="last"), seed=1)
    for task in split.tasks("test"):
        user = int(task.query_x[0, 0])
        mine = (ratings.user == user).nonzero().flatten()
        latest = mine[torch.argsort(ratings.time[mine])][-10:]
        assert set(ratings.item[latest].tolist()) == set(task.query_x[:, 1].tolist())


def test_statistics_come_from_meta_train_users_only(ratings):
    split = split_users(ratings, ColdStartProtocol(), seed=2)
    train_ids = {ratings.user_ids.index(u) for u in split.train_users}
    mask = torch.tensor([u in train_ids for u in ratings.user.tolist()])
    count = torch.bincount(ratings.item[mask], minlength=ratings.n_items).double()
    assert torch.equal(split.stats.count, count)
    assert split.stats.global_mean == pytest.approx(float(ratings.rating[mask].double().mean()))
    assert split.stats.global_mean != pytest.approx(float(ratings.rating.double().mean()), abs=1e-9)
    # rewriting every non-train rating leaves the statistics exactly as they were
    other = dataclasses.replace(
        ratings, rating=torch.where(mask, ratings.rating, torch.ones_like(ratings.rating))
    )
    again = split_users(other, ColdStartProtocol(), seed=2)
    assert again.test_users == split.test_users
    assert (
        torch.equal(again.stats.total, split.stats.total)
        and again.stats.global_mean == split.stats.global_mean
    )


def test_splits_are_seeded_and_reproducible(ratings):
    a, b = (
        split_users(ratings, ColdStartProtocol(), seed=4),
        split_users(ratings, ColdStartProtocol(), seed=4),
    )
    assert a.test_users == b.test_users and a.train_users == b.train_users
    for ta, tb in zip(a.tasks("test"), b.tasks("test"), strict=True):
        assert torch.equal(ta.query_x, tb.query_x) and torch.equal(ta.support_x, tb.support_x)
    assert split_users(ratings, ColdStartProtocol(), seed=5).test_users != a.test_users


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_ratings": 10}, "min_ratings = 10 must exceed n_query = 10"),
        ({"max_ratings": 12}, "max_ratings = 12 is below min_ratings = 13"),
        ({"fractions": (0.5, 0.1, 0.1)}, "summing to 1"),
    ],
)
def test_protocol_errors(kwargs, message):
    with pytest.raises(ProtocolError, match=message):
        ColdStartProtocol(**kwargs)


def test_too_few_users_is_an_error():
    small = planted_ratings(n_users=2, n_items=30, min_ratings=15, max_ratings=20, seed=0)
    with pytest.raises(ProtocolError, match="only 2 users have 13-100 ratings"):
        split_users(small, ColdStartProtocol(), seed=0)


def test_grouped_table_subset_keeps_the_named_groups_and_refuses_unknown_ones(ratings):
    table = ratings_table(ratings)
    names = [ratings.user_ids[5], ratings.user_ids[2]]
    sub = table.subset(names)
    assert sub.group_names == tuple(names)
    assert torch.equal(sub.x[:, 0].unique().sort().values, torch.tensor([2, 5]))
    assert len(sub.y) == int(((ratings.user == 2) | (ratings.user == 5)).sum())
    with pytest.raises(TaskSourceError, match="no group named 'nobody'"):
        table.subset(["nobody"])
