"""The plain supervised pipeline: preprocess, build, train, test.

Trains a backbone plus a linear classifier with cross-entropy over all classes of a split. Used on its
own (a supervised baseline) and to pre-train backbones for few-shot learners ("Rethinking few-shot",
SimpleShot): after training, ``result.backbone`` is the pre-trained feature extractor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from metadl.data.base import FewShotDataset
from metadl.models.base import Backbone


def split_examples(
    dataset: FewShotDataset, *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[FewShotDataset, FewShotDataset]:
    """Preprocess: hold out ``test_fraction`` of each class's examples (same classes in both parts).

    Example:
        >>> ds = FewShotDataset(torch.randn(20, 3), torch.arange(2).repeat_interleave(10), ["a", "b"])
        >>> train, test = split_examples(ds, test_fraction=0.3)
        >>> len(train), len(test), test.num_classes
        (14, 6, 2)
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    g = torch.Generator().manual_seed(seed)
    # Per-class random order via argsort of noise offset by label: classes stay grouped.
    order = torch.argsort(
        dataset.labels.double() + torch.rand(len(dataset), generator=g, dtype=torch.float64)
    )
    rank = torch.arange(len(dataset)) - dataset.class_offsets[dataset.labels[order]]
    n_test = (dataset.class_counts.double() * test_fraction).round().long().clamp(min=1)
    short = (dataset.class_counts - n_test < 1).nonzero().flatten().tolist()
    if short:
        raise ValueError(
            f"class '{dataset.class_names[short[0]]}' has {int(dataset.class_counts[short[0]])} example(s): "
            f"too few to hold out test_fraction={test_fraction}; lower it or drop classes with one example"
        )
    is_test = rank < n_test[dataset.labels[order]]
    names = list(dataset.class_names)
    test = FewShotDataset(
        dataset.data[order[is_test]], dataset.labels[order[is_test]], names, dataset.name + "/test"
    )
    train = FewShotDataset(
        dataset.data[order[~is_test]], dataset.labels[order[~is_test]], names, dataset.name + "/train"
    )
    return train, test


class Classifier(nn.Module):
    """Build: a backbone followed by a linear head over ``num_classes`` classes."""

    def __init__(self, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


@dataclass
class SupervisedResult:
    """A trained classifier and its learning curve (one row per epoch)."""

    model: Classifier
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def backbone(self) -> Backbone:
        return self.model.backbone

    @property
    def head(self) -> nn.Linear:
        return self.model.head


@torch.no_grad()
def evaluate_supervised(
    model: nn.Module, dataset: FewShotDataset, *, batch_size: int = 512, device: str = "cpu"
) -> float:
    """Test: accuracy of ``model`` on every example of ``dataset`` (eval mode)."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(dataset), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(dataset)))
        logits = model(dataset.gather(idx).to(device))
        correct += int((logits.argmax(-1).cpu() == dataset.labels[idx]).sum())
    model.train(was_training)
    return correct / len(dataset)


def train_supervised(
    backbone: Backbone,
    train: FewShotDataset,
    *,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 128,
    weight_decay: float = 5e-4,
    seed: int = 0,
    val: FewShotDataset | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> SupervisedResult:
    """Train ``backbone`` + a linear head with cross-entropy on all classes of ``train``.

    Adam with a cosine learning-rate schedule; each epoch visits every example once in a seeded
    order. ``val`` (same classes, held-out examples) is scored after every epoch.

    Args:
        backbone: the feature extractor to train (modified in place and returned in the result).
        train: examples and labels; all its classes are output classes.
        epochs, lr, batch_size, weight_decay: the usual.
        seed: fixes the head initialisation and the example order.
        val: optional held-out examples of the same classes.

    Example:
        >>> from metadl.models import create_backbone
        >>> x = torch.randn(200, 2); y = (x[:, 0] > 0).long()
        >>> ds = FewShotDataset(x, y, ["neg", "pos"])
        >>> res = train_supervised(create_backbone("mlp", in_features=2, hidden=[16]), ds, epochs=30, lr=1e-2)
        >>> res.history[-1]["train_acc"] > 0.9
        True
    """
    for key, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{key} must be >= 1, got {value}")
    if val is not None and val.num_classes != train.num_classes:
        raise ValueError(
            f"val has {val.num_classes} classes but train has {train.num_classes}; they must match"
        )
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Classifier(backbone, train.num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = -(-len(train) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    result = SupervisedResult(model)
    for epoch in tqdm(range(epochs), desc="supervised", disable=not progress):
        model.train()
        order = torch.randperm(len(train), generator=g)
        total_loss, correct = 0.0, 0
        for start in range(0, len(train), batch_size):
            idx = order[start : start + batch_size]
            x, y = train.gather(idx).to(device), train.labels[idx].to(device)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(idx)
            correct += int((logits.argmax(-1) == y).sum())
        row = {"epoch": epoch + 1, "train_loss": total_loss / len(train), "train_acc": correct / len(train)}
        if val is not None:
            row["val_acc"] = evaluate_supervised(model, val, device=device)
        result.history.append(row)
    return result
