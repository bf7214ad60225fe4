"""``metadl cluster``: partition a folder of unlabelled images with a saved clustering model.

Registered by :func:`metadl.cli.build_parser` with one line; the handler imports the application lazily.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _run(args: argparse.Namespace) -> int:
    from metadl.apps.cluster.images import assignments_csv, cluster_folder
    from metadl.saving import load

    rows = cluster_folder(load(args.model, device=args.device), args.images, k=args.k, seed=args.seed)
    sys.stdout.write(json.dumps([asdict(r) for r in rows]) + "\n" if args.json else assignments_csv(rows))
    return 0


def add_command(sub: Any) -> None:
    """Add ``cluster`` to the ``metadl`` subcommands (``sub`` is argparse's subparsers action)."""
    parser = sub.add_parser(
        "cluster",
        help="group unlabelled images of new classes with a meta-trained clustering model",
        description="Partitions every image below DIR with a model trained by `metadl train cluster_omniglot_lake` "
        "(or any clustering learner) and prints file,cluster lines. Without --k the number of clusters is "
        "estimated (the 'pairwise' learner: its same-class probability cut at its threshold).",
    )
    parser.add_argument(
        "model", metavar="MODEL", help="saved model folder (or its metadl.json), or run folder"
    )
    parser.add_argument(
        "--images", required=True, metavar="DIR", help="a folder of images (searched recursively)"
    )
    parser.add_argument("--k", type=_positive, metavar="K", help="number of clusters (default: estimated)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the k-means restarts (default 0)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of {file, cluster}")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N")
    parser.set_defaults(func=_run)
