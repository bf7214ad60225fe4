"""Every registered task source honours the contract; a newly registered one is tested here the moment it is added.

The contract (``metadl.tasks.source``): ``create_task_source(name, **kw)`` returns a ``TaskSource``; it
declares ``kind`` (classification: int64 labels in ``0..n_way-1``; regression: float ``(n, out)``
targets) and ``batchable``; the same seed gives the same tasks bit for bit; ``state_dict()`` holds
tensors only (it survives ``torch.load(weights_only=True)``, as checkpoints need) and restoring it
continues the stream exactly; support and query examples share their trailing shape; a ``NamedTask``
names every label it uses. ``BUILDERS`` holds a small instance of each entry: register a source and
add its builder here, or ``test_every_registered_source_has_a_builder`` fails.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from metadl.data.base import FewShotDataset
from metadl.tasks import GroupedTable, NamedTask, TaskSource, create_task_source, list_task_sources


def pool() -> FewShotDataset:
    return FewShotDataset(
        torch.randn(48, 2, 3), torch.arange(8).repeat_interleave(6), [f"c{i}" for i in range(8)]
    )


def images() -> FewShotDataset:
    """An unlabelled pool of small images (the unsupervised sources ignore its one label)."""
    g = torch.Generator().manual_seed(0)
    return FewShotDataset(torch.rand(30, 1, 6, 6, generator=g), torch.zeros(30, dtype=torch.long), ["all"])


def task_files(root: Path) -> dict[str, Any]:
    for task, labels in (("a", "xyz"), ("b", "uvw")):
        rows = "".join(f"{task} {label} {i},{label}\n" for label in labels for i in range(5))
        (root / f"{task}.csv").write_text("text,label\n" + rows)
    return {"root": root, "n_way": 2, "k_shot": 2, "n_query": 2}


def grouped(root: Path) -> dict[str, Any]:
    keys = [f"user{i % 4}" for i in range(40)]
    x = torch.randn(40, 3)
    return {"table": GroupedTable.from_columns(keys, x=x, y=x.sum(1)), "k_shot": 3, "n_query": 2}


def datasets(root: Path) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    for name, n in (("d1", 20), ("d2", 30)):
        np.savez(root / f"{name}.npz", X=rng.normal(size=(n, 4)), y=rng.integers(0, 3, n))
    return {"root": root}


def fertility(root: Path) -> dict[str, Any]:
    """Twenty countries in the World Bank wide format (the real file is tested in tests/unit/tasks)."""
    years = list(range(1960, 1970))
    lines = ["Country Name,Country Code,Indicator Name,Indicator Code," + ",".join(map(str, years))]
    for i in range(20):
        rates = ",".join(f"{6 - 0.3 * j + 0.1 * i:.2f}" for j in range(len(years)))
        lines.append(f"Land {i},C{i:02d},Fertility,SP.DYN.TFRT.IN,{rates}")
    (root / "fertility.csv").write_text("\n".join(lines) + "\n")
    return {"path": root / "fertility.csv", "min_years": 8, "k_shot": 3, "n_query": 4}


BUILDERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "alphabet_episodes": lambda root: {
        "dataset": pool(),
        "groups": list("aaaabbbb"),
        "n_way": 2,
        "k_shot": 1,
        "n_query": 2,
    },
    "episodes": lambda root: {"dataset": pool(), "n_way": 3, "k_shot": 2, "n_query": 1},
    "variable_episodes": lambda root: {"dataset": pool(), "min_ways": 2, "max_ways": 5},
    "sinusoid": lambda root: {"k_shot": 4, "n_query": 3},
    "task_files": task_files,
    "grouped_table": grouped,
    "datasets": datasets,
    "step_functions": lambda root: {"k_shot": 4, "n_query": 3},
    "sinusoid_2d": lambda root: {"k_shot": 4, "n_query": 3},
    "fertility": fertility,
    "umtra": lambda root: {"dataset": images(), "n_way": 3, "k_shot": 2, "n_query": 2},
    "cactus": lambda root: {
        "dataset": images(),
        "n_way": 2,
        "k_shot": 1,
        "n_query": 1,
        "clusters": 4,
        "dim": 4,
    },
}


@pytest.fixture(params=list_task_sources())
def build(request, tmp_path) -> Callable[[int], TaskSource]:
    name = request.param
    if name not in BUILDERS:
        pytest.fail(f"task source {name!r} has no builder in BUILDERS; add a small instance of it")
    kwargs = BUILDERS[name](tmp_path)
    return lambda seed: create_task_source(name, **kwargs, seed=seed)


def tensors(task: Any) -> list[torch.Tensor]:
    return [task.support_x, task.support_y, task.query_x, task.query_y]


def equal(a: list[Any], b: list[Any]) -> bool:
    return all(
        torch.equal(x, y)
        for s, t in zip(a, b, strict=True)
        for x, y in zip(tensors(s), tensors(t), strict=True)
    )


def test_every_registered_source_has_a_builder():
    assert sorted(BUILDERS) == list_task_sources()


def test_is_a_task_source_declaring_kind_and_batchable(build):
    source = build(0)
    assert isinstance(source, TaskSource)
    assert source.kind in ("classification", "regression") and isinstance(source.batchable, bool)


def test_same_seed_same_tasks_bit_for_bit_other_seed_other_tasks(build):
    a, b, c = build(3), build(3), build(4)
    ta, tb, tc = ([s.sample() for _ in range(5)] for s in (a, b, c))
    assert equal(ta, tb)
    assert not equal(ta, tc)


def test_state_round_trip_through_a_checkpoint_continues_the_stream(build):
    a = build(0)
    a.sample()
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    rest = [a.sample() for _ in range(4)]
    b = build(1)
    b.sample()
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer, weights_only=True))
    assert equal(rest, [b.sample() for _ in range(4)])


def test_task_shapes_and_dtypes_match_the_declared_kind(build):
    source = build(0)
    for _ in range(5):
        task = source.sample()
        assert task.support_x.shape[1:] == task.query_x.shape[1:] and len(task.support_x) > 0
        if source.kind == "classification":
            assert task.support_y.dtype == task.query_y.dtype == torch.long and task.support_y.dim() == 1
            labels = torch.cat([task.support_y, task.query_y])
            assert labels.min() >= 0
            if isinstance(task, NamedTask):  # every label it uses has a name
                assert int(labels.max()) < len(task.classes)
        else:
            assert torch.is_floating_point(task.support_y) and task.support_y.dim() == 2
            assert task.query_y.shape[1:] == task.support_y.shape[1:]


def test_batchable_sources_stack_a_batch_deterministically(build):
    a, b = build(5), build(5)
    if not a.batchable:
        assert len(a.sample_batch(1)) == 1
        return
    batch = a.sample_batch(3)
    assert len(batch) == 3 and batch.support_x.shape[0] == 3
    other = b.sample_batch(3)
    assert all(torch.equal(x, y) for x, y in zip(tensors(batch), tensors(other), strict=True))
