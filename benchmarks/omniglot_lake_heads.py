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
import time
from pathlib import Path
from typing import Any

import torch
from omniglot_lake import append_row  # the sibling screening script (benchmarks/ is on sys.path)
from torch import nn
from torch.nn import functional as F

from metadl.algorithms import Learner, LearnerOutput, create_learner
from metadl.config import Config
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


class Ensemble(nn.Module):
    """Mean class probabilities of several learners on the same batch (returned as log-probabilities)."""

    def __init__(self, learners: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(learners)

    def forward(self, batch: TaskBatch) -> LearnerOutput:
        outs = [m(batch) for m in self.members]
        probs = torch.stack([o.logits.softmax(-1) for o in outs]).mean(0)  # (T, Q, N)
        logits = probs.clamp_min(1e-12).log()
        loss = F.nll_loss(logits.flatten(0, 1), outs[0].query_y.flatten())
        return LearnerOutput(loss=loss, logits=logits, query_y=outs[0].query_y)


def val_episodes(cfg: Config, learner: nn.Module, episodes: int) -> EvalResult:
    """Score ``learner`` on the first ``episodes`` validation episodes that training used."""
    if cfg.dataset.val_split is None:
        raise SystemExit("the run has no dataset.val_split: nothing to score heads on")
    sampler = make_sampler(
        cfg, cfg.dataset.val_split, cfg.seed, shape=cfg.eval_shape(), source=cfg.eval.source
    )
    return evaluate(learner, sampler, episodes=episodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder of a trained Lake-protocol model")
    parser.add_argument("--heads", nargs="+", default=sorted(HEADS), choices=sorted(HEADS))
    parser.add_argument(
        "--with", dest="others", nargs="*", type=Path, default=[], help="runs to ensemble with"
    )
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--csv", type=Path, default=Path("runs/lake_heads.csv"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg, learner, info = load_trained(args.run)
    n_way = cfg.eval_shape()[0]
    models: dict[str, nn.Module] = {h: with_head(learner, h, n_way) for h in args.heads}
    if args.others:
        members = [learner] + [load_trained(run)[1] for run in args.others]
        models["ensemble"] = Ensemble(members).eval()
    for head, model in models.items():
        start = time.perf_counter()
        result = val_episodes(cfg, model, args.episodes)
        row = {
            "run": str(args.run),
            "iteration": info["iteration"],
            "head": head,
            "episodes": result.episodes,
            "val_accuracy": round(result.mean, 4),
            "val_ci95": round(result.ci95, 4),
            "wall_s": round(time.perf_counter() - start, 1),
        }
        append_row(args.csv, row)


if __name__ == "__main__":
    main()
