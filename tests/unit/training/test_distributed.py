"""Data-parallel meta-training: 2 Gloo processes on localhost give the single-process meta-gradient."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from engine_data import run_torchrun
from safetensors.torch import load_file

from metadl.tasks.task import TaskBatch
from metadl.training.distributed import DistributedContext, autocast

WORKER = Path(__file__).with_name("distributed_worker.py")


def worker_module():
    spec = importlib.util.spec_from_file_location("distributed_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def numbered_batch(tasks: int) -> TaskBatch:
    ids = torch.arange(float(tasks)).view(tasks, 1, 1).expand(tasks, 2, 3)
    y = torch.zeros(tasks, 2, dtype=torch.long)
    return TaskBatch(ids, y, ids + 100, y)


def test_shards_are_contiguous_equal_and_cover_the_batch():
    batch = numbered_batch(6)
    shards = [DistributedContext(rank=r, world_size=3).shard(batch) for r in range(3)]
    assert [s.support_x[:, 0, 0].tolist() for s in shards] == [[0, 1], [2, 3], [4, 5]]
    assert torch.equal(torch.cat([s.query_x for s in shards]), batch.query_x)
    assert DistributedContext().shard(batch) is batch


def test_a_meta_batch_that_does_not_divide_is_rejected_with_the_fix():
    with pytest.raises(ValueError, match=r"meta_batch=5 is not divisible by world_size=2; .*multiple of 2"):
        DistributedContext(rank=0, world_size=2).shard(numbered_batch(5))
    with pytest.raises(ValueError, match="0 <= rank < world_size"):
        DistributedContext(rank=2, world_size=2)


def test_without_torchrun_the_context_is_a_single_process_no_op(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    ctx = DistributedContext.from_env("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.is_distributed, ctx.device.type) == (
        0,
        1,
        True,
        False,
        "cpu",
    )
    module = torch.nn.Linear(2, 1)
    module(torch.ones(1, 2)).sum().backward()
    grad = module.weight.grad.clone()
    ctx.broadcast_parameters(module)
    ctx.reduce_gradients(module)
    assert torch.equal(module.weight.grad, grad)
    assert ctx.reduce_mean(1.5) == 1.5
    ctx.barrier()
    ctx.close()


def test_autocast_is_a_no_op_on_cpu():
    with autocast("cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_two_gloo_processes_match_one_process(tmp_path):
    """Meta-gradient, Adam step, reduced loss: rank 0 == rank 1 exactly, and == one process (float64)."""
    run = run_torchrun([str(WORKER), str(tmp_path)], timeout=180)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in range(2)]
    assert ranks[0].keys() == ranks[1].keys()
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key

    worker = worker_module()
    names = worker.learners_to_test()
    assert "protonet" in names
    for name in names:
        reference = worker.single_process_step(name)
        got = {k.removeprefix(f"{name}/"): v for k, v in ranks[0].items() if k.startswith(f"{name}/")}
        assert got.keys() == reference.keys()
        assert any(k.startswith("grad/") for k in got)
        for key, value in reference.items():
            torch.testing.assert_close(got[key], value, rtol=1e-10, atol=1e-12, msg=f"{name} {key}")

    r = ranks[0]
    torch.testing.assert_close(r["unused/a"], torch.full((2,), 2.0))  # d(a^2)/da = 2a on both ranks
    torch.testing.assert_close(r["unused/b"], torch.full((2,), 12.0 / 2))  # 3 b^2 = 12 on rank 1, 0 on rank 0
    assert bool(r["unused/c_is_none"])
    torch.testing.assert_close(r["mean_tensor"], torch.tensor([0.5, 1.0]))
