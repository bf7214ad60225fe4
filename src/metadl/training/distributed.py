"""Data-parallel meta-training over processes launched by ``torchrun``, and the device helpers.

The meta-batch is split across processes by tasks. Every process samples the *same* full meta-batch
(same sampler seed), keeps its contiguous shard of ``meta_batch / world_size`` tasks, back-propagates the
mean loss over its shard, and the gradients are averaged across processes. Since every shard has the
same number of tasks, the average of the shard means is the mean over the whole meta-batch: each process
applies exactly the update one process would apply to the whole batch (up to float summation order),
with the same tasks. The training loop looks like::

    ctx = DistributedContext.from_env()           # no-op context unless launched by torchrun
    learner.to(ctx.device); ctx.broadcast_parameters(learner)
    sampler = EpisodeSampler(train, ..., seed=seed)                     # same seed on every process
    for it in range(iterations):
        batch = ctx.shard(sampler.sample_batch(meta_batch)).to(ctx.device)
        out = meta_step(learner, batch, optimizer, distributed=ctx)     # calls ctx.reduce_gradients
        loss = ctx.reduce_mean(out.loss.item())                         # the same on every process
        if ctx.is_main: log(...), save(...)
    ctx.close()

Launch on one machine with ``torchrun --standalone --nproc_per_node N -m metadl.cli train ...``, or on
several with ``torchrun --nnodes M --nproc_per_node N --rdzv_backend c10d --rdzv_endpoint HOST:PORT ...``
on each. The backend is NCCL on CUDA (one GPU per process, ``cuda:LOCAL_RANK``) and Gloo on CPU.

Caveat: a learner whose batch-norm statistics span the tasks of the whole meta-batch it is given (ProtoNet
and the head learners embed all tasks in one backbone call) sees other statistics on a shard, as plain
DDP without SyncBatchNorm does; learners vectorised per task with ``vmap`` (MAML) are unaffected.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn

from metadl.config import resolve_device
from metadl.tasks.task import TaskBatch


def autocast(device: str | torch.device, enabled: bool = True, dtype: torch.dtype = torch.bfloat16):
    """Mixed precision for the forward pass on CUDA (``torch.autocast("cuda", dtype=bfloat16)``); a no-op
    on CPU or when ``enabled`` is False.

    Use it around the forward only (``with autocast(device, amp): out = learner(batch)``) and call
    ``out.loss.backward()`` outside. bfloat16 has float32's exponent range, so no gradient scaler is needed.
    Parameters, gradients and optimizer state stay float32.

    Example:
        >>> with autocast("cpu"):
        ...     torch.ones(2, 2) @ torch.ones(2, 2)
        tensor([[2., 2.],
                [2., 2.]])
    """
    if enabled and torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def launched_by_torchrun() -> bool:
    """True when the environment holds torchrun's ``RANK`` and ``WORLD_SIZE``."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


