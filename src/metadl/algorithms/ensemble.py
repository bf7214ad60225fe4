"""An ensemble of separately trained classifiers: the mean of their class probabilities on each episode.

Independently trained networks make partly independent mistakes, so averaging their predicted class
probabilities (not their logits, whose scales differ between distances and temperatures) is the usual
way to combine them (Lakshminarayanan et al. 2017). ``metadl eval RUN --ensemble RUN2 RUN3`` scores one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metadl.algorithms.base import Learner, LearnerOutput, Predictor
from metadl.tasks.task import TaskBatch


def mean_probabilities(logits: Sequence[Tensor]) -> Tensor:
    """Log of the mean softmax of several ``(..., N)`` logits (log-probabilities, so argmax and NLL work)."""
    probs = torch.stack([z.softmax(-1) for z in logits]).mean(0)
    return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()


class ProbabilityEnsemble(nn.Module):
    """Members' class probabilities averaged on the same episodes; ``logits`` are the log of the mean.

    Every member sees the same batch, in eval mode when the ensemble is. Classification only: a member
    whose output is not a classification raises ``ValueError``.

    Example:
        >>> from metadl.algorithms import create_learner
        >>> from metadl.models import create_backbone
        >>> def net(seed):
        ...     _ = torch.manual_seed(seed)
        ...     return create_learner("protonet", backbone=create_backbone("mlp", in_features=4, hidden=[8]), n_way=3)
        >>> b = TaskBatch(torch.randn(1, 3, 4), torch.arange(3).view(1, 3), torch.randn(1, 6, 4), torch.arange(3).repeat(2).view(1, 6))
        >>> out = ProbabilityEnsemble([net(0), net(1)])(b)
        >>> out.logits.shape, bool(torch.allclose(out.logits.exp().sum(-1), torch.ones(1, 6)))
        (torch.Size([1, 6, 3]), True)
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)

    def forward(self, batch: TaskBatch) -> LearnerOutput:
        outs = [member(batch) for member in self.members]
        if not all(out.is_classification for out in outs):
            raise ValueError("ProbabilityEnsemble averages class probabilities: every member must classify")
        logits = mean_probabilities([out.logits for out in outs])
        loss = F.nll_loss(logits.flatten(0, 1), outs[0].query_y.flatten())
        return LearnerOutput(loss=loss, logits=logits, query_y=outs[0].query_y)

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        """Each member adapted to the support set; the predictor averages their probabilities."""
        predictors = [
            member.adapt(support_x, support_y) for member in self.members if isinstance(member, Learner)
        ]
        if len(predictors) != len(self.members):
            raise TypeError("every member of the ensemble must be a Learner to adapt")
        scores = [p.decision_function for p in predictors]
        return Predictor(lambda x: mean_probabilities([score(x) for score in scores]), predictors[0].classes_)
