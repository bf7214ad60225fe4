"""``metadl detect``, and the detection path of ``metadl train`` / ``metadl eval``.

``metadl detect`` is registered by :func:`add_command` (one line in :mod:`metadl.cli`). ``train`` and
``eval`` stay the commands people know: :func:`is_detection_target` tells them that a config or a run
folder is a detection one, and :func:`train_command` / :func:`eval_command` run it. Handlers import
the application lazily, so ``metadl --help`` does not pay for it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metadl.apps.registry import TrainRequest


def is_detection_target(path: str | Path | None) -> bool:
    """Whether ``path`` is a detection config, a detection run folder or its ``model/`` folder."""
    from metadl.apps.detect.config import is_detection_config
    from metadl.training.runfolder import CONFIG_FILE, MODEL_DIR

    if path is None:
        return False
    path = Path(path)
    if path.is_file():
        return is_detection_config(path)
    run = path.parent if path.name == MODEL_DIR else path
    return (run / CONFIG_FILE).is_file() and is_detection_config(run / CONFIG_FILE)


def find_detection_config(name: str) -> Path | None:
    """The detection config ``name`` (a YAML file or a shipped name) is, or ``None`` when it is not one."""
    from metadl.apps.detect.config import is_detection_config
    from metadl.config import ConfigError, find_config

    try:
        path = find_config(name)
    except ConfigError:  # not a file, not a shipped name: the core trainer says so
        return None
    return path if is_detection_config(path) else None


def train_request(request: TrainRequest) -> int:
    """``metadl train`` through the application registry (:mod:`metadl.apps.registry`)."""
    from metadl.training.trainer import default_run_dir

    run_dir = request.resume or request.out or default_run_dir(request.config)
    return train_command(request.config, run_dir, list(request.overrides), resume=request.resume is not None,
                         time_limit=request.time_limit, progress=request.progress)  # fmt: skip


def train_command(config: Path | None, run_dir: str | Path, overrides: list[str], *, resume: bool,
                  time_limit: float | None, progress: bool) -> int:  # fmt: skip
    """``metadl train`` on a detection config (or ``--resume`` of a detection run)."""
    from metadl.apps.detect.config import load_detect_config
    from metadl.apps.detect.run import train_detection

    cfg = None if config is None else load_detect_config(config, overrides)
    result = train_detection(cfg, run_dir, resume=resume, time_limit=time_limit, progress=progress)
    print(f"run folder {result.run_dir}; model saved to {result.model_dir} (step {result.steps_done})")
    return 0


def eval_command(args: argparse.Namespace) -> int:
    """``metadl eval`` on a detection run: AP / AP50 over seeded K-shot samples (``--shots K`` evaluates
    that K only; ``--seed``, ``--split`` and ``--set eval.KEY=VALUE`` change the protocol)."""
    from metadl.apps.detect.evaluate import evaluate_run

    flags = {"shots": None if args.shots is None else [args.shots], "seed": args.seed, "split": args.split}
    overrides = [*args.set, *(f"eval.{k}={v}" for k, v in flags.items() if v is not None)]
    as_json = args.json
    report = evaluate_run(args.target, overrides)
    print(json.dumps(report.as_json(), indent=2) if as_json else report.summary())
    return 0


def _run(args: argparse.Namespace) -> int:
    from metadl.apps.detect.model import load_detector
    from metadl.apps.detect.predict import adapt_to_support, detect_files, draw_detections, image_files

    model = load_detector(args.model)
    if args.support is not None:
        model = adapt_to_support(model, args.support)
    files = image_files(args.images)
    found = detect_files(model, files, score_threshold=args.threshold)
    if args.json:
        print(json.dumps([f.as_json() for f in found], indent=2))
    else:
        for item in found:
            for d in item.detections:
                print("\t".join([item.file, d.label, f"{d.score:.4f}", *(f"{v:.1f}" for v in d.bbox)]))
    if args.draw is not None:
        for file, item in zip(files, found, strict=True):
            draw_detections(file, item, Path(args.draw))
    return 0


def add_command(sub: Any) -> None:
    """Add ``detect`` to the ``metadl`` subcommands (``sub`` is argparse's subparsers action)."""
    parser = sub.add_parser(
        "detect",
        help="find and label objects in images, with new classes added from a few annotated boxes",
        description="Loads a detector trained with `metadl train detect_omniglot_scenes` (a run folder or its "
        "model/), adds the categories of a COCO support file as new classes from their boxes (no training), "
        "and prints the boxes found in every image of a folder.",
    )
    parser.add_argument("model", metavar="MODEL", help="a detection run folder or its model/ folder")
    parser.add_argument(
        "--support", metavar="ANNOTATIONS", help="COCO JSON of the new classes' boxes (images next to it)"
    )
    parser.add_argument("--images", metavar="DIR", required=True, help="folder of images to search")
    parser.add_argument("--threshold", type=float, default=0.3, help="lowest score reported (default 0.3)")
    parser.add_argument(
        "--json", action="store_true", help="one JSON list: {file, detections: [{bbox, label, score}]}"
    )
    parser.add_argument("--draw", metavar="OUT", help="also write OUT/<image>.png with the boxes drawn")
    parser.set_defaults(func=_run)
