"""The applications behind ``metadl train`` and ``metadl eval``: each claims its own configs and run folders.

``metadl train CONFIG`` and ``metadl eval RUN`` serve the core engine (a learner built from the registries,
meta-trained on a task source: :mod:`metadl.training`) and applications with a loop of their own:
object detection (:mod:`metadl.apps.detect`), text fine-tuning (:mod:`metadl.apps.text`) and cold-start
recommendation (:mod:`metadl.apps.recsys`). Each is an :class:`Application` in ``APPLICATIONS``, filled
below in one place: how it recognises its config (a shipped name or a YAML file) and its run folder, its
``train`` and ``eval`` handlers, and the configs it ships (``metadl list configs``). :mod:`metadl.cli`
asks :func:`application_for_config` / :func:`application_for_run` first and falls back to the core
trainer when no application claims the target. The entries import their application lazily, so
``metadl --help`` does not pay for them.

Example:
    >>> list_applications()
    ['detection', 'recsys', 'text']
    >>> application_for_config("maml_sinusoid") is None     # a core config: the core trainer runs it
    True
    >>> application_for_config("recsys_movielens100k_coldstart")[0].name
    'recsys'
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from metadl.apps import text_cli as text_command
from metadl.apps.detect import command as detect_command
from metadl.apps.recsys import command as recsys_command


@dataclass(frozen=True)
class TrainRequest:
    """What ``metadl train`` asks of an application.

    Attributes:
        config: the application's config file (``None`` when ``--resume`` continues a run).
        overrides: ``--set KEY=VALUE`` items. out: ``--out``. resume: ``--resume`` (a run folder).
        time_limit: ``--time-limit`` in seconds. progress: show progress (not ``--no-progress``).
    """

    config: Path | None
    overrides: tuple[str, ...]
    out: str | None
    resume: str | None
    time_limit: float | None
    progress: bool


@dataclass(frozen=True)
class Application:
    """One application's entry (see the module docstring).

    Attributes:
        name: the application's name.
        find_config: ``CONFIG`` as typed on the command line -> the application's config file, or ``None``
            when it is not one of this application's configs.
        owns_run: whether a folder is one of this application's run folders (or their ``model/``).
        train: ``metadl train`` on one of its configs or runs; returns the exit code.
        evaluate: ``metadl eval`` on one of its runs (the parsed arguments); returns the exit code.
        configs: the configs it ships beside itself, by name (``metadl list configs``).
    """

    name: str
    find_config: Callable[[str], Path | None]
    owns_run: Callable[[Path], bool]
    train: Callable[[TrainRequest], int]
    evaluate: Callable[[argparse.Namespace], int]
    configs: Callable[[], dict[str, Path]]


APPLICATIONS: dict[str, Application] = {
    "detection": Application(
        "detection", detect_command.find_detection_config, detect_command.is_detection_target,
        detect_command.train_request, detect_command.eval_command, dict,
    ),
    "text": Application(
        "text", text_command.find_config, text_command.is_text_run,
        text_command.train_request, text_command.eval_command, text_command.shipped_configs,
    ),
    "recsys": Application(
        "recsys", recsys_command.find_config, recsys_command.is_recsys_run,
        recsys_command.train_request, recsys_command.eval_command, recsys_command.shipped_configs,
    ),
}  # fmt: skip


def list_applications() -> list[str]:
    """The names of the registered applications."""
    return sorted(APPLICATIONS)


def application_for_config(config: str) -> tuple[Application, Path] | None:
    """The application that claims ``config`` (a name or a YAML path) with its config file, or ``None``."""
    for app in APPLICATIONS.values():
        path = app.find_config(config)
        if path is not None:
            return app, path
    return None


def application_for_run(run: str | Path) -> Application | None:
    """The application whose run folder (or its ``model/``) ``run`` is, or ``None`` (a core run)."""
    return next((app for app in APPLICATIONS.values() if app.owns_run(Path(run))), None)


def application_configs() -> dict[str, Path]:
    """Every config shipped beside an application, by name."""
    return {name: path for app in APPLICATIONS.values() for name, path in app.configs().items()}
