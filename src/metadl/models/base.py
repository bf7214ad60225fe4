"""The backbone contract: every backbone maps a batch of inputs to a batch of feature vectors."""

from __future__ import annotations

from torch import Tensor, nn


class Backbone(nn.Module):
    """A feature extractor: ``forward(x) -> (B, out_features)``.

    Subclasses set ``out_features`` and ``input_kind`` (``"image"``, ``"vector"``, ``"tokens"`` or
    ``"sequence"``) and implement ``forward``. ``features`` is the same call, named for readability
    where a learner composes a backbone with a head.
    """

    out_features: int
    input_kind: str

    def features(self, x: Tensor) -> Tensor:
        return self(x)
