"""Filling the experiment database with trials on many task distributions: what warm starts learn from.

For each distribution, :func:`populate` trains ``trials`` distinct points of the search space drawn at
random (seeded; random rather than searched, so that the meta-model sees good and bad configurations
alike), scores each on validation and test, and records it (kind ``"trial"``, study ``"populate"``) with the
distribution's meta-features. Points already recorded for a distribution are skipped, so an interrupted
run continues where it stopped.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from metadl.config import config_from_dict, config_to_dict
from metadl.experiments.database import ExperimentDB, RunRecord
from metadl.experiments.metafeatures import distribution_features
from metadl.experiments.record import peak_memory_mb
from metadl.tune.budget import Distribution, TrialBudget
from metadl.tune.space import apply_params, grid, params_key
from metadl.tune.trial import train_trial

POPULATE_STUDY = "populate"


@dataclass(frozen=True)
class PopulateReport:
    """What a :func:`populate` call did: distributions visited, trials run and skipped, seconds, database size."""

    distributions: int
    trials_run: int
    trials_skipped: int
    seconds: float
    database_rows: int


def populate(
    db: ExperimentDB,
    distributions: Sequence[Distribution],
    *,
    trials: int,
    budget: TrialBudget | None = None,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> PopulateReport:
    """Record ``trials`` random configurations on each distribution (see the module docstring)."""
    if trials < 1:
        raise ValueError(f"trials={trials}; give at least 1 trial per distribution")
    budget = budget or TrialBudget()
    started, run, skipped = time.monotonic(), 0, 0
    for index, dist in enumerate(distributions):
        points = grid(dist.modality)
        chosen = random.Random(f"{seed}/{dist.name}").sample(points, min(trials, len(points)))
        done = {params_key(r.params) for r in db.query(distribution=dist.name, kind="trial")}
        todo = [p for p in chosen if params_key(p) not in done]
        skipped += len(chosen) - len(todo)
        if not todo:
            continue
        splits = dist.splits()
        features = distribution_features(
            splits["train"], ways=dist.ways, shots=dist.shots, queries=budget.queries
        )
        for params in todo:
            cfg = config_from_dict(apply_params(dist.config(budget, seed=seed), params), source=dist.name)
            with tempfile.TemporaryDirectory() as tmp:
                outcome = train_trial(cfg, Path(tmp) / "trial", splits=splits, test=True)
            assert outcome.test_value is not None
            db.add(
                RunRecord(
                    kind="trial",
                    distribution=dist.name,
                    config=config_to_dict(cfg),
                    params=params,
                    metafeatures=features.as_dict(),
                    metrics={
                        f"val_{outcome.metric}": outcome.value,
                        f"test_{outcome.metric}": outcome.test_value,
                    },
                    seconds=outcome.seconds,
                    peak_memory_mb=peak_memory_mb(),
                    study=POPULATE_STUDY,
                )
            )
            run += 1
        log(
            f"[{index + 1}/{len(distributions)}] {dist.name}: {len(todo)} trials, {time.monotonic() - started:.0f}s so far"
        )
    return PopulateReport(len(distributions), run, skipped, time.monotonic() - started, db.count())
