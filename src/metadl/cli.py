"""The ``metadl`` command line: parses, validates and dispatches; the work lives in the library."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence

from metadl import __version__
from metadl.allocator import tune_malloc
from metadl.apps.cluster import command as cluster_command
from metadl.apps.detect import command as detect_command
from metadl.apps.registry import (
    TrainRequest,
    application_configs,
    application_for_config,
    application_for_run,
)
from metadl.argtypes import duration as _duration
from metadl.argtypes import positive_int as _positive_int
from metadl.automl import command as recommend_command
from metadl.experiments import command as runs_command
from metadl.tune import command as tune_command


def _cmd_list(args: argparse.Namespace) -> int:
    from metadl.algorithms import list_learners
    from metadl.augment import list_transforms
    from metadl.config import header_summary, list_configs, shipped_config
    from metadl.data import list_datasets
    from metadl.models import list_backbones
    from metadl.models.text import list_text_encoders
    from metadl.tasks import list_task_sources

    sections = {
        "datasets": list_datasets(),
        "sources": list_task_sources(),
        "backbones": list_backbones(),
        "encoders": list_text_encoders(),
        "learners": list_learners(),
        "transforms": list_transforms(),
    }
    for name, items in sections.items():
        if args.what in (None, name):
            print(f"{name}: {', '.join(items)}")
    if args.what in (None, "configs"):
        # applications' configs (text, recommendation) ship beside them; metadl train finds them by name
        paths = {name: shipped_config(name) for name in list_configs()} | application_configs()
        width = max(map(len, paths))
        print("configs (metadl train NAME):")
        for config in sorted(paths):
            print(f"  {config:<{width}}  {header_summary(paths[config])}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from metadl.demo import DemoSettings, run_demo
    from metadl.training.trainer import default_run_dir

    settings = DemoSettings()
    overrides = {
        k: v
        for k, v in (("iterations", args.iterations), ("eval_episodes", args.episodes), ("seed", args.seed))
        if v is not None
    }
    out = Path(args.out) if args.out else default_run_dir(Path("demo"))
    run_demo(replace(settings, **overrides), progress=not args.no_progress, out=out)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import csv
    import json

    from metadl.apps.regression import predict_table
    from metadl.apps.text.predict import SHIPPED, is_text_input, predict_texts
    from metadl.saving import is_regression_model, load, predict_folders

    if args.model not in SHIPPED and is_regression_model(args.model):
        rows = predict_table(load(args.model, device=args.device), args.support, args.query,
                             target_column=args.target_column)  # fmt: skip
        lines = [[str(row[k]) for k in ("row", "prediction", "std") if k in row] for row in rows]
    else:
        text = args.model in SHIPPED or is_text_input(args.support)
        if text:
            rows = predict_texts(args.model, args.support, args.query)
        else:
            rows = predict_folders(load(args.model, device=args.device), args.support, args.query)
        lines = [[row["text" if text else "file"], row["label"], f"{row['probability']:.4f}"] for row in rows]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:  # a CSV writer quotes names holding tabs, quotes or newlines, so every row reads back
        csv.writer(sys.stdout, delimiter="\t", lineterminator="\n").writerows(lines)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from metadl.export import export_model
    from metadl.saving import load

    exported = export_model(load(args.model), args.support, args.out, target_column=args.target_column)
    classes = "" if exported.classes is None else f", classes {exported.classes}"
    print(f"wrote {exported.path} (outputs {exported.outputs}{classes}; onnxruntime parity checked)")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from metadl.config import ConfigError, find_config, load_config
    from metadl.experiments.record import record_or_warn, training_record
    from metadl.training.meta import NonFiniteLossError
    from metadl.training.trainer import default_run_dir, resumed_config, train

    try:
        if args.config is None and args.resume is None:
            raise ConfigError("give a CONFIG to start a run, or --resume RUN_DIR to continue one")
        if args.resume is not None and args.out is not None:
            raise ConfigError(
                "--out names a new run folder; --resume continues the one it names: use one of them"
            )
        if args.config is None and args.set:
            raise ConfigError("--set changes a config; a resumed run keeps the config it was started with")
        # applications with a loop of their own (detection, text, recommendation) claim their configs and runs
        if args.config is not None:
            app, app_config = application_for_config(args.config) or (None, None)
        else:
            app, app_config = application_for_run(args.resume), None
        if app is not None:
            request = TrainRequest(
                config=app_config, overrides=tuple(args.set), out=args.out, resume=args.resume,
                time_limit=args.time_limit, progress=not args.no_progress,
            )  # fmt: skip
            return app.train(request)
        path = None if args.config is None else find_config(args.config)
        cfg = None if path is None else load_config(path, args.set)
        run_dir = args.resume or args.out or default_run_dir(path)
        result = train(
            cfg,
            run_dir,
            resume=args.resume is not None,
            progress=not args.no_progress,
            time_limit=args.time_limit,
        )
    except NonFiniteLossError as err:
        print(f"metadl train: {err}", file=sys.stderr)
        return 1
    if not args.no_record:
        run_cfg = cfg or resumed_config(result.run_dir)
        record_or_warn(
            lambda: training_record(run_cfg, result, config_name=None if path is None else path.stem)
        )
    print(f"run folder {result.run_dir}; model saved to {result.model_dir}")
    return result.exit_code  # non-zero when SIGTERM / SIGINT stopped the run (it is checkpointed)


def _cmd_eval(args: argparse.Namespace) -> int:
    import json

    from metadl.config import find_config
    from metadl.evaluation.run import eval_report, eval_summary, evaluate_run, load_for_eval
    from metadl.experiments.record import evaluation_record, record_or_warn

    app = application_for_run(args.target)
    if app is not None:  # detection, text and recommendation runs are scored by their application
        return app.evaluate(args)
    flags = {k: getattr(args, k) for k in ("split", "ways", "shots", "queries", "episodes", "seed")}
    overrides = [*args.set, *(f"eval.{k}={v}" for k, v in flags.items() if v is not None)]
    overrides += [f"device={args.device}"] if args.device else []
    cfg, learner, info = load_for_eval(
        args.target,
        config=args.config and find_config(args.config),
        dataset=args.dataset,
        overrides=tuple(overrides),
        checkpoint=args.checkpoint,
        ensemble=tuple(args.ensemble),
    )
    started = time.monotonic()
    result, report = evaluate_run(
        cfg, learner, baselines=not args.no_baselines, progress=not args.no_progress
    )
    if not args.no_record:
        seconds = time.monotonic() - started
        record_or_warn(lambda: evaluation_record(cfg, result, config_name=args.config, seconds=seconds))
    if args.json:
        print(json.dumps(eval_report(cfg, result, info, report)))
    else:
        print(eval_summary(cfg, result) + ("" if report is None else "\n" + report.summary()))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from metadl.bench import ROWS, BenchSettings, find_rows, run_bench

    if args.list:
        for row in ROWS:
            print(f"{row.name:26s} {row.setting}")
        return 0
    try:
        rows = find_rows(args.rows.split(",") if args.rows else None)
        settings = BenchSettings(
            Path(args.out),
            train=not args.no_train,
            quick=args.quick,
            time_limit=args.time_limit,
            device=args.device,
            data_root=None if args.data_root is None else Path(args.data_root),
        )
        run_bench(rows, settings)
    except RuntimeError as err:
        print(f"metadl bench: {err}", file=sys.stderr)
        return 1
    return 0


NO_RECORD_HELP = (
    "do not add this run to the experiment database ($METADL_DB, default ~/.local/share/metadl/experiments.sqlite; "
    "see metadl runs)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metadl",
        description="Deep meta-learning: train few-shot learners on many small tasks, evaluate with 95% confidence intervals.",
    )
    parser.add_argument("--version", action="version", version=f"metadl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo",
        help="meta-train a ProtoNet on embedded synthetic glyphs and evaluate it (about 3 minutes on 2 cores)",
        description="Meta-trains a prototypical network (Conv-4) on procedurally generated glyphs, then reports "
        "5-way 1-shot accuracy on held-out glyph classes with a 95% confidence interval. Needs no download.",
    )
    demo.add_argument("--iterations", type=_positive_int, help="meta-training iterations (default 600)")
    demo.add_argument("--episodes", type=_positive_int, help="test episodes (default 600)")
    demo.add_argument("--seed", type=int, help="seed for data, initialisation and episodes (default 0)")
    demo.add_argument(
        "--out",
        metavar="RUN_DIR",
        help="run folder kept after the demo, with the trained model in RUN_DIR/model for metadl predict "
        "(default runs/demo-<date>-<time>)",
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    demo.set_defaults(func=_cmd_demo)

    lister = sub.add_parser(
        "list",
        help="list datasets, task sources, backbones, text encoders, learners, transforms and shipped configs",
        description="List what can be created by name (datasets, task sources for dataset.name, backbones, "
        "text encoders, learners, augmentation transforms for augment.train) and the configs that ship with metadl.",
    )
    lister.add_argument(
        "what",
        nargs="?",
        choices=["datasets", "sources", "backbones", "encoders", "learners", "transforms", "configs"],
        help="only this section",
    )
    lister.set_defaults(func=_cmd_list)

    trainer = sub.add_parser(
        "train",
        help="meta-train a learner as a YAML config says, into a run folder (resumable)",
        description="Meta-trains the learner described by CONFIG (a YAML file, or the name of a config shipped "
        "with metadl, e.g. protonet_omniglot_5w1s: see metadl list configs) and writes a run folder: config.yaml, metrics.csv, "
        "learning_curves.png, last.ckpt and best.ckpt (the best validation score), TensorBoard events when "
        "tensorboard is installed, and model/ (the trained learner for metadl eval / predict / metadl.load). "
        "A run stopped at any moment continues exactly where it was with --resume RUN_DIR. Detection, text and "
        "recommendation configs run their application's own loop (metadl.apps.registry).",
    )
    trainer.add_argument(
        "config", nargs="?", metavar="CONFIG", help="YAML config file or shipped config name"
    )
    trainer.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set learner.inner_lr=0.1 (repeatable)",
    )
    trainer.add_argument(
        "--out", metavar="RUN_DIR", help="run folder to create (default runs/<config>-<time>)"
    )
    trainer.add_argument(
        "--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint"
    )
    trainer.add_argument(
        "--time-limit",
        type=_duration,
        metavar="DURATION",
        help="stop cleanly after this much wall-clock time (e.g. 45m, 2h, 1h30m): checkpointed, model saved; "
        "--resume continues the run",
    )
    trainer.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    trainer.add_argument("--no-record", action="store_true", help=NO_RECORD_HELP)
    trainer.set_defaults(func=_cmd_train)

    evaluator = sub.add_parser(
        "eval",
        help="score a trained run or saved model on fixed, seeded test episodes (mean and 95%% CI)",
        description="Evaluates the best checkpoint of a run folder (or a .ckpt file, or a saved model folder) on a "
        "fixed set of test episodes: the same seed gives the same episodes for every learner. Prints the mean "
        "accuracy (or MSE for regression) with its 95% confidence interval. Unset options come from the "
        "run's config (its eval section). A detection or recommendation run is scored by its application "
        "(recommendation: the model beside every baseline on its split's test users).",
    )
    evaluator.add_argument(
        "target", metavar="RUN_DIR|MODEL", help="run folder, checkpoint file or saved model folder"
    )
    evaluator.add_argument(
        "--config", metavar="CONFIG", help="take the data and eval settings from this config"
    )
    evaluator.add_argument(
        "--dataset", metavar="NAME", help="evaluate on this dataset instead (see metadl list datasets)"
    )
    evaluator.add_argument(
        "--split", help="dataset split of the test episodes (default: eval.split, usually test)"
    )
    evaluator.add_argument("--ways", type=_positive_int, metavar="N", help="classes per episode")
    evaluator.add_argument("--shots", type=_positive_int, metavar="K", help="support examples per class")
    evaluator.add_argument("--queries", type=_positive_int, metavar="Q", help="query examples per class")
    evaluator.add_argument(
        "--episodes", type=_positive_int, help="number of test episodes (default: eval.episodes)"
    )
    evaluator.add_argument("--seed", type=int, help="seed of the test episodes (default: eval.seed)")
    evaluator.add_argument(
        "--checkpoint", choices=["best", "last"], default="best", help="which checkpoint of a run"
    )
    evaluator.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the config's)")
    evaluator.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value"
    )
    evaluator.add_argument(
        "--ensemble",
        nargs="+",
        default=[],
        metavar="RUN",
        help="more runs or saved models of classifiers: score the mean of all their class probabilities "
        "(TARGET's config says on what)",
    )
    evaluator.add_argument(
        "--json", action="store_true", help="print one JSON object (metric, mean, ci95, episodes, ...)"
    )
    evaluator.add_argument(
        "--no-baselines",
        action="store_true",
        help="for a learner that predicts a variance (cnp, anp): skip the per-task ridge and GP baselines",
    )
    evaluator.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluator.add_argument("--no-record", action="store_true", help=NO_RECORD_HELP)
    evaluator.set_defaults(func=_cmd_eval)

    bench = sub.add_parser(
        "bench",
        help="reproduce the published Omniglot and sinusoid results (docs/benchmarks.md), or a quick check",
        description="Trains and evaluates the shipped configs behind each row of the reproduction table (MAML, "
        "first-order MAML, Meta-SGD, Reptile, ProtoNet, SVM and ridge heads on Omniglot; MAML and Meta-SGD on "
        "sinusoids), each in its own process, and writes results.json, table.md and curves.png under --out. "
        "Finished runs and unchanged evaluations are reused; runs cut by --time-limit are resumed by the next call.",
    )
    bench.add_argument(
        "--rows",
        metavar="NAME[,NAME]",
        help="only these rows (see --list; default: all); ROW:LABEL for one cell, e.g. maml-omniglot-5way:1-shot",
    )
    bench.add_argument("--list", action="store_true", help="list the rows and exit")
    bench.add_argument(
        "--quick",
        action="store_true",
        help="5 iterations and 16 test episodes per cell, in OUT/quick: checks everything in minutes",
    )
    bench.add_argument(
        "--out", default="runs/bench", metavar="DIR", help="output folder (default runs/bench)"
    )
    bench.add_argument(
        "--data-root",
        metavar="DIR",
        help="folder with one sub-folder per dataset, e.g. ../shared/data (default: download)",
    )
    bench.add_argument(
        "--time-limit",
        type=_duration,
        metavar="DURATION",
        help="per training session (e.g. 30m); a later call resumes the run",
    )
    bench.add_argument(
        "--no-train",
        action="store_true",
        help="train nothing: evaluate the runs that exist, mark the others not run",
    )
    bench.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: each config's)")
    bench.set_defaults(func=_cmd_bench)

    predict = sub.add_parser(
        "predict",
        help="classify images or sentences with a model adapted to a few labelled examples",
        description="Adapts a saved model (metadl.save_model) to SUPPORT, a folder with one sub-folder of "
        "example images per class (the folder name is the label; 1-5 images per class is typical), then "
        "classifies every image below QUERY. Images of any size and mode are brought to what the model was "
        "trained on (size, channels, ink polarity). Prints FILE<TAB>LABEL<TAB>PROBABILITY per query image. "
        "Text: SUPPORT is a text,label .csv / .jsonl file or a folder of <label>/*.txt files, QUERY a .csv / "
        ".jsonl / .txt file of sentences, MODEL a saved text model, a run folder, or a shipped zero-training "
        "model (minilm-protonet, wordllama-protonet); prints TEXT<TAB>LABEL<TAB>PROBABILITY per sentence.",
    )
    predict.add_argument(
        "model",
        metavar="MODEL",
        help="saved model folder (or its metadl.json), run folder, or minilm-protonet",
    )
    predict.add_argument(
        "--support",
        required=True,
        metavar="PATH",
        help="SUPPORT/<class>/<image>, a text,label CSV, or <label>/*.txt",
    )
    predict.add_argument(
        "--query",
        required=True,
        metavar="PATH",
        help="images to classify (a folder or one image), or a text file",
    )
    predict.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of {file or text, label, probability, probabilities}, in input order",
    )
    predict.add_argument(
        "--target-column",
        default="y",
        help="regression models: the target column of the SUPPORT table (default y); every other column is a "
        "feature, and QUERY needs the same feature columns. Prints ROW<TAB>PREDICTION[<TAB>STD]; --json gives "
        "{row, prediction, std, interval95} per query row",
    )
    predict.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N")
    predict.set_defaults(func=_cmd_predict)

    recommend_command.add_command(sub)
    cluster_command.add_command(sub)
    detect_command.add_command(sub)
    runs_command.add_command(sub)
    tune_command.add_command(sub)

    export = sub.add_parser(
        "export",
        help="export a model adapted to a support set as ONNX (needs metadl[onnx])",
        description="Adapts a saved model to SUPPORT (a folder of <class>/<image> files, or a CSV / JSON Lines "
        "table: features plus a label column, or a float target column for regression models) and writes "
        "the adapted predictor (backbone + fitted head) as ONNX, checked against onnxruntime on the support set.",
    )
    export.add_argument(
        "model", metavar="MODEL", help="saved model folder (or its metadl.json), or run folder"
    )
    export.add_argument("--support", required=True, metavar="DIR|CSV", help="the support set to adapt to")
    export.add_argument("--out", required=True, metavar="FILE", help="the .onnx file to write")
    export.add_argument(
        "--target-column", help="label (classifiers, default label) or target (regression, default y) column"
    )
    export.set_defaults(func=_cmd_export)
    return parser


def one_line(err: BaseException) -> str:
    """The error's message on one line (a YAML or JSON parser's message spans several).

    Example:
        >>> one_line(ValueError("bad value\\n  in line 3"))
        'bad value in line 3'
    """
    return re.sub(r"\s*\n\s*", " ", str(err)).strip() or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a user's mistake (bad input, file or setting) exits 2 with one line on stderr.

    Every metadl error class (``ConfigError``, ``SavedModelError``, ``RunFolderError``, ...) is a
    ``ValueError`` whose message names the thing and the fix; ``OSError`` covers files that cannot be
    read or written and downloads that fail. Both are reported here, in one place, without a traceback.
    ``METADL_DEBUG=1`` in the environment lets them propagate with their traceback instead: a bug that
    raises ``ValueError`` would otherwise look like a user's mistake.
    """
    tune_malloc()  # the command's own process only: `import metadl` leaves the allocator alone
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as err:
        if os.environ.get("METADL_DEBUG", "") not in ("", "0"):
            raise
        print(f"metadl {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
