"""Pre-train, then meta-train; and the frozen pre-trained-feature baselines (SimpleShot, LR).

Two uses of a backbone pre-trained with the supervised pipeline on all training classes
(:func:`metadl.training.supervised.train_supervised`):

* **Pre-train then meta-train** (:func:`pretrain_then_meta_train`; the recipe of MetaOptNet's and
  "Meta-Baseline"'s strongest variants): any registered learner is built on the pre-trained backbone
  and meta-trained episodically from there.
* **Frozen-feature baselines** (Wang et al. 2019, SimpleShot; Tian et al. 2020). These are not new
  learners but a composition: :class:`FrozenFeatures` wraps the pre-trained backbone (frozen, always
  in eval mode, features centred on the mean training feature and L2-normalised), and an existing
  learner does the rest: ``protonet`` on it *is* SimpleShot's nearest-centroid classifier (squared
  Euclidean distance to class means of CL2N features), ``logreg`` on it is the logistic-regression
  baseline. :func:`frozen_baseline` builds either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metadl.algorithms.registry import create_learner
from metadl.data.base import FewShotDataset
from metadl.models.base import Backbone
from metadl.tasks.samplers import EpisodeSampler
from metadl.training.meta import meta_train
from metadl.training.supervised import SupervisedResult, train_supervised

BASELINE_HEADS = {"centroid": "protonet", "logreg": "logreg"}


class FrozenFeatures(Backbone):
    """A frozen backbone whose features are centred by ``mean`` and L2-normalised ("CL2N").

    The wrapped backbone's parameters get ``requires_grad = False`` and it stays in eval mode whatever
    mode the wrapper is put in, so a learner built on it adapts only its own head.

    Args:
        backbone: the pre-trained feature extractor (frozen in place).
        mean: ``(D,)`` feature to subtract (SimpleShot's mean over the training examples); ``None`` skips it.
        normalize: L2-normalise after centring.

    Example:
        >>> from metadl.models import create_backbone
        >>> frozen = FrozenFeatures(create_backbone("mlp", in_features=3, hidden=[4]), mean=torch.ones(4))
        >>> torch.allclose(frozen(torch.randn(5, 3)).norm(dim=1), torch.ones(5))
        True
    """

    def __init__(self, backbone: Backbone, *, mean: Tensor | None = None, normalize: bool = True) -> None:
        super().__init__()
        if mean is not None and mean.shape != (backbone.out_features,):
            raise ValueError(
                f"mean has shape {tuple(mean.shape)}; expected ({backbone.out_features},), one per feature"
            )
        self.backbone = backbone.requires_grad_(False).eval()
        self.out_features, self.input_kind, self.normalize = (
            backbone.out_features,
            backbone.input_kind,
            normalize,
        )
        self.register_buffer(
            "mean", mean.detach().clone() if mean is not None else torch.zeros(backbone.out_features)
        )

    def train(self, mode: bool = True) -> FrozenFeatures:
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        z = self.backbone(x) - self.mean
        return F.normalize(z, dim=-1) if self.normalize else z


@torch.no_grad()
def mean_feature(
    backbone: Backbone, dataset: FewShotDataset, *, batch_size: int = 512, device: str = "cpu"
) -> Tensor:
    """``(D,)`` mean eval-mode feature over every example of ``dataset``."""
    was_training = backbone.training
    backbone.eval()
    total = torch.zeros(backbone.out_features, dtype=torch.float64, device=device)
    for start in range(0, len(dataset), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(dataset)))
        total += backbone(dataset.gather(idx).to(device)).double().sum(0)
    backbone.train(was_training)
    return (total / len(dataset)).float()


def frozen_baseline(
    backbone: Backbone,
    train: FewShotDataset,
    *,
    n_way: int,
    head: str = "centroid",
    center: bool = True,
    normalize: bool = True,
    device: str = "cpu",
    **head_kwargs: Any,
) -> nn.Module:
    """SimpleShot-style learner on frozen pre-trained features: ``head="centroid"`` or ``"logreg"``.

    ``center`` subtracts the mean feature of ``train`` (the pre-training classes, never the test
    classes); ``head_kwargs`` go to the head's learner (e.g. ``C=`` for ``logreg``).
    """
    if head not in BASELINE_HEADS:
        raise ValueError(f"head={head!r}; choose one of {sorted(BASELINE_HEADS)}")
    mean = mean_feature(backbone, train, device=device) if center else None
    features = FrozenFeatures(backbone, mean=mean, normalize=normalize)
    return create_learner(BASELINE_HEADS[head], backbone=features, n_way=n_way, **head_kwargs).to(device)


@dataclass
class PretrainResult:
    """The meta-trained learner, the supervised pre-training result and the meta-training curve."""

    learner: nn.Module
    supervised: SupervisedResult
    meta_history: list[dict[str, float]] = field(default_factory=list)


def pretrain_then_meta_train(
    learner: str,
    backbone: Backbone,
    train: FewShotDataset,
    *,
    n_way: int,
    k_shot: int,
    n_query: int,
    pretrain_epochs: int = 10,
    pretrain_lr: float = 1e-3,
    batch_size: int = 128,
    weight_decay: float = 5e-4,
    meta_iterations: int = 100,
    meta_batch: int = 8,
    meta_lr: float = 1e-3,
    learner_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> PretrainResult:
    """Pre-train ``backbone`` on all classes of ``train``, then meta-train ``learner`` on episodes of ``train``.

    Args:
        learner: a registered learner name (``protonet``, ``svm``, ...). A learner that cannot be
            meta-trained (``Capabilities(meta_trainable=False)``, e.g. ``randomforest``) is returned right after
            pre-training, with an empty meta-training curve.
        backbone: modified in place (pre-trained, then meta-trained as part of the learner).
        train: the training split (its classes are the pre-training classes and the episode classes).
        n_way, k_shot, n_query: episode shape for meta-training.
        pretrain_epochs, pretrain_lr, batch_size, weight_decay: passed to ``train_supervised``.
        meta_iterations, meta_batch, meta_lr: Adam meta-training on ``meta_batch`` tasks per step.
        learner_kwargs: extra hyperparameters of the learner.
        seed: seeds pre-training and the episode sampler.

    Example:
        >>> from metadl.models import create_backbone
        >>> ds = FewShotDataset(torch.randn(120, 4), torch.arange(12).repeat_interleave(10), list("abcdefghijkl"))
        >>> res = pretrain_then_meta_train("protonet", create_backbone("mlp", in_features=4, hidden=[8]), ds,
        ...     n_way=3, k_shot=1, n_query=2, pretrain_epochs=1, meta_iterations=2)
        >>> len(res.supervised.history), len(res.meta_history)
        (1, 2)
    """
    supervised = train_supervised(
        backbone,
        train,
        epochs=pretrain_epochs,
        lr=pretrain_lr,
        batch_size=batch_size,
        weight_decay=weight_decay,
        seed=seed,
        device=device,
        progress=progress,
    )
    model = create_learner(learner, backbone=supervised.backbone, n_way=n_way, **(learner_kwargs or {})).to(
        device
    )
    if not model.capabilities.meta_trainable or meta_iterations == 0:
        return PretrainResult(model, supervised)
    sampler = EpisodeSampler(train, n_way=n_way, k_shot=k_shot, n_query=n_query, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=meta_lr)
    history = meta_train(
        model,
        sampler,
        optimizer,
        iterations=meta_iterations,
        meta_batch=meta_batch,
        device=device,
        progress=progress,
    )
    return PretrainResult(model, supervised, history)
