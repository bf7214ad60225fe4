"""The functional inner loop shared by the gradient-based learners (MAML, FOMAML, Meta-SGD, ANIL, Reptile).

How a meta-batch of T tasks is adapted:

* parameters are a dict ``name -> tensor``; the network is called with ``torch.func.functional_call``;
* per-task parameters carry a leading task dim: at step 0 they are views ``theta.expand(T, ...)`` of the
  shared parameters (no copy), after a step ``theta_t - lr * g_t``;
* the forward pass over the tasks is vectorised with ``torch.func.vmap`` (or, with ``vectorize=False``,
  a plain Python loop over tasks), so every task is its own batch and batch-norm statistics never mix
  tasks;
* the inner gradients of all tasks come from ONE ``torch.autograd.grad`` call on the sum of the
  per-task support losses with respect to the per-task parameters: tasks are independent, so slice t
  of the gradient is task t's own gradient. ``create_graph=True`` makes it second order.

Why ``vmap`` of the forward pass with ordinary autograd around it, rather than ``torch.func.grad``
inside ``vmap``: under ``vmap(grad(...))`` the backward pass runs through the batching rules of the
backward operators, and the batch-norm backward rule is wrong for second-order use
(pytorch/functorch#534, still open): with ``nn.BatchNorm2d`` the second-order meta-gradient of Conv-4
was 1.6% (float32) and 2.1% (float64) off a per-task loop on torch 2.13. Here backward and double
backward run on the ordinary (already batched) graph, which agrees with the per-task loop to 1e-15 in
float64 with either batch norm, at the same speed. Backbones must still use ``metadl.models.BatchNorm``
(:func:`check_batch_norm` refuses torch's, :func:`convert_batch_norm` swaps it): torch's layer updates
running statistics in place, which vmap cannot do per task.

Batch norm always normalises with the statistics of the batch it sees (the MAML convention; running
statistics are never used). ``transductive=True`` (default): a task's query set is one batch.
``transductive=False``: each query example is normalised together with the task's support set and
nothing else (support + that one example, the "non-transductive" protocol of Nichol et al. 2018), so
every query is predicted independently; it costs ``Q`` forward passes of ``S + 1`` examples per task.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from metadl.algorithms.base import (
    LearnerOutput,
    Predictor,
    encode_labels,
    make_output,
    precomputed_gradient,
    query_loss,
)
from metadl.models.base import Backbone
from metadl.models.layers import BatchNorm
from metadl.tasks.task import TaskBatch, is_classification

Params = dict[str, Tensor]
# One task's network: fn(params, x) with x (B, *x_shape) -> (B, out).
TaskFn = Callable[[Params, Tensor], Tensor]
# A learning rate per step: a float for every parameter, or one (broadcastable) tensor per parameter.
StepLR = float | Mapping[str, Tensor]


def check_batch_norm(module: nn.Module) -> None:
    """Raise if ``module`` holds torch's batch norm, which the gradient-based learners cannot run per task."""
    for name, sub in module.named_modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            raise ValueError(
                f"backbone layer {name!r} is {type(sub).__name__}; gradient-based learners run each task "
                "as its own batch under torch.func.vmap, where torch's batch norm cannot update its running "
                "statistics in place (and under vmap(grad) its second-order gradient is wrong, "
                "pytorch/functorch#534). Build the backbone with metadl.models.BatchNorm, or convert it: "
                "backbone = metadl.algorithms.convert_batch_norm(backbone)"
            )


