"""The command-line paths of recommendation: ``metadl recommend --model``, and ``metadl train`` / ``eval``.

``metadl recommend RATINGS.csv --model MODEL [--top N] [--json]``: ``RATINGS.csv`` holds a new user's
``item,rating`` rows; ``MODEL`` is a saved recommender (or a run folder holding one in ``model/``). Prints
the ``N`` best-ranked items the user has not rated: rank, item id, ranking score and predicted rating,
tab-separated, or a JSON list with ``--json``. ``metadl.automl.command`` parses the arguments and
dispatches here when ``--model`` is given.

``metadl train`` / ``metadl eval`` reach :func:`train_request` / :func:`eval_command` through the
application registry (:mod:`metadl.apps.registry`) when the config says ``app: recsys``
(:mod:`metadl.apps.recsys.config`) or the run folder holds such a config. Handlers import the
application lazily, so ``metadl --help`` does not pay for torch.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metadl.apps.recsys.recommend import Recommendation
    from metadl.apps.registry import TrainRequest

DEFAULT_TOP = 10
APP = "recsys"
CONFIG_FOLDER = Path(__file__).parent / "configs"


def recommend_for_user(
    ratings_csv: str | Path, model: str | Path, *, top: int = DEFAULT_TOP
) -> list[Recommendation]:
    """The ``top`` items a saved recommender ranks first for the user whose ratings are in ``ratings_csv``."""
    from metadl.apps.recsys.recommend import new_user_task, read_user_ratings, top_n
    from metadl.apps.recsys.saved import load_recommender

    if top < 1:
        raise ValueError(f"--top must be >= 1, got {top}")
    saved = load_recommender(model)
    pairs = read_user_ratings(ratings_csv)
    task = new_user_task(saved.item_ids, pairs, user=0)  # the two-head model ignores the user index
    return top_n(saved.recommender, task, saved.item_ids, n=top)


def print_recommendations(recs: list[Recommendation], *, as_json: bool) -> None:
    """A JSON list, or one tab-separated line per item: rank, item, score, predicted rating."""
    if as_json:
        print(json.dumps([r.as_json() for r in recs], indent=2))
        return
    out = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
    for rank, r in enumerate(recs, 1):
        out.writerow([rank, r.item, f"{r.score:.4f}", "" if r.rating is None else f"{r.rating:.2f}"])


def shipped_configs() -> dict[str, Path]:
    """The recommendation configs shipped in ``metadl/apps/recsys/configs/``, by name."""
    return {p.stem: p for p in sorted(CONFIG_FOLDER.glob("*.yaml"))}


def find_config(name: str) -> Path | None:
    """A shipped recommendation config by name, or a YAML file with ``app: recsys``; else ``None``."""
    from metadl.apps.recsys.config import find_config as find

    return find(name)


def is_recsys_run(path: Path) -> bool:
    """Whether ``path`` is a recommendation run folder (its ``config.yaml`` says ``app: recsys``) or its ``model/``."""
    from metadl.apps.recsys.config import is_recsys_config

    run = path.parent if path.name == "model" else path
    return (run / "config.yaml").is_file() and is_recsys_config(run / "config.yaml")


def train_request(request: TrainRequest) -> int:
    """``metadl train`` on a recommendation config; ``--resume`` is refused in one line."""
    from metadl.apps.recsys.config import load_recsys_config
    from metadl.apps.recsys.train import train_run
    from metadl.config import ConfigError

    if request.resume is not None or request.config is None:
        raise ConfigError(
            "a recommendation run cannot be resumed: --time-limit ends it with the best weights so far, "
            "saved and reported; start a new run with --out to train longer"
        )
    cfg = load_recsys_config(request.config, request.overrides)
    run = Path(request.out or Path("runs") / f"{request.config.stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    report = train_run(cfg, run, time_limit=request.time_limit)
    model = report.model
    print(f"run folder {run}; model saved to {run / 'model'} (test users: {report.users}; "
          f"mae {model['mae'].text()}, ndcg@10_full {model['ndcg@10_full'].text()}; metadl eval {run})")  # fmt: skip
    return 0


IGNORED_EVAL_FLAGS = ("config", "dataset", "split", "ways", "shots", "queries", "episodes", "seed", "device")


def eval_command(args: argparse.Namespace) -> int:
    """``metadl eval RUN [--json] [--set dataset.root=FOLDER]`` on a recommendation run."""
    from metadl.apps.recsys.train import evaluate_run
    from metadl.config import ConfigError

    given = [f"--{k}" for k in IGNORED_EVAL_FLAGS if getattr(args, k) is not None]
    if given or args.checkpoint != "best":
        flag = given[0] if given else "--checkpoint"
        raise ConfigError(f"{flag} does not apply to a recommendation run: it is scored on the test users "
                          "of the split its config names (--set dataset.root=FOLDER if its data moved)")  # fmt: skip
    report = evaluate_run(args.target, args.set)
    print(json.dumps(report.as_json(), indent=2) if args.json else report.summary())
    return 0
