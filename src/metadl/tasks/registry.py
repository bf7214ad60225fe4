"""The task-source registry: one visible dict, filled here, and the two functions that read it.

Each entry builds a :class:`~metadl.tasks.source.TaskSource` from its own keyword arguments: the pool
samplers take a ``dataset``, the task-file and dataset sources a folder, the grouped-table source a
:class:`~metadl.tasks.grouped.GroupedTable` or a table file. Every entry but the pool samplers can be
named by a config (:func:`config_task_sources`; ``metadl.training.data`` builds its splits). ``tests/conformance/test_task_sources.py`` runs every entry
through the contract the moment it is registered.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from metadl.tasks.alphabet import AlphabetEpisodeSampler
from metadl.tasks.cactus import CACTUsSource
from metadl.tasks.dataset_source import dataset_folder
from metadl.tasks.fertility import fertility_tasks
from metadl.tasks.file_source import TaskFileSource
from metadl.tasks.functions import Sinusoid2DSampler, StepFunctionSampler
from metadl.tasks.group_split import grouped_table
from metadl.tasks.samplers import EpisodeSampler, SinusoidSampler, VariableEpisodeSampler
from metadl.tasks.source import TaskSource, TaskSourceError
from metadl.tasks.umtra import UMTRASource

TASK_SOURCES: dict[str, Callable[..., TaskSource]] = {
    "episodes": EpisodeSampler,  # N-way K-shot from one labelled pool
    "alphabet_episodes": AlphabetEpisodeSampler,  # within one alphabet, support and query by different drawers
    "variable_episodes": VariableEpisodeSampler,  # Meta-Dataset's variable-way variable-shot
    "sinusoid": SinusoidSampler,  # MAML's sinusoid regression
    "task_files": TaskFileSource,  # a folder of task files, each with its own label space
    "grouped_table": grouped_table,  # users (groups of rows) as regression tasks
    "datasets": dataset_folder,  # whole datasets (.npz) as tasks, for algorithm selection
    "step_functions": StepFunctionSampler,  # piecewise-constant regression, harder than sinusoids
    "sinusoid_2d": Sinusoid2DSampler,  # plane waves on the plane
    "fertility": fertility_tasks,  # countries as regression tasks (World Bank data shipped in statsmodels)
    "umtra": UMTRASource,  # unlabelled images: each drawn image a class, augmentations its shots (UMTRA)
    "cactus": CACTUsSource,  # unlabelled images: k-means clusters of embeddings as classes (CACTUs)
}


def list_task_sources() -> list[str]:
    """Names accepted by :func:`create_task_source`.

    Example:
        >>> list_task_sources()
        ['alphabet_episodes', 'cactus', 'datasets', 'episodes', 'fertility', 'grouped_table', 'sinusoid', 'sinusoid_2d', 'step_functions', 'task_files', 'umtra', 'variable_episodes']
    """
    return sorted(TASK_SOURCES)


# Sources that sample episodes from a pool given as an object: a config names the pool (a dataset of
# metadl.data) instead, and the engine draws its episodes with "episodes" (or "alphabet_episodes", chosen
# by sampler.source / eval.source, for within-alphabet episodes), or with "umtra" / "cactus" when the
# config's augment.unsupervised asks for tasks without labels.
POOL_SOURCES = ("episodes", "alphabet_episodes", "variable_episodes", "umtra", "cactus")


def config_task_sources() -> list[str]:
    """Task sources a config's ``dataset.name`` may name: every entry that generates or reads its own tasks.

    Example:
        >>> config_task_sources()
        ['datasets', 'fertility', 'grouped_table', 'sinusoid', 'sinusoid_2d', 'step_functions', 'task_files']
    """
    return [name for name in list_task_sources() if name not in POOL_SOURCES]


def create_task_source(name: str, **kwargs: Any) -> TaskSource:
    """Build a task source by name with the entry's keyword arguments.

    Example:
        >>> create_task_source("sinusoid", k_shot=5, n_query=5, seed=0).sample().support_x.shape
        torch.Size([5, 1])
        >>> create_task_source("omniglot")
        Traceback (most recent call last):
        ...
        metadl.tasks.source.TaskSourceError: unknown task source 'omniglot'; choose one of [...]
    """
    try:
        build = TASK_SOURCES[name]
    except KeyError:
        raise TaskSourceError(f"unknown task source {name!r}; choose one of {list_task_sources()}") from None
    try:
        inspect.signature(build).bind(**kwargs)  # a wrong keyword fails here, before any file is read
    except TypeError as err:
        raise TaskSourceError(f"create_task_source({name!r}): {err}") from None
    return build(**kwargs)
