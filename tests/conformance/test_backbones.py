"""Every registered backbone honours the contract; a newly registered one fails here until it has a config.

The contract: ``forward(x) -> (B, out_features)``; gradients reach every parameter; eval mode is
deterministic and per-example (batch size 1 gives the same features); bad constructor arguments
fail with a message naming them; and the backbone runs under ``torch.func.functional_call`` +
``vmap`` over a leading task dim with first- and second-order gradients equal to a per-task
autograd loop (how the gradient-based meta-learners run it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.func import functional_call, grad, vmap

from metadl.models import Backbone, create_backbone, list_backbones

INPUT_KINDS = {"image", "vector", "tokens", "sequence"}
VOCAB = 13


def images(c: int, side: int) -> Callable[[int, torch.Generator], Tensor]:
    return lambda b, g: torch.randn(b, c, side, side, generator=g)


def vectors(f: int) -> Callable[[int, torch.Generator], Tensor]:
    return lambda b, g: torch.randn(b, f, generator=g)


def vector_sequences(length: int, f: int) -> Callable[[int, torch.Generator], Tensor]:
    return lambda b, g: torch.randn(b, length, f, generator=g)


def tokens(length: int) -> Callable[[int, torch.Generator], Tensor]:
    """Token ids in 1..VOCAB-1 with trailing padding (id 0); every row keeps at least one real token."""

    def make(b: int, g: torch.Generator) -> Tensor:
        ids = torch.randint(1, VOCAB, (b, length), generator=g)
        lengths = torch.randint(1, length + 1, (b,), generator=g)
        return ids.masked_fill(torch.arange(length) >= lengths[:, None], 0)

    return make


def token_states(length: int, width: int) -> Callable[[int, torch.Generator], Tensor]:
    """Flattened ``(length, width + 1)`` token states whose last channel is a trailing-padding mask."""

    def make(b: int, g: torch.Generator) -> Tensor:
        lengths = torch.randint(1, length + 1, (b,), generator=g)
        mask = (torch.arange(length) < lengths[:, None]).float()
        return torch.cat([torch.randn(b, length, width, generator=g), mask[..., None]], -1).flatten(1)

    return make


@dataclass(frozen=True)
class Config:
    kwargs: dict[str, Any]
    make_input: Callable[[int, torch.Generator], Tensor]
    bad: dict[str, Any] = field(default_factory=dict)  # an out-of-range value -> ValueError naming the key


# Small widths so the whole file runs in seconds. A new backbone needs an entry here.
CONFIGS: dict[str, Config] = {
    "identity": Config({"in_features": 5}, vectors(5), {"in_features": 0}),
    "mlp": Config({"in_features": 5, "hidden": [7, 6], "batch_norm": True}, vectors(5), {"in_features": 0}),
    "conv4": Config({"in_channels": 2, "hidden": 4, "image_size": 16}, images(2, 16), {"image_size": 8}),
    "resnet12": Config({"in_channels": 3, "channels": (3, 4, 5, 6)}, images(3, 16), {"channels": (4, 6, 8)}),
    "lstm": Config(
        {"vocab_size": VOCAB, "embed_dim": 4, "hidden_size": 5, "num_layers": 2, "bidirectional": True},
        tokens(6),
        {"pool": "max"},
    ),
    "gru": Config(
        {"in_features": 3, "hidden_size": 5, "pool": "mean"}, vector_sequences(4, 3), {"hidden_size": 0}
    ),
    "attention": Config(
        {"in_features": 3, "d_model": 8, "num_heads": 2, "ff_dim": 12},
        vector_sequences(5, 3),
        {"num_heads": 3},
    ),
    "transformer": Config(
        {"vocab_size": VOCAB, "d_model": 8, "num_heads": 2, "num_layers": 2, "ff_dim": 12, "pool": "cls"},
        tokens(6),
        {"positional": "rotary"},
    ),
    "bert_top": Config(
        {"max_length": 5, "hidden_size": 6, "num_layers": 2, "num_heads": 2, "intermediate_size": 8},
        token_states(5, 6),
        {"num_heads": 4},
    ),
}


def config(name: str) -> Config:
    if name not in CONFIGS:
        pytest.fail(
            f"backbone {name!r} is registered but has no test config: add one to CONFIGS in {__file__}"
        )
    return CONFIGS[name]


def build(name: str, seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[Backbone, Callable]:
    torch.manual_seed(seed)
    net = create_backbone(name, **config(name).kwargs).to(dtype)
    g = torch.Generator().manual_seed(seed + 1)

    def make_input(b: int) -> Tensor:
        x = config(name).make_input(b, g)
        return x.to(dtype) if x.is_floating_point() else x

    return net, make_input


def skip_without_parameters(net: torch.nn.Module, name: str) -> None:
    """A backbone without parameters (``identity``) has no gradients to check."""
    if not list(net.parameters()):
        pytest.skip(f"{name} has no parameters")


def test_every_registered_backbone_has_a_config() -> None:
    missing = sorted(set(list_backbones()) - set(CONFIGS))
    assert not missing, f"add a test config for {missing} to CONFIGS in {__file__}"


@pytest.mark.parametrize("name", list_backbones())
def test_output_shape_and_attributes(name: str) -> None:
    net, make_input = build(name)
    assert isinstance(net, Backbone)
    assert isinstance(net.out_features, int) and net.out_features > 0
    assert net.input_kind in INPUT_KINDS
    for training in (True, False):
        net.train(training)
        out = net(make_input(4))
        assert out.shape == (4, net.out_features)
        assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_backbones())
def test_gradient_reaches_every_parameter(name: str) -> None:
    net, make_input = build(name)
    skip_without_parameters(net, name)
    x = make_input(4)
    w = torch.randn(net.out_features)
    for training in (True, False):
        net.train(training)
        net.zero_grad()
        (net(x) @ w).sum().backward()
        for pname, p in net.named_parameters():
            assert p.grad is not None, f"{name}: no gradient reaches {pname} (training={training})"
            assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"
            # In training mode a bias right before a batch norm (Conv4's conv bias) has an exactly zero
            # gradient, so "nonzero" is checked in eval mode, where batch norm is a fixed affine map.
            if not training:
                assert p.grad.abs().sum() > 0, f"{name}: zero gradient for {pname} in eval mode"


@pytest.mark.parametrize("name", list_backbones())
def test_eval_is_deterministic_and_works_on_batch_size_one(name: str) -> None:
    net, make_input = build(name)
    net.train()
    net(make_input(6))  # move any running statistics away from their initial values
    net.eval()
    x = make_input(5)
    with torch.no_grad():
        out = net(x)
        assert torch.equal(out, net(x))
        single = net(x[:1])
    assert single.shape == (1, net.out_features)
    torch.testing.assert_close(single, out[:1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list_backbones())
def test_bad_arguments_fail_clearly(name: str) -> None:
    cfg = config(name)
    with pytest.raises(TypeError, match=rf"create_backbone\('{name}'\).*not_an_argument"):
        create_backbone(name, **cfg.kwargs, not_an_argument=1)
    assert cfg.bad, f"give the {name!r} config an out-of-range argument in `bad`"
    (key,) = cfg.bad
    with pytest.raises(ValueError, match=key):
        create_backbone(name, **{**cfg.kwargs, **cfg.bad})


def _loss_fn(net: Backbone, buffers: dict[str, Tensor], head: Tensor) -> Callable:
    def loss(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return ((functional_call(net, (params, buffers), (x,)) @ head - y) ** 2).mean()

    return loss


def _tasks(make_input: Callable, n_tasks: int, n: int) -> tuple[Tensor, Tensor]:
    x = torch.stack([make_input(n) for _ in range(n_tasks)])  # (T, n, *x_shape)
    return x, torch.randn(n_tasks, n, dtype=torch.float64)


def _rel_err(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    num = sum(float((a[k] - b[k]).pow(2).sum()) for k in b) ** 0.5
    return num / max(sum(float(b[k].pow(2).sum()) for k in b) ** 0.5, 1e-300)


@pytest.mark.parametrize("name", list_backbones())
def test_vmapped_per_task_gradients_match_a_loop(name: str) -> None:
    """First order, with per-task parameters (as after MAML's first inner step), float64, train mode."""
    net, make_input = build(name, dtype=torch.float64)
    skip_without_parameters(net, name)
    params = {k: v.detach() for k, v in net.named_parameters()}
    buffers = {k: v.detach().clone() for k, v in net.named_buffers()}
    loss = _loss_fn(net, buffers, torch.randn(net.out_features, dtype=torch.float64))
    n_tasks = 3
    per_task = {k: p + 0.01 * torch.randn(n_tasks, *p.shape, dtype=p.dtype) for k, p in params.items()}
    x, y = _tasks(make_input, n_tasks, 4)
    vmapped = vmap(grad(loss))(per_task, x, y)
    for t in range(n_tasks):
        p_t = {k: v[t].clone().requires_grad_() for k, v in per_task.items()}
        looped = dict(zip(p_t, torch.autograd.grad(loss(p_t, x[t], y[t]), list(p_t.values())), strict=True))
        err = _rel_err({k: v[t] for k, v in vmapped.items()}, looped)
        assert err < 1e-10, f"{name}: vmapped gradient of task {t} is off by {err:.2e} (relative L2)"


@pytest.mark.parametrize("name", list_backbones())
def test_vmapped_second_order_meta_gradient_matches_a_loop(name: str) -> None:
    """One MAML inner step per task, then the gradient of the summed query loss w.r.t. the shared start."""
    net, make_input = build(name, dtype=torch.float64)
    skip_without_parameters(net, name)
    params = {k: v.detach() for k, v in net.named_parameters()}
    buffers = {k: v.detach().clone() for k, v in net.named_buffers()}
    loss = _loss_fn(net, buffers, torch.randn(net.out_features, dtype=torch.float64))
    lr, n_tasks = 0.1, 3
    xs, ys = _tasks(make_input, n_tasks, 4)
    xq, yq = _tasks(make_input, n_tasks, 3)

    def query_loss_after_step(p: dict[str, Tensor], xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor) -> Tensor:
        g = grad(loss)(p, xs, ys)
        return loss({k: p[k] - lr * g[k] for k in p}, xq, yq)

    vmapped = grad(
        lambda p: vmap(query_loss_after_step, in_dims=(None, 0, 0, 0, 0))(p, xs, ys, xq, yq).sum()
    )(params)
    p = {k: v.clone().requires_grad_() for k, v in params.items()}
    total = torch.zeros((), dtype=torch.float64)
    for t in range(n_tasks):
        g = torch.autograd.grad(loss(p, xs[t], ys[t]), list(p.values()), create_graph=True)
        fast = {k: v - lr * gk for (k, v), gk in zip(p.items(), g, strict=True)}
        total = total + loss(fast, xq[t], yq[t])
    looped = dict(zip(p, torch.autograd.grad(total, list(p.values())), strict=True))
    err = _rel_err(vmapped, looped)
    assert err < 1e-10, f"{name}: vmapped second-order meta-gradient is off by {err:.2e} (relative L2)"
