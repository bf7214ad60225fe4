"""One process of the 2-process test in test_distributed.py (``torchrun ... distributed_worker.py OUT``).

Each rank runs one distributed ``meta_step`` per learner on its shard of a fixed meta-batch and writes
its gradients, parameters after the Adam step, and reduced metrics to ``OUT/rank{r}.safetensors``. The
test computes the same step in one process with :func:`single_process_step` and compares.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from metadl.algorithms import LEARNERS, create_learner
from metadl.data.base import FewShotDataset
from metadl.models import create_backbone
from metadl.tasks import EpisodeSampler, TaskBatch
from metadl.training.distributed import DistributedContext
from metadl.training.meta import meta_step

META_BATCH = 4


def learners_to_test() -> list[str]:
    return [name for name in ("protonet", "maml", "reptile") if name in LEARNERS]


def problem(name: str) -> tuple[nn.Module, TaskBatch]:
    """A float64 learner (MLP backbone, no batch norm) and a meta-batch of 4 tasks, fixed by seeds."""
    torch.manual_seed(0)
    learner = create_learner(
        name, backbone=create_backbone("mlp", in_features=10, hidden=[16]), n_way=3
    ).double()
    g = torch.Generator().manual_seed(1)
    data = FewShotDataset(
        torch.randn(48, 10, generator=g), torch.arange(8).repeat_interleave(6), list("abcdefgh")
    )
    batch = EpisodeSampler(data, n_way=3, k_shot=2, n_query=2, seed=2).sample_batch(META_BATCH)
    return learner, TaskBatch(
        batch.support_x.double(), batch.support_y, batch.query_x.double(), batch.query_y
    )


def step(learner: nn.Module, batch: TaskBatch, ctx: DistributedContext) -> dict[str, torch.Tensor]:
    """Broadcast, one meta-step on this rank's shard, and what the test compares."""
    ctx.broadcast_parameters(learner)
    optimizer = torch.optim.Adam(learner.parameters(), lr=0.01)
    out = meta_step(learner, ctx.shard(batch), optimizer, distributed=ctx)
    result = {f"grad/{k}": p.grad.clone() for k, p in learner.named_parameters() if p.grad is not None}
    result |= {f"param/{k}": p.detach().clone() for k, p in learner.named_parameters()}
    result["loss"] = torch.tensor(ctx.reduce_mean(out.loss.item()), dtype=torch.float64)
    return result


def single_process_step(name: str) -> dict[str, torch.Tensor]:
    learner, batch = problem(name)
    return step(learner, batch, DistributedContext())


def unused_parameters(ctx: DistributedContext) -> dict[str, torch.Tensor]:
    """``a`` is used on every rank, ``b`` on rank 1 only, ``c`` nowhere: grads (2a, 3b on rank 1, None)."""
    module = nn.ParameterDict({k: nn.Parameter(torch.full((2,), float(i + 1))) for i, k in enumerate("abc")})
    loss = module["a"].square().sum() + (module["b"].pow(3).sum() if ctx.rank == 1 else 0)
    loss.backward()
    ctx.reduce_gradients(module)
    out = {f"unused/{k}": p.grad for k, p in module.items() if p.grad is not None}
    out["unused/c_is_none"] = torch.tensor(module["c"].grad is None)
    out["mean_tensor"] = ctx.reduce_mean(torch.tensor([float(ctx.rank), 1.0]))
    return out


def main(out_dir: str) -> None:
    ctx = DistributedContext.from_env("cpu")
    assert ctx.world_size == 2 and ctx.backend == "gloo", (ctx.world_size, ctx.backend)
    result: dict[str, torch.Tensor] = {}
    for name in learners_to_test():
        learner, batch = problem(name)
        if ctx.rank == 1:  # rank 1 starts from other weights: broadcast_parameters must fix that
            with torch.no_grad():
                for p in learner.parameters():
                    p.add_(1.0)
        result |= {f"{name}/{k}": v for k, v in step(learner, batch, ctx).items()}
    result |= unused_parameters(ctx)
    save_file(
        {k: v.contiguous() for k, v in result.items()}, str(Path(out_dir) / f"rank{ctx.rank}.safetensors")
    )
    # Leave the Gloo group together: a peer that disconnects while the other still has it open can
    # abort that process ("terminate called without an active exception"), as the trainer learned.
    ctx.barrier()
    ctx.close()


if __name__ == "__main__":
    main(sys.argv[1])
