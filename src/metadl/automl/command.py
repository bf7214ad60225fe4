"""``metadl recommend``: the algorithm-selection command, registered by :func:`metadl.cli.build_parser`.

An application's command lives beside the application (parser + handler) and ``cli.py`` adds it with one
line, so ``cli.py`` stays the dispatcher and not the home of every application's options. The handler
imports the application lazily: ``metadl --help`` must not pay for scikit-learn.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from metadl.automl.recommend import format_recommendations, load_ground_truth, recommend
    from metadl.automl.tabular import read_dataset

    table = read_dataset(args.data, args.target)
    recs = recommend(table, load_ground_truth(args.ground_truth), top=args.top, cv_folds=args.cv)
    print(json.dumps([r.as_json() for r in recs], indent=2) if args.json else format_recommendations(recs))
    return 0


def add_command(sub: Any) -> None:
    """Add ``recommend`` to the ``metadl`` subcommands (``sub`` is argparse's subparsers action)."""
    parser = sub.add_parser(
        "recommend",
        help="rank learning pipelines for a tabular classification dataset (meta random forest)",
        description="Describes DATA by its meta-features and ranks the portfolio's pipelines by the balanced "
        "accuracy a meta random forest, trained on ~150 offline datasets, predicts for it.",
    )
    parser.add_argument("data", metavar="DATA", help="a .csv file (with a header row) or a .npz with X, y")
    parser.add_argument("--target", metavar="COL", help="the class column of a CSV")
    parser.add_argument("--top", type=int, default=3, metavar="K", help="how many pipelines (default 3)")
    parser.add_argument(
        "--cv", type=int, metavar="FOLDS", help="also cross-validate each recommended pipeline on DATA"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of recommendations")
    parser.add_argument(
        "--ground-truth",
        metavar="FILE",
        help="a table from benchmarks/algorithm_selection.py (default: shipped)",
    )
    parser.set_defaults(func=_run)