def convert_batch_norm(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with every ``nn.BatchNorm1d/2d/3d`` replaced by ``metadl.models.BatchNorm``.

    Affine weights, running statistics, ``eps`` and ``momentum`` are copied (a layer without affine
    parameters gets ``weight=1, bias=0``, frozen). The original module is left untouched.

    Example:
        >>> net = convert_batch_norm(nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)))
        >>> type(net[1]).__name__
        'BatchNorm'
    """
    module = copy.deepcopy(module)
    for parent in list(module.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, child_name, _as_metadl_batch_norm(child))
    return module


def _as_metadl_batch_norm(old: nn.modules.batchnorm._BatchNorm) -> BatchNorm:
    new = BatchNorm(old.num_features, eps=old.eps, momentum=old.momentum or 0.1)
    with torch.no_grad():
        if old.affine:
            new.weight.copy_(old.weight)
            new.bias.copy_(old.bias)
        else:
            new.weight.requires_grad_(False)
            new.bias.requires_grad_(False)
        if old.running_mean is not None and old.running_var is not None:
            new.running_mean.copy_(old.running_mean)
            new.running_var.copy_(old.running_var)
    device = next((t.device for t in old.parameters()), None) or next((t.device for t in old.buffers()), None)
    return new.to(device) if device is not None else new


def use_batch_statistics(module: nn.Module) -> None:
    """Put every batch-norm layer in training mode: gradient-based learners always use batch statistics."""
    for sub in module.modules():
        if isinstance(sub, BatchNorm):
            sub.train(True)


def linear_head(backbone: Backbone, n_way: int | None, out_features: int | None) -> nn.Linear:
    """The learner's head: ``backbone.out_features -> n_way`` (classification) or ``-> out_features`` (regression)."""
    if (n_way is None) == (out_features is None):
        raise ValueError(
            f"give exactly one of n_way (classification) or out_features (regression), got "
            f"n_way={n_way}, out_features={out_features}"
        )
    size = n_way if n_way is not None else out_features
    assert size is not None  # exactly one of them was given
    if size < 1:
        raise ValueError(f"n_way / out_features must be >= 1, got {size}")
    return nn.Linear(backbone.out_features, size)


def module_fn(module: nn.Module, prefix: str = "") -> TaskFn:
    """``fn(params, x) = module(x)`` with the entries of ``params`` named ``prefix + <parameter name>``.

    Parameters missing from ``params`` (frozen ones) are the module's own. Buffers are passed as copies,
    so running statistics a layer updates outside ``vmap`` never change the learner's state.
    """
    buffers = {k: b.clone() for k, b in module.named_buffers()}
    n = len(prefix)

    def fn(params: Params, x: Tensor) -> Tensor:
        own = {k[n:]: v for k, v in params.items() if k.startswith(prefix)}
        return functional_call(module, (own, buffers), (x,))

    return fn


def compose(body: TaskFn, head: TaskFn) -> TaskFn:
    """``fn(params, x) = head(params, body(params, x))``."""
    return lambda params, x: head(params, body(params, x))


def trainable(module: nn.Module, prefix: str = "") -> Params:
    """The parameters that require grad, named as in ``module.named_parameters(prefix=prefix)``."""
    return {k: v for k, v in module.named_parameters(prefix=prefix.rstrip(".")) if v.requires_grad}


def has_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, BatchNorm) for m in module.modules())


@dataclass(frozen=True)
class InnerLoopSettings:
    """The inner-loop hyperparameters every gradient-based learner takes (validated here, named as in ``__init__``).

    Attributes:
        inner_steps: gradient steps on the support set during meta-training.
        eval_inner_steps: steps in eval mode and in ``adapt`` (``None``: same as ``inner_steps``).
        first_order: drop the second-order terms (inner gradients are treated as constants).
        transductive: batch norm over the whole query set (``True``) or each query with the support set.
        vectorize: ``torch.func.vmap`` over the tasks (``True``) or a Python loop over them.
        task_chunk_size: process the meta-batch in chunks of this many tasks, back-propagating each chunk
            inside ``forward`` so that only one chunk's activations are alive (``None``: one chunk).
    """

    inner_steps: int = 1
    eval_inner_steps: int | None = None
    first_order: bool = False
    transductive: bool = True
    vectorize: bool = True
    task_chunk_size: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.inner_steps, int) or self.inner_steps < 1:
            raise ValueError(f"inner_steps must be an int >= 1, got {self.inner_steps!r}")
        if self.eval_inner_steps is not None and (
            not isinstance(self.eval_inner_steps, int) or self.eval_inner_steps < 0
        ):
            raise ValueError(f"eval_inner_steps must be None or an int >= 0, got {self.eval_inner_steps!r}")
        if self.task_chunk_size is not None and (
            not isinstance(self.task_chunk_size, int) or self.task_chunk_size < 1
        ):
            raise ValueError(f"task_chunk_size must be None or an int >= 1, got {self.task_chunk_size!r}")

    def steps(self, training: bool) -> int:
        if training or self.eval_inner_steps is None:
            return self.inner_steps
        return self.eval_inner_steps


