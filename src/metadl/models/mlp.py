"""Feed-forward network for vector inputs (sinusoid regression, tabular features, embeddings)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from metadl.models.base import Backbone
from metadl.models.layers import BatchNorm


class MLP(Backbone):
    """``in_features -> hidden[0] -> ... -> hidden[-1]`` with ReLU (and optional BatchNorm) after each layer.

    Input ``(B, in_features)`` (any trailing shape is flattened); output ``(B, hidden[-1])``.
    The MAML sinusoid network is ``MLP(in_features=1, hidden=[40, 40])`` plus a linear head.

    Example:
        >>> MLP(in_features=1, hidden=[40, 40])(torch.randn(7, 1)).shape
        torch.Size([7, 40])
    """

    input_kind = "vector"

    def __init__(
        self, *, in_features: int, hidden: Sequence[int] = (40, 40), batch_norm: bool = False
    ) -> None:
        super().__init__()
        if in_features < 1 or not hidden or min(hidden) < 1:
            raise ValueError(
                f"MLP needs in_features >= 1 and non-empty positive hidden sizes, got {in_features}, {hidden}"
            )
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h)] + ([BatchNorm(h)] if batch_norm else []) + [nn.ReLU()]
            width = h
        self.net = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))
