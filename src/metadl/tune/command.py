"""``metadl tune`` and ``metadl populate``: registered by :func:`metadl.cli.build_parser` with one line.

The handlers import Optuna and the tuning modules lazily: ``metadl --help`` must not pay for them, and Optuna
is the optional ``metadl[tune]`` extra.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path
from typing import Any

from metadl.argtypes import duration as _duration
from metadl.argtypes import positive_int as _positive_int


def _need_optuna() -> None:
    if importlib.util.find_spec("optuna") is None:
        raise ValueError("metadl tune needs Optuna: pip install 'metadl[tune]'")


def _tune(args: argparse.Namespace) -> int:
    _need_optuna()
    from metadl.config import config_to_dict, find_config, load_config
    from metadl.experiments.database import ExperimentDB, default_path
    from metadl.tune.space import describe
    from metadl.tune.study import TuneJob, tune
    from metadl.tune.warmstart import propose_for_config

    path = find_config(args.config)
    cfg = load_config(path, args.set)
    study = args.study or path.stem
    out = Path(args.out or f"runs/tune-{study}")
    storage = args.storage or f"sqlite:///{(out / 'study.sqlite3').resolve()}"
    db_path = None if args.no_record else Path(args.db) if args.db else default_path()
    job = TuneJob(
        config_to_dict(cfg), out, study, storage, args.trials,
        deadline=None if args.time_limit is None else time.time() + args.time_limit,
        pruner=args.pruner, sampler=args.sampler, seed=args.seed, heartbeat=args.heartbeat, db=db_path,
    )  # fmt: skip
    proposals = []
    if args.warm_start:
        db = ExperimentDB(args.db) if args.db else ExperimentDB()
        proposals = propose_for_config(cfg, db, top=args.warm_start)
        for c in proposals:
            print(f"warm start: {describe(c.params)} (from {c.source}, predicted margin {c.predicted:+.3f})")
    result = tune(
        job, workers=args.workers, warm_start=[c.params for c in proposals], progress=not args.no_progress
    )
    print(
        f"study {result.study} in {result.storage}: {result.complete} complete, {result.pruned} pruned, "
        f"{result.failed} failed trials"
    )
    if result.best_params is not None:
        print(f"best validation score {result.best_value:.4f} with {describe(result.best_params)}")
    if result.plot is not None:
        print(f"plot of the best score against time: {result.plot}")
    return 0


def _populate(args: argparse.Namespace) -> int:
    from metadl.experiments.database import ExperimentDB
    from metadl.tune.distributions import TrialBudget, find_distribution, task_distributions
    from metadl.tune.populate import populate

    data = {"omniglot": args.omniglot, "clinc150": args.clinc150, "banking77": args.banking77}
    for key, folder in data.items():
        if folder is not None and not Path(folder).is_dir():
            raise ValueError(f"--{key} {folder}: not a folder; give the folder that holds the {key} files")
    dists = task_distributions(**data)
    for name in args.exclude:
        find_distribution(name, **data)  # a misspelt name fails here
    chosen = [d for d in dists if d.name not in set(args.exclude)]
    db = ExperimentDB(args.db) if args.db else ExperimentDB()
    budget = TrialBudget(iterations=args.iterations)
    report = populate(db, chosen, trials=args.trials, budget=budget, seed=args.seed)
    print(
        f"{report.trials_run} trials run ({report.trials_skipped} already recorded) on {report.distributions} "
        f"task distributions in {report.seconds:.0f}s; {db.path} now holds {report.database_rows} runs"
    )
    return 0


def add_command(sub: Any) -> None:
    """Add ``tune`` and ``populate`` to the ``metadl`` subcommands (``sub`` is argparse's subparsers action)."""
    parser = sub.add_parser(
        "tune",
        help="search a config's learner, architecture and learning rates with Optuna (resumable, warm-startable)",
        description="Runs an Optuna study over CONFIG: each trial meta-trains one choice of learner (ProtoNet, "
        "first-order MAML), backbone (Conv-4, MLP) with its width/depth, learning rate and MAML inner steps/rate for "
        "the config's iterations, reporting validation scores to a pruner. Run the same command again to resume "
        "a killed study; start it on several machines with one --storage to share the work. Needs metadl[tune].",
    )
    parser.add_argument("config", metavar="CONFIG", help="YAML config file or shipped config name")
    parser.add_argument(
        "--trials", type=_positive_int, required=True, metavar="N", help="finished trials to reach"
    )
    parser.add_argument(
        "--time-limit", type=_duration, metavar="DURATION", help="stop after this long (e.g. 30m)"
    )
    parser.add_argument(
        "--storage", metavar="URL", help="Optuna RDB storage (default sqlite:///OUT/study.sqlite3)"
    )
    parser.add_argument("--study", metavar="NAME", help="study name (default: the config's name)")
    parser.add_argument(
        "--out", metavar="DIR", help="trial run folders and the plot (default runs/tune-STUDY)"
    )
    parser.add_argument(
        "--workers", type=_positive_int, default=1, metavar="K", help="worker processes (default 1)"
    )
    parser.add_argument("--pruner", choices=["median", "hyperband", "none"], default="median")
    parser.add_argument("--sampler", choices=["tpe", "random"], default="tpe")
    parser.add_argument(
        "--warm-start", type=int, default=0, metavar="K",
        help="enqueue K configurations that did best on the most similar distributions of the experiment database",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    parser.add_argument(
        "--heartbeat", type=_positive_int, default=10, metavar="S",
        help="seconds between worker heartbeats; a trial silent for 3x this is failed and retried (default 10)",
    )  # fmt: skip
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value"
    )
    parser.add_argument(
        "--db", metavar="FILE", help="experiment database (default $METADL_DB or ~/.local/share/...)"
    )
    parser.add_argument(
        "--no-record", action="store_true", help="do not record trials in the experiment database"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_tune)

    pop = sub.add_parser(
        "populate",
        help="fill the experiment database with random trials on generated task distributions (36 to 52)",
        description="Trains --trials random points of the tuning space on each generated task distribution "
        "(synthetic glyphs: 3 difficulties x 2 pens x 2 image sizes x 3 episode shapes; with their data folders, "
        "10 Omniglot alphabet subsets and 6 CLINC150/BANKING77 intent subsets) and records them: "
        "what metadl tune --warm-start learns from. Resumable: recorded points are skipped.",
    )
    for key, what in (("omniglot", "Omniglot"), ("clinc150", "CLINC150"), ("banking77", "BANKING77")):
        pop.add_argument(
            f"--{key}", metavar="DIR", help=f"also the {what} distributions, from this data folder"
        )
    pop.add_argument(
        "--trials", type=_positive_int, default=6, metavar="N", help="per distribution (default 6)"
    )
    pop.add_argument(
        "--iterations", type=_positive_int, default=30, help="meta-training iterations per trial"
    )
    pop.add_argument(
        "--exclude", action="append", default=[], metavar="NAME", help="leave out this distribution"
    )
    pop.add_argument("--seed", type=int, default=0, help="which random points (default 0)")
    pop.add_argument(
        "--db", metavar="FILE", help="experiment database (default $METADL_DB or ~/.local/share/...)"
    )
    pop.set_defaults(func=_populate)
