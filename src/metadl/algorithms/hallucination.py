"""Feature hallucination (Wang, Girshick, Hebert & Hariharan, CVPR 2018) with a prototypical classifier.

A small generator network ``G`` makes extra support examples for each class of a task, in feature space,
from the class's few shots and noise:

    h_cj = s_c + G([s_c, eps_cj]),   eps_cj ~ N(0, I),   j = 1..n_generated

where ``s_c`` is the seed of class ``c`` (the mean embedding of its shots; with one shot, the shot
itself, as in the paper) and ``G`` is an MLP whose output is added to the seed (its last layer starts at
zero, so an untrained ``G`` copies the seed and training starts from a plain ProtoNet). The prototypes
are then the means of the real and hallucinated features of each class, and queries are scored by (negative squared Euclidean) distance to them, as in
:class:`~metadl.algorithms.protonet.ProtoNet`. ``G`` and the backbone are trained together, end to end,
by the query loss alone: the generator learns whatever extra examples make the classifier right, which
is the paper's meta-learned hallucinator ("PN w/ G").

Noise comes from torch's global generator while training (checkpointed with the run's RNG state, like
dropout); in eval mode and in ``adapt`` it comes from a generator seeded with ``seed`` on every call, so
the same support set always gives the same predictor.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from metadl.algorithms.base import Learner, LearnerOutput, Predictor, encode_labels, make_output
from metadl.algorithms.heads import embed_tasks
from metadl.algorithms.protonet import prototype_logits, prototypes
from metadl.models.base import Backbone
from metadl.tasks.task import TaskBatch


class Hallucinator(nn.Module):
    """``G``: seed features ``(..., D)`` plus noise -> hallucinated features ``(..., D)`` (seed + MLP residual).

    Example:
        >>> g = Hallucinator(features=4, noise=3, hidden=8)
        >>> g(torch.zeros(2, 5, 4), torch.randn(2, 5, 3)).shape
        torch.Size([2, 5, 4])
    """

    def __init__(self, *, features: int, noise: int, hidden: int) -> None:
        super().__init__()
        self.noise = noise
        self.net = nn.Sequential(
            nn.Linear(features + noise, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, features),
        )
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)  # untrained, G copies the seed: training starts from a plain ProtoNet
        nn.init.zeros_(last.bias)

    def forward(self, seed: Tensor, noise: Tensor) -> Tensor:
        return seed + self.net(torch.cat([seed, noise], -1))


class HallucinationNet(Learner):
    """Prototypical network whose support sets are enlarged by a jointly trained feature generator.

    Args:
        backbone: feature extractor (``out_features`` = D).
        n_way: classes per training episode (any number works at evaluation, as for ProtoNet).
        n_generated: hallucinated examples per class (0: a plain ProtoNet).
        noise_dim: size of the generator's noise (default D).
        hidden: width of the generator's two hidden layers (default D).
        seed: seed of the noise in eval mode.

    Example:
        >>> from metadl.models import create_backbone
        >>> net = HallucinationNet(backbone=create_backbone("mlp", in_features=4, hidden=[8]), n_way=3, n_generated=2)
        >>> b = TaskBatch(torch.randn(2, 3, 4), torch.arange(3).expand(2, 3), torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6))
        >>> net(b).logits.shape
        torch.Size([2, 6, 3])
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        n_way: int,
        n_generated: int = 5,
        noise_dim: int | None = None,
        hidden: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if n_generated < 0:
            raise ValueError(f"n_generated = {n_generated}: must be >= 0 (0 is a plain ProtoNet)")
        for key, value in (("noise_dim", noise_dim), ("hidden", hidden)):
            if value is not None and value < 1:
                raise ValueError(f"{key} = {value}: must be >= 1 (or None for the feature size)")
        d = backbone.out_features
        self.backbone, self.n_way, self.n_generated, self.seed = backbone, n_way, n_generated, seed
        self.generator = Hallucinator(features=d, noise=noise_dim or d, hidden=hidden or d)

    def hallucinate(
        self, support_z: Tensor, support_y: Tensor, n_way: int, *, seeded: bool
    ) -> tuple[Tensor, Tensor]:
        """Generated features ``(T, N * n_generated, D)`` and their labels ``(T, N * n_generated)``.

        Differentiable with respect to the support features and the generator's parameters. ``seeded``:
        noise from a generator seeded with ``self.seed`` (same output every call) instead of torch's global one.
        """
        t, m = support_z.shape[0], self.n_generated
        seeds = prototypes(support_z, support_y, n_way)  # (T, N, D): the class's mean shot
        seeds = seeds.repeat_interleave(m, dim=1)  # (T, N * m, D)
        shape = (t, n_way * m, self.generator.noise)
        if not seeded:
            noise = torch.randn(shape, device=support_z.device, dtype=support_z.dtype)
        else:
            g = torch.Generator(device=support_z.device).manual_seed(self.seed)
            noise = torch.randn(shape, generator=g, device=support_z.device, dtype=support_z.dtype)
        labels = torch.arange(n_way, device=support_y.device).repeat_interleave(m).expand(t, -1)
        return self.generator(seeds, noise), labels

    def class_prototypes(self, support_z: Tensor, support_y: Tensor, n_way: int, *, seeded: bool) -> Tensor:
        """``(T, N, D)`` means of each class's real and hallucinated features."""
        if self.n_generated == 0:
            return prototypes(support_z, support_y, n_way)
        fake_z, fake_y = self.hallucinate(support_z, support_y, n_way, seeded=seeded)
        return prototypes(torch.cat([support_z, fake_z], 1), torch.cat([support_y, fake_y], 1), n_way)

    def forward(self, batch: TaskBatch) -> LearnerOutput:
        z = embed_tasks(self.backbone, batch.support_x)
        protos = self.class_prototypes(z, batch.support_y, batch.n_way, seeded=not self.training)
        logits = prototype_logits(embed_tasks(self.backbone, batch.query_x), protos, "euclidean", 1.0)
        return make_output(logits, batch)

    @torch.no_grad()
    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        classes, y = encode_labels(support_y)
        z = embed_tasks(self.backbone, support_x.unsqueeze(0))
        protos = self.class_prototypes(z, y.unsqueeze(0), len(classes), seeded=True)
        return Predictor(
            lambda x: prototype_logits(embed_tasks(self.backbone, x.unsqueeze(0)), protos, "euclidean", 1.0)[
                0
            ],
            classes,
        )
