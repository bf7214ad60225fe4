"""Tasks (support + query sets) and the samplers that draw them."""

from metadl.tasks.samplers import EpisodeSampler, SinusoidSampler, VariableEpisodeSampler
from metadl.tasks.task import Task, TaskBatch, as_task_batch, is_classification

__all__ = [
    "EpisodeSampler",
    "SinusoidSampler",
    "Task",
    "TaskBatch",
    "VariableEpisodeSampler",
    "as_task_batch",
    "is_classification",
]
