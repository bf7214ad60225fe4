"""The text path of ``metadl train`` / ``metadl eval``, as an entry of :mod:`metadl.apps.registry`.

A text config says ``app: text`` (:mod:`metadl.apps.text.train`); its run folder holds that config as
``config.yaml``. Handlers import the application lazily, so ``metadl --help`` does not pay for it. This
module sits beside the ``text`` package, not in it: importing anything from ``metadl.apps.text`` runs its
``__init__``, which loads torch and the text model.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metadl.apps.registry import TrainRequest


def shipped_configs() -> dict[str, Path]:
    """The text configs shipped in ``metadl/apps/text/configs/``, by name."""
    from metadl.apps.text.train import CONFIG_FOLDER, list_text_configs

    return {name: CONFIG_FOLDER / f"{name}.yaml" for name in list_text_configs()}


def find_config(name: str) -> Path | None:
    """A shipped text config by name, or a YAML file with ``app: text``; else ``None``."""
    from metadl.apps.text.train import find_text_config

    return find_text_config(name)


def is_text_run(path: Path) -> bool:
    """Whether ``path`` is a text run folder (its ``config.yaml`` says ``app: text``) or its ``model/``."""
    from metadl.apps.text.train import find_text_config

    run = path.parent if path.name == "model" else path
    return (run / "config.yaml").is_file() and find_text_config(str(run / "config.yaml")) is not None


def train_request(request: TrainRequest) -> int:
    """``metadl train`` on a text config, or ``--resume`` of a text run (its ``config.yaml``)."""
    from metadl.apps.text.train import train_text_from_cli

    assert request.config is not None or request.resume is not None  # metadl.cli checks one is given
    config = request.config if request.config is not None else Path(str(request.resume)) / "config.yaml"
    result = train_text_from_cli(
        config, list(request.overrides), request.out, request.resume, request.time_limit
    )
    print(f"run folder {result.run_dir}; model saved to {result.model_dir}")
    return result.exit_code  # non-zero when SIGTERM / SIGINT stopped the run (it is checkpointed)


def eval_command(args: argparse.Namespace) -> int:
    """``metadl eval`` on a text run: refused in one line (``metadl predict`` serves text models)."""
    from metadl.config import ConfigError

    raise ConfigError(
        f"{args.target} is a text run: score it with metadl predict {args.target} --support S.csv --query Q.csv "
        "(benchmarks/text_*.py run the published protocols); metadl eval serves episodic, detection and "
        "recommendation runs"
    )
