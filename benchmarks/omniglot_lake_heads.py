"""Score other heads on the embedding of a trained Lake-protocol run, on the validation alphabets only.

The backbone of a trained run (``metadl train protonet_omniglot_lake_20w1s``) is kept as it is; each head
in ``HEADS`` is a learner of the registry built around it (no further training) and scored on the run's
own validation episodes: 20-way 1-shot within one validation alphabet (``omniglot.LAKE_VAL_ALPHABETS``),
support and query by different drawers, the same seeded episodes for every head. One row per head is
appended to ``--csv``::

    nice -n 5 python benchmarks/omniglot_lake_heads.py runs/lake-long --episodes 300 --csv runs/lake_heads.csv

``ensemble`` averages the class probabilities of the runs given with ``--with`` (same episodes). The
evaluation alphabets are never read here.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omniglot_lake import append_row  # the sibling screening script (benchmarks/ is on sys.path)
from torch import nn

from metadl.algorithms import Learner, LearnerOutput, create_learner
from metadl.algorithms.base import make_output
from metadl.algorithms.ensemble import ProbabilityEnsemble
from metadl.algorithms.protonet import ProtoNet, prototype_logits, prototypes
from metadl.augment.registry import compose
from metadl.augment.transforms import Transform
from metadl.config import Config
from metadl.evaluation.confidence import mean_ci95
from metadl.evaluation.episodes import EvalResult, evaluate
from metadl.tasks import TaskBatch
from metadl.training.build import make_sampler
from metadl.training.trainer import load_trained

# name -> (learner, its hyperparameters): heads on the same frozen embedding.
HEADS: dict[str, tuple[str, dict[str, Any]]] = {
    # the head the backbone was trained with (1 shot: Euclidean nearest neighbour)
    "protonet": ("protonet", {}),
    "protonet_cosine": ("protonet", {"distance": "cosine"}),  # cosine nearest neighbour
    "logreg_l2": ("logreg", {"C": 10.0, "normalize": True, "scale": 10.0}),  # Tian et al. 2020's LR head
    "svm": ("svm", {"C": 0.1, "scale": 10.0}),  # MetaOptNet's head, untrained scale
}


def with_head(learner: Learner, head: str, n_way: int) -> Learner:
    """The learner ``HEADS[head]`` around ``learner``'s backbone (shared, not copied), in eval mode.

    Example:
        >>> from metadl.models import create_backbone
        >>> p = create_learner("protonet", backbone=create_backbone("mlp", in_features=4, hidden=[8]), n_way=3)
        >>> h = with_head(p, "svm", 3)
        >>> h.backbone is p.backbone, type(h).__name__
        (True, 'MetaSVM')
    """
    name, kwargs = HEADS[head]
    return create_learner(name, backbone=learner.backbone, n_way=n_way, **kwargs).eval()


class TestTimeAugmented(nn.Module):
    """ProtoNet with every image's embedding averaged over itself and ``views - 1`` augmented copies.

    The copies come from the run's own training transform (``augment.train``), drawn from a generator
    seeded once, so a run of episodes is deterministic.
    """

    def __init__(self, learner: ProtoNet, transform: Transform, views: int, seed: int = 0) -> None:
        super().__init__()
        self.learner, self.transform, self.views = learner, transform, views
        self.generator = torch.Generator().manual_seed(seed)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(0, 1)
        views = [flat] + [self.transform(flat, self.generator) for _ in range(self.views - 1)]
        z = torch.stack([self.learner.backbone(v) for v in views]).mean(0)
        return z.view(*x.shape[:2], -1)

    def forward(self, batch: TaskBatch) -> LearnerOutput:
        learner = self.learner
        protos = prototypes(self.embed(batch.support_x), batch.support_y, batch.n_way)
        logits = prototype_logits(
            self.embed(batch.query_x), protos, learner.distance, learner.log_scale.exp()
        )
        return make_output(logits, batch)


class FineTuned(nn.Module):
    """ProtoNet whose backbone takes ``steps`` Adam steps on each episode's support set before predicting.

    A step is a pseudo-episode made of the support images alone: two augmented copies of every support
    image, one as the class's support and one as its query (batch norm keeps its running statistics).
    Each episode starts again from the trained weights.
    """

    def __init__(self, learner: ProtoNet, transform: Transform, steps: int, lr: float, seed: int = 0) -> None:
        super().__init__()
        self.learner, self.transform, self.steps, self.lr = learner, transform, steps, lr
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, batch: TaskBatch) -> LearnerOutput:
        logits = [self._episode(TaskBatch.stack([batch[t]])) for t in range(len(batch.support_x))]
        return make_output(torch.cat(logits), batch)

    def _episode(self, task: TaskBatch) -> torch.Tensor:
        model = copy.deepcopy(self.learner).eval()
        optimiser = torch.optim.Adam(model.backbone.parameters(), lr=self.lr)
        x, y = task.support_x, task.support_y
        with torch.enable_grad():
            for _ in range(self.steps):
                flat = x.flatten(0, 1)
                a = self.transform(flat, self.generator).view_as(x)
                b = self.transform(flat, self.generator).view_as(x)
                out = model(TaskBatch(a, y, b, y))
                optimiser.zero_grad()
                out.loss.backward()
                optimiser.step()
        with torch.no_grad():
            return model(task).logits


def val_episodes(cfg: Config, learner: nn.Module, episodes: int, seed: int | None = None) -> EvalResult:
    """Score ``learner`` on the first ``episodes`` validation episodes that training used (those of the
    run ``seed`` instead: runs trained with other seeds validate on other episodes)."""
    if cfg.dataset.val_split is None:
        raise SystemExit("the run has no dataset.val_split: nothing to score heads on")
    seed = cfg.seed if seed is None else seed
    sampler = make_sampler(cfg, cfg.dataset.val_split, seed, shape=cfg.eval_shape(), source=cfg.eval.source)
    return evaluate(learner, sampler, episodes=episodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder of a trained Lake-protocol model")
    parser.add_argument("--heads", nargs="+", default=sorted(HEADS), choices=sorted(HEADS))
    parser.add_argument(
        "--with", dest="others", nargs="*", type=Path, default=[], help="runs to ensemble with"
    )
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument(
        "--val-seed",
        type=int,
        help="seed of the validation episodes (default: the run's; 0 = the shipped run's)",
    )
    parser.add_argument("--tta", type=int, nargs="*", default=[], help="views per image to screen")
    parser.add_argument("--finetune", type=int, nargs="*", default=[], help="steps per episode to screen")
    parser.add_argument("--finetune-lr", type=float, default=1e-4)
    parser.add_argument("--csv", type=Path, default=Path("runs/lake_heads.csv"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg, learner, info = load_trained(args.run)
    n_way = cfg.eval_shape()[0]
    models: dict[str, nn.Module] = {h: with_head(learner, h, n_way) for h in args.heads}
    transform = compose(cfg.augment.train)
    for views in args.tta:
        models[f"protonet_tta{views}"] = TestTimeAugmented(learner, transform, views)
    for steps in args.finetune:
        models[f"protonet_finetune{steps}_lr{args.finetune_lr:g}"] = FineTuned(
            learner, transform, steps, args.finetune_lr
        )
    if args.others:
        members = [learner] + [load_trained(run)[1] for run in args.others]
        models["ensemble"] = ProbabilityEnsemble(members).eval()
    base: np.ndarray | None = None  # per-episode accuracy of the trained head, for paired differences
    for head, model in models.items():
        start = time.perf_counter()
        result = val_episodes(cfg, model, args.episodes, args.val_seed)
        accuracy = np.asarray(result.per_episode)
        if head == "protonet":
            base = accuracy
        diff, diff_ci = mean_ci95(accuracy - base) if base is not None else (float("nan"), float("nan"))
        row = {
            "run": str(args.run),
            "iteration": info["iteration"],
            "head": head,
            "val_seed": cfg.seed if args.val_seed is None else args.val_seed,
            "episodes": result.episodes,
            "val_accuracy": round(result.mean, 4),
            "val_ci95": round(result.ci95, 4),
            "minus_protonet": round(diff, 4),  # paired over the same episodes
            "minus_protonet_ci95": round(diff_ci, 4),
            "wall_s": round(time.perf_counter() - start, 1),
        }
        append_row(args.csv, row)


if __name__ == "__main__":
    main()
