"""Recording runs: what ``metadl train`` and ``metadl eval`` write to the experiment database when they finish.

One call at the end of each command (``--no-record`` skips it). The meta-features of the run's task
distribution are computed here, from the config's split and episode shape, so the trainer and the evaluator
stay unaware of the database. A database that cannot be written (locked beyond the busy timeout, a disk
full, a newer schema) never fails the command whose work is done: :func:`record_or_warn` says so on one line.
"""

from __future__ import annotations

import json
import math
import resource
import sys
from collections.abc import Callable

from metadl.config import Config, config_to_dict
from metadl.evaluation.cluster_protocol import ClusteringEvalResult
from metadl.evaluation.episodes import EvalResult
from metadl.experiments.database import ExperimentDB, ExperimentDBError, RunRecord
from metadl.experiments.metafeatures import (
    LANDMARK_SEED,
    DistributionFeatures,
    distribution_features,
    regression_features,
)
from metadl.tasks import TaskKind
from metadl.training.build import load_dataset_split
from metadl.training.data import build_source, example_shape, is_task_source
from metadl.training.run import TrainResult


def peak_memory_mb() -> float:
    """The peak resident memory of this process so far, in MiB (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def distribution_name(cfg: Config, split: str, shape: tuple[int, int, int]) -> str:
    """A stable name for a split seen through an episode shape, e.g. ``synthetic_glyphs{"seed": 0}/train:5w1s15q``.

    Example:
        >>> from metadl.config import config_from_dict
        >>> cfg = config_from_dict({"dataset": {"name": "synthetic_glyphs", "seed": 3},
        ...                         "backbone": {"name": "conv4"}, "learner": {"name": "protonet"}})
        >>> distribution_name(cfg, "train", (5, 1, 15))
        'synthetic_glyphs{"seed": 3}/train:5w1s15q'
    """
    ds = cfg.dataset
    options = {**ds.options, **({"image_size": ds.image_size} if ds.image_size is not None else {})}
    described = json.dumps(options, sort_keys=True) if options else ""
    ways, shots, queries = shape
    return f"{ds.name}{described}/{split}:{ways}w{shots}s{queries}q"


def task_kind(cfg: Config) -> TaskKind:
    """``"classification"`` for a dataset's episodes, else the configured task source's own kind."""
    if not is_task_source(cfg):
        return "classification"
    s = cfg.sampler
    return build_source(cfg, cfg.dataset.split, LANDMARK_SEED, (s.ways, s.shots, s.queries)).kind


def config_features(cfg: Config, split: str, shape: tuple[int, int, int]) -> DistributionFeatures:
    """Meta-features of ``split`` of the configured data in episodes of ``shape`` = (ways, shots, queries).

    A task source (no dataset of labelled examples) is described by its episode shape, input shape and kind
    only: its landmarkers are not computed.
    """
    ways, shots, queries = shape
    if not is_task_source(cfg):
        return distribution_features(load_dataset_split(cfg, split), ways=ways, shots=shots, queries=queries)
    source = build_source(cfg, split, LANDMARK_SEED, shape)
    x = example_shape(source)
    if source.kind == "regression":
        return regression_features(shots=shots, queries=queries, in_features=math.prod(x))
    channels, height, width = x if len(x) == 3 else (math.prod(x), 0, 0)
    modality = "image" if len(x) == 3 else "vector"
    return DistributionFeatures(0, ways, shots, queries, channels, height, width, modality)


def training_record(cfg: Config, result: TrainResult, *, config_name: str | None = None) -> RunRecord:
    """The database row of a finished (or time-limited) training session."""
    s = cfg.sampler
    shape = (s.ways, s.shots, s.queries)
    metrics = {"iterations": float(result.iterations), "complete": float(result.complete)}
    if result.best_value is not None:
        metrics[f"val_{result.metric}"] = float(result.best_value)
    return RunRecord(
        kind="train",
        distribution=distribution_name(cfg, cfg.dataset.split, shape),
        config=config_to_dict(cfg),
        metrics=metrics,
        metafeatures=config_features(cfg, cfg.dataset.split, shape).as_dict(),
        config_name=config_name,
        seconds=result.seconds,
        peak_memory_mb=peak_memory_mb(),
    )


def evaluation_record(
    cfg: Config,
    result: EvalResult | ClusteringEvalResult,
    *,
    config_name: str | None = None,
    seconds: float | None = None,
) -> RunRecord:
    """The database row of a ``metadl eval`` run (its test split and episode shape).

    A clustering run is scored over groups (alphabets), not episodes: it records their count and NMI/ARI.
    """
    shape = cfg.eval_shape()
    metrics = {f"test_{result.metric}": result.mean, "test_ci95": result.ci95}
    if isinstance(result, ClusteringEvalResult):
        metrics |= {"test_nmi": result.nmi, "test_ari": result.ari, "groups": float(len(result.groups))}
    else:
        metrics["episodes"] = float(result.episodes)
    return RunRecord(
        kind="eval",
        distribution=distribution_name(cfg, cfg.eval.split, shape),
        config=config_to_dict(cfg),
        metrics=metrics,
        metafeatures=config_features(cfg, cfg.eval.split, shape).as_dict(),
        config_name=config_name,
        seconds=seconds,
        peak_memory_mb=peak_memory_mb(),
    )


def record_or_warn(make: Callable[[], RunRecord], db: ExperimentDB | None = None) -> int | None:
    """Add the record ``make()`` builds; on a database error print one warning line and return ``None``."""
    try:
        database = db or ExperimentDB()
        return database.add(make())
    except (ExperimentDBError, OSError) as err:
        print(f"metadl: warning: run not recorded in the experiment database: {err}", file=sys.stderr)
        return None
