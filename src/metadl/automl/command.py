"""``metadl recommend``: the algorithm-selection command, registered by :func:`metadl.cli.build_parser`.

``metadl recommend DATA.csv --target COL`` ranks learning pipelines for a table (this module);
``metadl recommend RATINGS.csv --model MODEL`` recommends items to a new user from a saved cold-start
recommender (dispatched to :mod:`metadl.apps.recsys.command`).

An application's command lives beside the application (parser + handler) and ``cli.py`` adds it with one
line, so ``cli.py`` stays the dispatcher and not the home of every application's options. The handler
imports the application lazily: ``metadl --help`` must not pay for scikit-learn.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


class RecommendArgumentError(ValueError):
    """Options of the two ``recommend`` paths mixed (the message names them)."""


def _recommend_items(args: argparse.Namespace) -> int:
    from metadl.apps.recsys.command import DEFAULT_TOP, print_recommendations, recommend_for_user

    mixed = [flag for flag, value in (("--target", args.target), ("--cv", args.cv),
                                      ("--ground-truth", args.ground_truth)) if value is not None]  # fmt: skip
    if mixed:
        raise RecommendArgumentError(
            f"{mixed[0]} is for ranking pipelines on a table; with --model, RATINGS.csv is a new user's "
            "item,rating rows and only --top and --json apply"
        )
    recs = recommend_for_user(args.data, args.model, top=DEFAULT_TOP if args.top is None else args.top)
    print_recommendations(recs, as_json=args.json)
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.model is not None:
        return _recommend_items(args)
    from metadl.automl.recommend import format_recommendations, load_ground_truth, recommend
    from metadl.automl.tabular import read_dataset

    table = read_dataset(args.data, args.target)
    recs = recommend(table, load_ground_truth(args.ground_truth), top=3 if args.top is None else args.top,
                     cv_folds=args.cv)  # fmt: skip
    print(json.dumps([r.as_json() for r in recs], indent=2) if args.json else format_recommendations(recs))
    return 0


def add_command(sub: Any) -> None:
    """Add ``recommend`` to the ``metadl`` subcommands (``sub`` is argparse's subparsers action)."""
    parser = sub.add_parser(
        "recommend",
        help="rank learning pipelines for a tabular dataset, or items for a new user (--model)",
        description="Describes DATA by its meta-features and ranks the portfolio's pipelines by the balanced "
        "accuracy a meta random forest, trained on ~150 offline datasets, predicts for it. With --model, "
        "DATA is a new user's item,rating CSV and the saved cold-start recommender lists the top unseen items.",
    )
    parser.add_argument(
        "data",
        metavar="DATA",
        help="a .csv file (with a header row) or a .npz with X, y; with --model, RATINGS.csv",
    )
    parser.add_argument("--target", metavar="COL", help="the class column of a CSV")
    parser.add_argument(
        "--top",
        type=int,
        metavar="K",
        help="how many pipelines (default 3) or items with --model (default 10)",
    )
    parser.add_argument(
        "--cv", type=int, metavar="FOLDS", help="also cross-validate each recommended pipeline on DATA"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of recommendations")
    parser.add_argument(
        "--ground-truth",
        metavar="FILE",
        help="a table from benchmarks/algorithm_selection.py (default: shipped)",
    )
    parser.add_argument(
        "--model",
        metavar="RUN",
        help="a saved cold-start recommender (or its run folder): recommend items for the user in RATINGS.csv",
    )
    parser.set_defaults(func=_run)