def check_lr(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def map_tasks(
    fn: Callable[..., Tensor], params: Params, *xs: Tensor, vectorize: bool, shared: bool = False
) -> Tensor:
    """``fn(params_t, *xs_t)`` for every task t, stacked: ``xs`` are ``(T, ...)``, the result ``(T, ...)``.

    ``params`` are per task ``(T, *shape)``, or the same for all tasks with ``shared=True``.
    """
    if vectorize:
        in_dims = (None if shared else 0, *(0,) * len(xs))
        return vmap(fn, in_dims=in_dims, randomness="different")(params, *xs)
    n = xs[0].shape[0]
    if shared:
        per_task = [params] * n
    else:  # unbind: one op whose backward stacks, instead of T index ops each scattering into a zero tensor
        columns = {k: v.unbind(0) for k, v in params.items()}
        per_task = [{k: c[t] for k, c in columns.items()} for t in range(n)]
    return torch.stack([fn(p, *(x[t] for x in xs)) for t, p in enumerate(per_task)])


def _lr(lr: StepLR, name: str) -> Tensor | float:
    return lr if isinstance(lr, float | int) else lr[name]


def inner_adapt(
    fn: TaskFn,
    params: Params,
    x: Tensor,
    y: Tensor,
    *,
    lrs: Sequence[StepLR],
    steps: int,
    first_order: bool,
    vectorize: bool,
) -> Params:
    """Gradient descent on each task's support set: ``x (T, S, *x_shape)``, ``y (T, S)`` or ``(T, S, out)``.

    Returns per-task parameters ``(T, *shape)``. Step ``i`` uses ``lrs[min(i, len(lrs) - 1)]``. When
    gradients are enabled the result is differentiable with respect to ``params`` (and learning-rate
    tensors): second order, or first order with ``first_order=True``. Under ``torch.no_grad()`` the
    inner gradients are still taken (adaptation needs them at test time) and the result is detached.

    Example:
        >>> net = nn.Linear(2, 1)
        >>> theta = dict(net.named_parameters())
        >>> phi = inner_adapt(module_fn(net), theta, torch.randn(3, 4, 2), torch.randn(3, 4, 1),
        ...                   lrs=[0.1], steps=2, first_order=False, vectorize=True)
        >>> phi["weight"].shape
        torch.Size([3, 1, 2])
    """
    outer_grad = torch.is_grad_enabled()
    create_graph = outer_grad and not first_order
    n_tasks = x.shape[0]
    with torch.enable_grad():
        adapted = {
            k: (v if v.requires_grad else v.detach().requires_grad_()).expand(n_tasks, *v.shape)
            for k, v in params.items()
        }
        for step in range(steps):
            out = map_tasks(fn, adapted, x, vectorize=vectorize)
            # Sum over tasks of each task's mean loss: tasks share no parameters (each has its own slice),
            # so slice t of the gradient is exactly task t's gradient.
            loss = query_loss(out, y) * n_tasks
            grads = torch.autograd.grad(loss, list(adapted.values()), create_graph=create_graph)
            lr = lrs[min(step, len(lrs) - 1)]
            adapted = {k: v - _lr(lr, k) * g for (k, v), g in zip(adapted.items(), grads, strict=True)}
    if not outer_grad:
        adapted = {k: v.detach() for k, v in adapted.items()}
    return adapted


# Non-transductive prediction runs (support + 1) examples per query: vmapping all queries at once would
# hold Q * (S + 1) examples' activations per task (23 GB for 16 tasks of 5-way 5-shot with 75 queries),
# so queries go through in chunks of about this many examples.
_QUERY_CHUNK_EXAMPLES = 64


def _one_query_at_a_time(fn: TaskFn) -> Callable[[Params, Tensor, Tensor], Tensor]:
    """Non-transductive prediction: each query example goes through ``fn`` appended to the support set."""

    def predict(params: Params, support_x: Tensor, query_x: Tensor) -> Tensor:
        def one(q: Tensor) -> Tensor:
            return fn(params, torch.cat([support_x, q.unsqueeze(0)]))[-1]

        chunk = max(1, _QUERY_CHUNK_EXAMPLES // (support_x.shape[0] + 1))
        return vmap(one, randomness="different", chunk_size=chunk)(query_x)

    return predict


def predict_tasks(
    fn: TaskFn,
    params: Params,
    support_x: Tensor,
    query_x: Tensor,
    *,
    transductive: bool,
    vectorize: bool,
    shared: bool = False,
) -> Tensor:
    """``fn`` on every task's query set ``(T, Q, *x_shape)`` -> ``(T, Q, out)``, batch norm as ``transductive`` says."""
    if transductive:
        return map_tasks(fn, params, query_x, vectorize=vectorize, shared=shared)
    return map_tasks(_one_query_at_a_time(fn), params, support_x, query_x, vectorize=vectorize, shared=shared)


def meta_output(
    query_logits: Callable[[TaskBatch], Tensor],
    batch: TaskBatch,
    parameters: Sequence[Tensor],
    task_chunk_size: int | None,
) -> LearnerOutput:
    """``LearnerOutput`` of ``query_logits(batch)``, optionally chunk by chunk to bound memory.

    With chunks (and gradients enabled) each chunk's share of the meta-loss is back-propagated right
    away, so only one chunk's graph is alive at a time; the returned loss is a value whose backward
    delivers the accumulated gradients to ``parameters``, so ``out.loss.backward()`` works as usual.
    The logits are then detached.
    """
    n = len(batch)
    if task_chunk_size is None or n <= task_chunk_size:
        return make_output(query_logits(batch), batch)
    params = [p for p in parameters if p.requires_grad]
    backprop = torch.is_grad_enabled() and bool(params)
    grads = [torch.zeros_like(p) for p in params]
    total, logits = torch.zeros(()), []
    for chunk in batch.chunks(task_chunk_size):
        out = make_output(query_logits(chunk), chunk)
        share = out.loss * (len(chunk) / n)
        if backprop:
            for acc, g in zip(grads, torch.autograd.grad(share, params, allow_unused=True), strict=True):
                if g is not None:
                    acc += g
        total = total.to(share) + share.detach()
        logits.append(out.logits.detach())
    loss = precomputed_gradient(total, grads, params) if backprop else total
    return LearnerOutput(loss=loss, logits=torch.cat(logits), query_y=batch.query_y)


def adapted_predictor(
    adapt_params: Callable[[Tensor, Tensor, int], Params],
    predict_logits: Callable[[Params, Tensor, Tensor], Tensor],
    support_x: Tensor,
    support_y: Tensor,
    *,
    steps: int,
    n_outputs: int,
) -> Predictor:
    """Adapt once to one support set and wrap the result as a ``Predictor``.

    ``adapt_params(sx, sy, steps)`` and ``predict_logits(params, sx, qx)`` work on a leading task dim
    (here 1). Class labels may be any integers; with fewer classes than the head has outputs, only the
    first ``len(classes)`` outputs are used.
    """
    if is_classification(support_y):
        classes, y = encode_labels(support_y)
        if len(classes) > n_outputs:
            raise ValueError(
                f"the support set has {len(classes)} classes but the learner's head has n_way={n_outputs}; "
                f"create the learner with n_way >= {len(classes)}"
            )
        width = len(classes)
    else:
        classes, y, width = None, support_y, n_outputs
    sx = support_x.unsqueeze(0)
    with torch.no_grad():  # the inner loop still takes its gradients (enable_grad inside)
        params = adapt_params(sx, y.unsqueeze(0), steps)

    def score(x: Tensor) -> Tensor:
        return predict_logits(params, sx, x.unsqueeze(0))[0, :, :width]

    return Predictor(score, classes)
