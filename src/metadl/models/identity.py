"""The identity backbone: features that are already vectors (frozen sentence embeddings) go straight to a head."""

from __future__ import annotations

from torch import Tensor

from metadl.models.base import Backbone


class Identity(Backbone):
    """``(B, in_features)`` -> the same ``(B, in_features)``; no parameters.

    How a learner runs on precomputed features: ``ProtoNet(backbone=Identity(in_features=384))``
    averages frozen sentence embeddings into prototypes; ``ANIL`` adapts only its head on them.

    Example:
        >>> Identity(in_features=3)(torch.ones(2, 3)).tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    input_kind = "vector"

    def __init__(self, *, in_features: int) -> None:
        super().__init__()
        if in_features < 1:
            raise ValueError(f"Identity needs in_features >= 1, got in_features={in_features}")
        self.out_features = in_features

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.out_features:
            raise ValueError(
                f"Identity(in_features={self.out_features}) got shape {tuple(x.shape)}; "
                f"expected (B, {self.out_features})"
            )
        return x
