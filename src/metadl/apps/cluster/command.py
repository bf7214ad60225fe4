"""``metadl cluster``: partition unlabelled images (a folder) or sentences (a text file) with a saved model.

Registered by :func:`metadl.cli.build_parser` with one line; the handler imports the application lazily.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from metadl.argtypes import positive_int


def _run(args: argparse.Namespace) -> int:
    from metadl.apps.cluster.images import assignments_csv, cluster_folder
    from metadl.apps.cluster.texts import cluster_texts, text_assignments_csv
    from metadl.saving import load

    if args.texts is not None:
        texts = cluster_texts(args.model, args.texts, text_column=args.text_column, k=args.k, seed=args.seed)
        rows: list[Any] = texts
        table = text_assignments_csv(texts)
    else:
        images = cluster_folder(load(args.model, device=args.device), args.images, k=args.k, seed=args.seed)
        rows, table = images, assignments_csv(images)
    sys.stdout.write(json.dumps([asdict(r) for r in rows]) + "\n" if args.json else table)
    return 0


def add_command(sub: Any) -> None:
    """Add ``cluster`` to the ``metadl`` subcommands (``sub`` is argparse's subparsers action)."""
    parser = sub.add_parser(
        "cluster",
        help="group unlabelled images or sentences of new classes with a meta-trained model",
        description="Partitions every image below DIR with a model trained by `metadl train cluster_omniglot_lake` "
        "(or any clustering learner) and prints file,cluster lines; or the sentences of a text file with a text "
        "model (a shipped name such as minilm-protonet, a saved text model or a run folder) and prints "
        "text,cluster lines in input order. Without --k the number of clusters is estimated: the 'pairwise' "
        "learner cuts its same-class probability at its threshold, the others take the k whose k-means "
        "partition has the best silhouette.",
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="saved model folder (or its metadl.json), run folder, or text model name",
    )
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--images", metavar="DIR", help="a folder of images (searched recursively)")
    inputs.add_argument(
        "--texts",
        metavar="FILE",
        help="a .csv / .jsonl file (its --text-column) or a .txt file, one sentence a line",
    )
    parser.add_argument(
        "--text-column", default="text", help="the sentence column of a .csv/.jsonl (default text)"
    )
    parser.add_argument("--k", type=positive_int, metavar="K", help="number of clusters (default: estimated)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the k-means restarts (default 0)")
    parser.add_argument(
        "--json", action="store_true", help="print a JSON list of {file, cluster} (or {text, cluster})"
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N")
    parser.set_defaults(func=_run)
