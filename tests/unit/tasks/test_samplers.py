import math

import pytest
import torch

from metadl.data.base import FewShotDataset
from metadl.tasks import EpisodeSampler, SinusoidSampler, Task, TaskBatch, VariableEpisodeSampler


def make_dataset(num_classes=10, per_class=8, uneven=False):
    """Example i of class c holds the value 1000 * c + i, so every gathered example reveals its source."""
    counts = [per_class + (c % 3 if uneven else 0) for c in range(num_classes)]
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    within = torch.cat([torch.arange(n) for n in counts])
    data = (1000 * labels + within).float().view(-1, 1, 1).expand(-1, 2, 3).clone()
    return FewShotDataset(data, labels, [f"class{c:02d}" for c in range(num_classes)], name="toy")


def source_class(x):
    return (x[..., 0, 0] // 1000).long()


def test_episode_shapes_and_label_remapping():
    ds = make_dataset()
    batch = EpisodeSampler(ds, n_way=5, k_shot=2, n_query=3, seed=0).sample_batch(4)
    assert batch.support_x.shape == (4, 10, 2, 3) and batch.query_x.shape == (4, 15, 2, 3)
    assert batch.support_y.shape == (4, 10) and batch.query_y.shape == (4, 15)
    assert batch.support_y.dtype == torch.long
    for task in batch:
        assert sorted(task.support_y.unique().tolist()) == list(range(5))
        # each episode label maps to exactly one source class, the same in support and query
        src_s, src_q = source_class(task.support_x), source_class(task.query_x)
        for label in range(5):
            classes = torch.cat([src_s[task.support_y == label], src_q[task.query_y == label]]).unique()
            assert len(classes) == 1
        assert len(src_s.unique()) == 5


def test_support_and_query_examples_are_distinct():
    ds = make_dataset(per_class=5)
    batch = EpisodeSampler(ds, n_way=10, k_shot=2, n_query=3, seed=1).sample_batch(8)
    for task in batch:
        ids = torch.cat([task.support_x[:, 0, 0], task.query_x[:, 0, 0]])
        assert len(ids.unique()) == len(ids)


def test_uneven_class_sizes_never_index_past_a_class():
    ds = make_dataset(num_classes=6, per_class=4, uneven=True)
    sampler = EpisodeSampler(ds, n_way=6, k_shot=2, n_query=2, seed=0)
    for _ in range(20):
        batch = sampler.sample_batch(4)
        x = torch.cat([batch.support_x, batch.query_x], 1)
        within = x[..., 0, 0] % 1000
        assert (within < ds.class_counts[source_class(x)]).all()


def test_same_seed_same_episodes_bit_for_bit():
    ds = make_dataset()
    a = EpisodeSampler(ds, n_way=5, k_shot=1, n_query=2, seed=7)
    b = EpisodeSampler(ds, n_way=5, k_shot=1, n_query=2, seed=7)
    c = EpisodeSampler(ds, n_way=5, k_shot=1, n_query=2, seed=8)
    ba, bb, bc = a.sample_batch(6), b.sample_batch(6), c.sample_batch(6)
    assert torch.equal(ba.support_x, bb.support_x) and torch.equal(ba.query_x, bb.query_x)
    assert not torch.equal(ba.support_x, bc.support_x)


def test_state_dict_resumes_the_episode_stream():
    ds = make_dataset()
    s = EpisodeSampler(ds, n_way=5, k_shot=1, n_query=1, seed=3)
    s.sample_batch(2)
    state = s.state_dict()
    expected = s.sample_batch(2)
    t = EpisodeSampler(ds, n_way=5, k_shot=1, n_query=1, seed=99)
    t.load_state_dict(state)
    assert torch.equal(t.sample_batch(2).support_x, expected.support_x)


def test_classes_come_only_from_the_given_split():
    full = make_dataset(num_classes=10)
    train = full.subset(range(0, 6), name="train")
    batch = EpisodeSampler(train, n_way=5, k_shot=1, n_query=1, seed=0).sample_batch(50)
    assert source_class(batch.support_x).max() < 6


def test_every_class_is_drawn_uniformly_enough():
    ds = make_dataset(num_classes=10)
    batch = EpisodeSampler(ds, n_way=2, k_shot=1, n_query=0, seed=0).sample_batch(2000)
    counts = torch.bincount(source_class(batch.support_x).flatten(), minlength=10).float()
    assert counts.min() > 0.8 * counts.mean()


def test_impossible_requests_name_the_numbers():
    ds = make_dataset(num_classes=4, per_class=8)
    with pytest.raises(ValueError, match=r"n_way = 5 but toy has only 4 classes"):
        EpisodeSampler(ds, n_way=5, k_shot=1, n_query=1)
    with pytest.raises(ValueError, match=r"k_shot \+ n_query = 9 but class 'class00' of toy has 8 examples"):
        EpisodeSampler(ds, n_way=2, k_shot=4, n_query=5)


def test_variable_episodes_respect_limits():
    ds = make_dataset(num_classes=30, per_class=12, uneven=True)
    sampler = VariableEpisodeSampler(ds, min_ways=5, max_ways=20, max_query=4, seed=0)
    ways = set()
    for _ in range(30):
        task = sampler.sample()
        assert isinstance(task, Task)
        n = task.n_way
        ways.add(n)
        assert 5 <= n <= 20
        shots = torch.bincount(task.support_y, minlength=n)
        queries = torch.bincount(task.query_y, minlength=n)
        assert shots.min() >= 1 and len(queries.unique()) == 1 and 1 <= int(queries[0]) <= 4
        src_s, src_q = source_class(task.support_x), source_class(task.query_x)
        ids = torch.cat([task.support_x[:, 0, 0], task.query_x[:, 0, 0]])
        assert len(ids.unique()) == len(ids)
        for label in range(n):
            assert (
                len(torch.cat([src_s[task.support_y == label], src_q[task.query_y == label]]).unique()) == 1
            )
    assert len(ways) > 3


def test_sinusoid_tasks_follow_the_maml_ranges():
    b = SinusoidSampler(k_shot=5, n_query=7, seed=0).sample_batch(500)
    assert b.support_x.shape == (500, 5, 1) and b.query_y.shape == (500, 7, 1)
    x = torch.cat([b.support_x, b.query_x], 1)
    y = torch.cat([b.support_y, b.query_y], 1)
    assert x.min() >= -5 and x.max() <= 5
    assert y.abs().max() <= 5
    # recover amplitude per task by least squares on sin/cos features: A in [0.1, 5]
    feats = torch.cat([torch.sin(x), torch.cos(x)], -1).double()
    coef = torch.linalg.lstsq(feats, y.double()).solution.squeeze(-1)
    amp = coef.norm(dim=-1)
    assert amp.min() >= 0.1 - 1e-6 and amp.max() <= 5 + 1e-6
    phase = torch.atan2(-coef[:, 1], coef[:, 0])  # A sin(x - p) = A cos p sin x - A sin p cos x
    assert phase.min() >= -1e-6 and phase.max() <= math.pi + 1e-6


def test_task_batch_validates_and_round_trips():
    t = Task(torch.zeros(5, 3), torch.arange(5), torch.zeros(10, 3), torch.arange(5).repeat(2))
    batch = TaskBatch.stack([t, t, t])
    assert len(batch) == 3 and batch.n_way == 5
    assert [len(c) for c in batch.chunks(2)] == [2, 1]
    assert torch.equal(batch[1].query_y, t.query_y)
    with pytest.raises(ValueError, match="equal shapes"):
        TaskBatch.stack([t, Task(torch.zeros(4, 3), torch.arange(4), torch.zeros(4, 3), torch.arange(4))])
    with pytest.raises(ValueError, match="support_x has 5 examples but support_y has 4"):
        Task(torch.zeros(5, 3), torch.arange(4), torch.zeros(5, 3), torch.arange(5))
