"""Within-alphabet episodes: one group per episode, support and query by different drawers, seeded."""

from __future__ import annotations

import pytest
import torch

from metadl.data.base import FewShotDataset
from metadl.tasks import AlphabetEpisodeSampler, TaskSourceError, create_task_source

ALPHABETS = {"Greek": 6, "Latin": 4, "Runic": 2}  # characters per alphabet
DRAWERS = 8


def coded_dataset(drawers: int = DRAWERS) -> FewShotDataset:
    """Each example's pixels are (class id, drawer id): the episode's images say where they came from.

    Examples are stored in a shuffled order, so the sampler cannot rely on positions by accident.
    """
    names = [f"{a}/character{i:02d}" for a, n in ALPHABETS.items() for i in range(1, n + 1)]
    labels = torch.arange(len(names)).repeat_interleave(drawers)
    drawer = torch.arange(drawers).repeat(len(names))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(5))
    x = torch.stack([labels, drawer], dim=1).float()
    return FewShotDataset(x[order], labels[order], names)


def drawer_ids(ds: FewShotDataset) -> torch.Tensor:
    return ds.data[:, 1].long()


def test_episodes_stay_in_one_alphabet_and_separate_drawers() -> None:
    ds = coded_dataset()
    sampler = AlphabetEpisodeSampler(ds, n_way=3, k_shot=2, n_query=3, seed=0, drawers=drawer_ids(ds))
    assert sampler.groups == ("Greek", "Latin")  # Runic has 2 characters, too few for 3-way
    seen_groups = set()
    for _ in range(200):
        task = sampler.sample()
        classes = torch.cat([task.support_x[:, 0], task.query_x[:, 0]]).long()
        alphabets = {ds.class_names[c].split("/")[0] for c in classes.tolist()}
        assert alphabets == {task.name}
        seen_groups.add(task.name)
        support_drawers = set(task.support_x[:, 1].long().tolist())
        query_drawers = set(task.query_x[:, 1].long().tolist())
        assert len(support_drawers) == 2 and len(query_drawers) == 3
        assert not support_drawers & query_drawers
        # Labels name the images' classes consistently in support and query.
        support_class = dict(zip(task.support_y.tolist(), task.support_x[:, 0].long().tolist(), strict=True))
        for y, c in zip(task.query_y.tolist(), task.query_x[:, 0].long().tolist(), strict=True):
            assert support_class[y] == c
        assert len(set(support_class.values())) == 3
    assert seen_groups == {"Greek", "Latin"}


def test_every_class_shares_the_episodes_drawers() -> None:
    """Lake's protocol: all support images by one person, all queries by another."""
    ds = coded_dataset()
    sampler = AlphabetEpisodeSampler(ds, n_way=4, k_shot=1, n_query=1, seed=3, drawers=drawer_ids(ds))
    for _ in range(50):
        episode = sampler.sample_episode()
        drawers = drawer_ids(ds)[episode.index]  # (n_way, 2)
        assert drawers[:, 0].unique().tolist() == list(episode.support_drawers)
        assert drawers[:, 1].unique().tolist() == list(episode.query_drawers)
        assert episode.support_drawers != episode.query_drawers


def test_same_seed_same_episodes_and_state_resumes() -> None:
    ds = coded_dataset()
    a = AlphabetEpisodeSampler(ds, n_way=3, k_shot=1, n_query=2, seed=7, drawers=drawer_ids(ds))
    b = AlphabetEpisodeSampler(ds, n_way=3, k_shot=1, n_query=2, seed=7, drawers=drawer_ids(ds))
    c = AlphabetEpisodeSampler(ds, n_way=3, k_shot=1, n_query=2, seed=8, drawers=drawer_ids(ds))
    first, second, other = a.sample_batch(20), b.sample_batch(20), c.sample_batch(20)
    assert torch.equal(first.support_x, second.support_x) and torch.equal(first.query_x, second.query_x)
    assert not torch.equal(first.query_x, other.query_x)
    state = a.state_dict()
    expected = a.sample()
    a.load_state_dict(state)
    assert torch.equal(a.sample().query_x, expected.query_x)


def test_default_drawer_is_position_within_class_as_in_omniglot() -> None:
    names = ["A/c1", "A/c2", "A/c3"]
    x = torch.arange(3).repeat_interleave(5).float().unsqueeze(1) * 10 + torch.arange(5).repeat(3).unsqueeze(
        1
    )
    ds = FewShotDataset(x, torch.arange(3).repeat_interleave(5), names)  # pixel = 10 * class + drawer
    task = create_task_source("alphabet_episodes", dataset=ds, n_way=3, k_shot=1, n_query=1, seed=0).sample()
    support, query = task.support_x.flatten().long() % 10, task.query_x.flatten().long() % 10
    assert len(set(support.tolist())) == 1 and len(set(query.tolist())) == 1 and support[0] != query[0]


def test_drawers_missing_from_some_classes_are_avoided() -> None:
    ds = coded_dataset()
    keep = ~((ds.labels == 0) & (drawer_ids(ds) < 6))  # Greek character01 drawn only by drawers 6 and 7
    small = FewShotDataset(ds.data[keep], ds.labels[keep], ds.class_names)
    sampler = AlphabetEpisodeSampler(small, n_way=6, k_shot=1, n_query=1, seed=0, drawers=drawer_ids(small))
    for _ in range(30):
        episode = sampler.sample_episode()
        if episode.group == "Greek":  # all six Greek characters: only drawers 6 and 7 drew them all
            assert set(episode.support_drawers + episode.query_drawers) == {6, 7}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_way": 7}, "largest group"),
        ({"k_shot": 5, "n_query": 4}, "drawers are needed"),
        ({"n_query": 0}, "n_query must be >= 1"),
        ({"groups": ["x"]}, "groups has 1 entries"),
    ],
)
def test_bad_arguments_fail_with_the_fix(kwargs: dict, message: str) -> None:
    ds = coded_dataset()
    args = {"n_way": 3, "k_shot": 1, "n_query": 1, "drawers": drawer_ids(ds), **kwargs}
    with pytest.raises(TaskSourceError, match=message):
        AlphabetEpisodeSampler(ds, **args)


def test_two_examples_by_one_drawer_are_refused() -> None:
    ds = coded_dataset()
    with pytest.raises(TaskSourceError, match="two examples by one drawer"):
        AlphabetEpisodeSampler(
            ds, n_way=2, k_shot=1, n_query=1, drawers=torch.zeros(len(ds), dtype=torch.long)
        )
