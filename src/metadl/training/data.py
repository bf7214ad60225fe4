"""A run's tasks from a task source: what the engine adds to a config's ``dataset`` options, per split.

A config's ``dataset.name`` is either a dataset of :mod:`metadl.data` (drawn as N-way K-shot episodes
by :class:`~metadl.tasks.EpisodeSampler`, see :func:`metadl.training.build.make_sampler`) or a task
source of the registry (:func:`metadl.tasks.config_task_sources`). A source is built with the
section's options plus what the engine sets (:data:`metadl.config.SOURCE_DERIVED`):

- ``k_shot``, ``n_query`` (and ``n_way`` when the source takes it) from the episode shape: the
  sampler section's for training, the eval section's for validation and testing;
- ``seed``: :func:`~metadl.training.build.derive_seed` of the run's (or the evaluation's) seed and the
  split name, so that no two splits share a stream;
- the split: passed as ``split`` when the source takes one (``fertility``'s countries, ``grouped_table``'s
  groups, ``task_files``' split files); a source that reads a folder without a ``split`` argument
  (``datasets``) reads ``root/<split>``, as the ``image_folder`` dataset does; a source that generates its
  tasks (``sinusoid``, ``step_functions``, ``sinusoid_2d``) has splits that differ by their seed only.

The input shape and whether the run is regression or classification come from the source
(:func:`example_shape`, ``source.kind``), never from the source's name.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from metadl.config import Config
from metadl.tasks import TASK_SOURCES, TaskSource, config_task_sources, create_task_source


def is_task_source(cfg: Config) -> bool:
    """True when the config's data is a task source rather than a dataset of labelled examples.

    Example:
        >>> from metadl.config import config_from_dict
        >>> is_task_source(config_from_dict({"dataset": {"name": "step_functions"}, "backbone": {"name": "mlp"},
        ...                                  "learner": {"name": "maml"}}))
        True
    """
    return cfg.dataset.name in config_task_sources()


def source_kwargs(cfg: Config, split: str, seed: int, shape: tuple[int, int, int]) -> dict[str, Any]:
    """The keyword arguments the configured source is built with for ``split`` (see the module docstring).

    Example:
        >>> from metadl.config import config_from_dict
        >>> cfg = config_from_dict({"dataset": {"name": "fertility", "min_years": 30}, "backbone": {"name": "mlp"},
        ...                         "learner": {"name": "cnp"}})
        >>> source_kwargs(cfg, "val", 7, (5, 5, 20))
        {'min_years': 30, 'split': 'val', 'k_shot': 5, 'n_query': 20, 'seed': 7}
    """
    ds = cfg.dataset
    params = inspect.signature(TASK_SOURCES[ds.name]).parameters
    ways, shots, queries = shape
    derived: dict[str, Any] = {
        "split": split,
        "n_way": ways,
        "k_shot": shots,
        "n_query": queries,
        "seed": seed,
    }
    kwargs = {**ds.options, **{k: v for k, v in derived.items() if k in params}}
    if ds.root is not None:
        kwargs["root"] = ds.root if "split" in params else str(Path(ds.root) / split)
    return kwargs


def build_source(cfg: Config, split: str, seed: int, shape: tuple[int, int, int]) -> TaskSource:
    """The configured task source of one split, seeded with ``seed`` (already derived for the split)."""
    return create_task_source(cfg.dataset.name, **source_kwargs(cfg, split, seed, shape))


def example_shape(source: TaskSource) -> tuple[int, ...]:
    """The shape of one input example, read from a task drawn and then undrawn (the stream is unchanged).

    Example:
        >>> from metadl.tasks import create_task_source
        >>> source = create_task_source("sinusoid_2d", k_shot=3, n_query=2, seed=0)
        >>> first = source.sample().support_x
        >>> source = create_task_source("sinusoid_2d", k_shot=3, n_query=2, seed=0)
        >>> example_shape(source), bool((source.sample().support_x == first).all())
        ((2,), True)
    """
    state = source.state_dict()
    task = source.sample()
    source.load_state_dict(state)
    return tuple(task.support_x.shape[1:])
