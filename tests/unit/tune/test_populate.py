"""populate: random trials on generated distributions, recorded with meta-features; resumable."""

from __future__ import annotations

from pathlib import Path

import pytest

from metadl.experiments import ExperimentDB
from metadl.tune.distributions import TrialBudget, task_distributions
from metadl.tune.populate import populate
from metadl.tune.space import check_params

pytestmark = pytest.mark.usefixtures("one_thread")


def test_populate_records_distinct_trials_and_skips_them_when_run_again(tmp_path: Path) -> None:
    db = ExperimentDB(tmp_path / "db.sqlite")
    dist = task_distributions()[0]
    budget = TrialBudget(iterations=2, val_every=1, val_episodes=2, test_episodes=2, queries=1)
    first = populate(db, [dist], trials=2, budget=budget, log=lambda _: None)
    assert (first.trials_run, first.trials_skipped, first.database_rows) == (2, 0, 2)
    rows = db.query()
    assert len({str(r.params) for r in rows}) == 2 and all(check_params(r.params) == r.params for r in rows)
    assert {r.distribution for r in rows} == {dist.name} and {r.study for r in rows} == {"populate"}
    assert all(0 <= r.metrics["val_accuracy"] <= 1 and 0 <= r.metrics["test_accuracy"] <= 1 for r in rows)
    assert rows[0].metafeatures["ways"] == dist.ways and rows[0].metafeatures["height"] == dist.image_size
    again = populate(db, [dist], trials=2, budget=budget, log=lambda _: None)
    assert (again.trials_run, again.trials_skipped, again.database_rows) == (0, 2, 2)
    with pytest.raises(ValueError, match="at least 1 trial"):
        populate(db, [dist], trials=0)
