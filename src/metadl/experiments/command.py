"""``metadl runs``: list and filter the experiment database, registered by :func:`metadl.cli.build_parser`."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from metadl.experiments.database import ExperimentDB
    from metadl.experiments.listing import format_runs

    db = ExperimentDB(args.db)
    records = db.query(
        config_name=args.config,
        distribution=args.distribution,
        kind=args.kind,
        where=args.where,
        limit=args.limit,
    )
    print(
        json.dumps([r.as_json() for r in records], indent=2) if args.json else format_runs(records, db.path)
    )
    return 0


def add_command(sub: Any) -> None:
    """Add ``runs`` to the ``metadl`` subcommands (``sub`` is argparse's subparsers action)."""
    parser = sub.add_parser(
        "runs",
        help="list and filter the experiment database (every train / eval run and tuning trial)",
        description="Lists the runs recorded in the experiment database ($METADL_DB, default "
        "~/.local/share/metadl/experiments.sqlite): config, task distribution, metrics, time and peak memory.",
    )
    parser.add_argument("--config", metavar="NAME", help="only runs of this config (its name, e.g. demo)")
    parser.add_argument("--distribution", metavar="NAME", help="only runs on this task distribution")
    parser.add_argument("--kind", choices=["train", "eval", "trial"], help="only this kind of run")
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="COND",
        help="NAME OP VALUE with OP in > >= < <= = !=: a metric (val_accuracy>0.6), mf.NAME (a meta-feature), "
        "param.NAME (a tuned parameter) or config.a.b (a config value); repeatable, all must hold",
    )
    parser.add_argument("--limit", type=int, metavar="N", help="at most N runs")
    parser.add_argument("--json", action="store_true", help="print a JSON list of records")
    parser.add_argument(
        "--db", metavar="FILE", help="the database file (default $METADL_DB or ~/.local/share/...)"
    )
    parser.set_defaults(func=_run)
