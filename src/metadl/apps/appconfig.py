"""What the applications' configs share: finding one (a name shipped in the application's ``configs/``
folder, or a YAML file whose top-level ``app`` key names the application: ``app: text``, ``app: recsys``),
and reading a section into its frozen dataclass with one-line errors.

The core configs (:mod:`metadl.config`) have no ``app`` key; :mod:`metadl.apps.registry` asks each
application's ``find_config`` first and gives the core trainer what none claims.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from metadl.config import ConfigError, read_yaml


def shipped_configs(folder: Path) -> list[str]:
    """The names (file stems) of the ``*.yaml`` configs in ``folder``, sorted."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


def declares_app(path: Path, app: str) -> bool:
    """Whether ``path`` is a readable YAML mapping with ``app: <app>`` (False for anything else)."""
    try:
        raw = read_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ConfigError):
        return False
    return isinstance(raw, dict) and raw.get("app") == app


def find_app_config(name: str, folder: Path, app: str) -> Path | None:
    """The shipped config ``name`` in ``folder``, or the YAML file ``name`` when it declares ``app``; else None.

    Example:
        >>> from metadl.apps.recsys.config import CONFIG_FOLDER
        >>> find_app_config("recsys_movielens100k_coldstart", CONFIG_FOLDER, "recsys").name
        'recsys_movielens100k_coldstart.yaml'
        >>> find_app_config("maml_sinusoid", CONFIG_FOLDER, "recsys") is None
        True
    """
    if name in shipped_configs(folder):
        return folder / f"{name}.yaml"
    path = Path(name)
    return path if path.suffix in (".yaml", ".yml") and declares_app(path, app) else None


def config_section(cls: type, raw: Any, key: str) -> Any:
    """``cls(**raw)`` for the config section ``key``: unknown keys, wrong values and a non-mapping are a
    one-line :class:`ConfigError` naming the section; YAML lists become tuples (sections are frozen)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{key}: expected a mapping, got {raw!r}")
    names = [f.name for f in dataclasses.fields(cls) if f.name != "raw"]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"{key}: unknown keys {unknown}; allowed: {names}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{key}: {err}") from None


def yaml_scalar(value: Any) -> Any:
    """``--set`` values arrive as text: read them as YAML scalars (``3e-3``, ``null``, ``[5, 10]``)."""
    return read_yaml(value) if isinstance(value, str) else value
