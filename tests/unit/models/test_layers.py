"""The primitive normalisation layers agree with torch's and stay exact under vmap second-order gradients."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from metadl.models.layers import BatchNorm, LayerNorm

DT = torch.float64


def test_layer_norm_matches_torch() -> None:
    torch.manual_seed(0)
    mine, ref = LayerNorm(6).to(DT), nn.LayerNorm(6).to(DT)
    with torch.no_grad():
        mine.weight.normal_()
        mine.bias.normal_()
    ref.load_state_dict(mine.state_dict())
    x = torch.randn(3, 4, 6, dtype=DT)
    torch.testing.assert_close(mine(x), ref(x), rtol=1e-12, atol=1e-12)


def test_batch_norm_matches_torch_in_train_and_eval() -> None:
    torch.manual_seed(0)
    mine, ref = BatchNorm(3).to(DT), nn.BatchNorm2d(3).to(DT)
    for _ in range(3):
        x = torch.randn(5, 3, 4, 4, dtype=DT)
        torch.testing.assert_close(mine(x), ref(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mine.running_var, ref.running_var, rtol=1e-12, atol=1e-12)
    mine.eval(), ref.eval()
    torch.testing.assert_close(mine(x), ref(x), rtol=1e-12, atol=1e-12)


def _meta_gradients(net: nn.Module) -> tuple[dict, dict]:
    """One inner step per task; vmapped vs looped gradient of the query loss w.r.t. the start."""
    params = {k: v.detach() for k, v in net.named_parameters()}
    xs, xq = torch.randn(2, 3, 5, 4, dtype=DT), torch.randn(2, 3, 5, 4, dtype=DT)

    def loss(p, x):
        return (functional_call(net, p, (x,)) ** 3).mean()

    def after_step(p, xs, xq):
        g = grad(loss)(p, xs)
        return loss({k: p[k] - 0.1 * g[k] for k in p}, xq)

    vmapped = grad(lambda p: vmap(after_step, in_dims=(None, 0, 0))(p, xs, xq).sum())(params)
    looped = grad(lambda p: sum(after_step(p, xs[t], xq[t]) for t in range(2)))(params)
    return vmapped, looped


def test_layer_norm_second_order_under_vmap_is_exact() -> None:
    torch.manual_seed(0)
    vmapped, looped = _meta_gradients(nn.Sequential(nn.Linear(4, 4), LayerNorm(4)).to(DT))
    for k in looped:
        torch.testing.assert_close(vmapped[k], looped[k], rtol=1e-10, atol=1e-12)
