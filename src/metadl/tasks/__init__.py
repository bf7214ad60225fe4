"""Tasks (support + query sets) and the task sources that yield them (see ``docs/tasks.md``)."""

from metadl.tasks.alphabet import AlphabetEpisode, AlphabetEpisodeSampler
from metadl.tasks.dataset_source import DatasetSource, NamedDataset, dataset_folder, read_npz, read_npz_folder
from metadl.tasks.file_source import TaskFileSource
from metadl.tasks.group_split import grouped_table, split_groups
from metadl.tasks.grouped import GroupedTable, GroupedTableSource
from metadl.tasks.registry import TASK_SOURCES, config_task_sources, create_task_source, list_task_sources
from metadl.tasks.samplers import EpisodeSampler, SinusoidSampler, VariableEpisodeSampler
from metadl.tasks.source import NamedTask, TaskKind, TaskSource, TaskSourceError
from metadl.tasks.task import Task, TaskBatch, as_task_batch, is_classification

__all__ = [
    "TASK_SOURCES",
    "AlphabetEpisode",
    "AlphabetEpisodeSampler",
    "DatasetSource",
    "EpisodeSampler",
    "GroupedTable",
    "GroupedTableSource",
    "NamedDataset",
    "NamedTask",
    "SinusoidSampler",
    "Task",
    "TaskBatch",
    "TaskFileSource",
    "TaskKind",
    "TaskSource",
    "TaskSourceError",
    "VariableEpisodeSampler",
    "as_task_batch",
    "config_task_sources",
    "create_task_source",
    "dataset_folder",
    "grouped_table",
    "is_classification",
    "list_task_sources",
    "read_npz",
    "read_npz_folder",
    "split_groups",
]