@dataclass
class DistributedContext:
    """Where this process stands in a data-parallel run, and the collectives meta-training needs.

    Constructed directly it is a description only (``DistributedContext()`` is the single-process
    context); :meth:`from_env` joins the process group torchrun set up.

    Attributes:
        rank, world_size: this process's index and the number of processes.
        local_rank: index on this machine (selects the GPU).
        device: where this process computes.
        backend: ``"gloo"``, ``"nccl"``, or ``None`` when no process group is used.

    Example:
        >>> ctx = DistributedContext(rank=1, world_size=2)   # a description: shard() needs no group
        >>> b = TaskBatch(torch.arange(4.).view(4, 1, 1), torch.zeros(4, 1, dtype=torch.long),
        ...               torch.zeros(4, 1, 1), torch.zeros(4, 1, dtype=torch.long))
        >>> ctx.shard(b).support_x.flatten().tolist()
        [2.0, 3.0]
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    owns_group: bool = False

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(
                f"need 0 <= rank < world_size, got rank={self.rank}, world_size={self.world_size}"
            )
        self.device = torch.device(self.device)

    @classmethod
    def from_env(
        cls, device: str = "auto", *, backend: str | None = None, timeout_s: float = 1800.0
    ) -> DistributedContext:
        """Join the process group described by torchrun's environment, or return a single-process context.

        Args:
            device: ``"auto"`` (CUDA if available, else CPU), ``"cuda"`` or ``"cpu"``
                (:func:`metadl.config.resolve_device`). On CUDA each process uses ``cuda:LOCAL_RANK``.
            backend: override the default (NCCL on CUDA, Gloo on CPU).
            timeout_s: how long a collective may wait for the other processes.
        """
        dev = resolve_device(device)
        if not launched_by_torchrun():
            return cls(device=dev)
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if dev.type == "cuda":
            if local_rank >= torch.cuda.device_count():
                raise RuntimeError(
                    f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} GPUs; "
                    "use --nproc_per_node <= the number of GPUs"
                )
            dev = torch.device("cuda", local_rank)
            torch.cuda.set_device(dev)
        if dist.is_initialized():
            return cls(rank, world, local_rank, dev, dist.get_backend(), owns_group=False)
        backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
        dist.init_process_group(
            backend,
            init_method="env://",
            rank=rank,
            world_size=world,
            timeout=timedelta(seconds=timeout_s),
            device_id=dev if backend == "nccl" else None,
        )
        return cls(rank, world, local_rank, dev, backend, owns_group=True)

    @property
    def is_main(self) -> bool:
        """True on the process that logs, evaluates and saves (rank 0)."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.backend is not None and self.world_size > 1

    def shard(self, batch: TaskBatch) -> TaskBatch:
        """This process's contiguous share of the meta-batch: tasks ``rank * T/W .. (rank + 1) * T/W``."""
        t = len(batch)
        if t % self.world_size:
            raise ValueError(
                f"meta_batch={t} is not divisible by world_size={self.world_size}; use a meta_batch that is a "
                f"multiple of {self.world_size} (e.g. {self.world_size * max(1, round(t / self.world_size))}) "
                "so every process gets as many tasks"
            )
        per = t // self.world_size
        if self.world_size == 1:
            return batch
        part = slice(self.rank * per, (self.rank + 1) * per)
        return TaskBatch(*(getattr(batch, f.name)[part] for f in fields(batch)))

    def reduce_gradients(self, module: nn.Module) -> None:
        """Average ``.grad`` of every trainable parameter across processes (sum / world_size).

        A parameter whose gradient is ``None`` on some processes (unused by their shard) counts as zero
        there; it stays ``None`` only if it is ``None`` on every process, so all processes keep identical
        gradients and optimizer states.
        """
        if not self.is_distributed:
            return
        params = [p for p in module.parameters() if p.requires_grad]
        if any(p.grad is not None and p.grad.is_sparse for p in params):
            raise ValueError("reduce_gradients supports dense gradients only")
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=self.device)
        dist.all_reduce(has)
        used = [p for p, h in zip(params, has.tolist(), strict=True) if h > 0]
        for group in _by_dtype(used):
            flat = torch.cat(
                [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in group]
            )
            dist.all_reduce(flat)
            flat.div_(self.world_size)
            for p, chunk in zip(group, flat.split([p.numel() for p in group]), strict=True):
                if p.grad is None:
                    p.grad = chunk.view_as(p).clone()
                else:
                    p.grad.copy_(chunk.view_as(p))

    def broadcast_parameters(self, module: nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every process (call once, before training).

        First checks that every process built the same module (names, shapes, dtypes), so a mismatch
        fails with a message instead of a hang or silent garbage.
        """
        if not self.is_distributed:
            return
        tensors = dict(module.named_parameters()) | dict(module.named_buffers())
        layout = ";".join(f"{k}:{tuple(v.shape)}:{v.dtype}" for k, v in tensors.items())
        h = int.from_bytes(hashlib.sha256(layout.encode()).digest()[:7], "big")
        check = torch.tensor([h, -h], dtype=torch.int64, device=self.device)
        dist.all_reduce(check, op=dist.ReduceOp.MAX)
        if check.tolist() != [h, -h]:
            raise RuntimeError(
                f"rank {self.rank}: the processes built different modules (parameter names, shapes or dtypes "
                "differ); every process must construct the learner from the same config"
            )
        with torch.no_grad():
            for group in _by_dtype(list(tensors.values())):
                flat = torch.cat([t.reshape(-1) for t in group])
                dist.broadcast(flat, src=0)
                for t, chunk in zip(group, flat.split([t.numel() for t in group]), strict=True):
                    t.copy_(chunk.view_as(t))

    def reduce_mean(self, value: float | Tensor) -> float | Tensor:
        """Mean of ``value`` over processes (a float comes back as a float, a tensor as a tensor)."""
        if not self.is_distributed:
            return value
        if isinstance(value, Tensor):
            t = value.detach().to(self.device, torch.float64, copy=True)
            dist.all_reduce(t)
            t = t.div_(self.world_size)
            return t.to(value.device, value.dtype if value.is_floating_point() else torch.float32)
        t = torch.tensor(float(value), dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.item() / self.world_size

    def any_process(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any process (so that all of them take the same branch)."""
        if not self.is_distributed:
            return flag
        t = torch.tensor(int(flag), dtype=torch.int64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.is_distributed:
            if self.backend == "nccl":
                dist.barrier(device_ids=[self.device.index or 0])
            else:
                dist.barrier()

    def close(self) -> None:
        """Leave the process group, if this context created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
        self.owns_group = False

    def __enter__(self) -> DistributedContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _by_dtype(tensors: Sequence[Tensor]) -> list[list[Tensor]]:
    """Group tensors by dtype, keeping their order (one flat buffer per dtype per collective)."""
    groups: dict[torch.dtype, list[Tensor]] = {}
    for t in tensors:
        groups.setdefault(t.dtype, []).append(t)
    return list(groups.values())
