"""metadl tune's study: trials through the run object, warm-start queue, resume after a kill, workers, pruning."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from metadl.experiments import ExperimentDB
from metadl.tune.space import grid, params_key, suggest
from metadl.tune.study import TuneError, TuneJob, make_pruner, make_sampler, open_study, run_worker, tune

optuna = pytest.importorskip("optuna")
pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "seed": 0,
    "device": "cpu",
    "dataset": {"name": "synthetic_glyphs", "image_size": 16, "num_classes": 8, "examples_per_class": 4},
    "sampler": {"ways": 3, "shots": 1, "queries": 1, "meta_batch": 1},
    "backbone": {"name": "conv4"},
    "learner": {"name": "protonet"},
    "train": {"iterations": 4, "val_every": 2, "checkpoint_every": 4, "val_episodes": 2},
    "eval": {"episodes": 4},
}
POINT = {"learner": "protonet", "backbone": "mlp", "width": 16, "depth": 1, "lr": 0.003}


def _job(tmp_path: Path, trials: int, **kw: object) -> TuneJob:
    storage = f"sqlite:///{tmp_path / 'study.sqlite3'}"
    return TuneJob(
        TINY, tmp_path / "out", "tiny", storage, trials, heartbeat=1, db=tmp_path / "db.sqlite", **kw
    )  # type: ignore[arg-type]


def _states(job: TuneJob) -> list[str]:
    return [t.state.name for t in open_study(job).get_trials(deepcopy=False)]


def test_a_study_runs_warm_start_first_records_and_plots(tmp_path: Path) -> None:
    job = _job(tmp_path, 3, pruner="none")
    result = tune(job, warm_start=[POINT], progress=False)
    trials = open_study(job).get_trials()
    assert trials[0].params == POINT and trials[0].user_attrs["warm_start"] is True
    assert result.complete == 3 and result.pruned == result.failed == 0
    assert result.best_value == max(t.value for t in trials)
    assert result.plot is not None and result.plot.stat().st_size > 1000
    rows = ExperimentDB(tmp_path / "db.sqlite").query(kind="trial")
    assert [r.params for r in rows] == [t.params for t in trials] and {r.study for r in rows} == {"tiny"}
    assert rows[0].metrics["val_accuracy"] == pytest.approx(trials[0].value)
    assert rows[0].metafeatures["ways"] == 3 and rows[0].distribution.endswith("/train:3w1s1q")
    folder = job.out / "trials" / "trial-0000"
    assert (folder / "model").is_dir() and not (folder / "learning_curves.png").exists()  # no plots in trials


def test_a_study_with_a_stale_trial_resumes_without_repeating_finished_ones(tmp_path: Path) -> None:
    job = _job(tmp_path, 2, pruner="none")
    tune(job, progress=False)
    before = {t.number: (t.params, t.value) for t in open_study(job).get_trials()}
    study = open_study(job)  # a worker dies mid-trial: its trial stays RUNNING and its heartbeats stop
    dying = study.ask()
    study._storage.record_heartbeat(dying._trial_id)
    # Past the grace period (3 x heartbeat) with a margin: Optuna compares the heartbeat with SQLite's
    # CURRENT_TIMESTAMP, which has whole seconds, so "now" can read up to 1 s early (3.5 s failed at times).
    time.sleep(5.0)
    result = tune(_job(tmp_path, 4, pruner="none"), progress=False)
    after = open_study(job).get_trials()
    assert {t.number: (t.params, t.value) for t in after if t.number in before} == before  # kept, not rerun
    assert after[dying.number].state.name == "FAIL"
    assert result.complete == 4 and len(after) == 5  # 2 kept + the failed one + 2 new (one retries it)
    retried = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number
    assert [retried(t) for t in after].count(dying.number) == 1


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TuneError, match="at least 1 trial"):
        tune(_job(tmp_path, 0), progress=False)
    no_validation = TuneJob(
        {**TINY, "train": {**TINY["train"], "val_every": 0}},
        tmp_path / "o",
        "t",
        f"sqlite:///{tmp_path}/s.db",
        1,
    )
    with pytest.raises(TuneError, match="validation"):
        tune(no_validation, progress=False)


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_pruning_never_stops_the_best_trial_of_a_planted_study(tmp_path: Path, pruner: str) -> None:
    """Planted learning curves: each point has a quality q and reports q * step / 10 at steps 2..10 (curves never
    cross, as when one configuration is better throughout). The best point the search tries must complete."""
    order = {params_key(p): i for i, p in enumerate(grid())}
    quality = {k: ((i * 37) % 90) / 90 for k, i in order.items()}  # a fixed scramble of the grid
    job = TuneJob(
        {**TINY, "train": {**TINY["train"], "iterations": 10}},
        tmp_path,
        "planted",
        "",
        40,
        pruner=pruner,
        seed=3,
    )
    study = optuna.create_study(sampler=make_sampler(job), pruner=make_pruner(job), direction=job.direction)

    def objective(trial: optuna.Trial) -> float:
        q = quality[params_key(suggest(trial.suggest_categorical))]
        for step in range(2, 11, 2):
            trial.report(q * step / 10, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return q

    study.optimize(objective, n_trials=40)
    tried = study.get_trials()
    best = max(tried, key=lambda t: quality[params_key(t.params)])
    assert best.state.name == "COMPLETE"
    assert any(t.state.name == "PRUNED" for t in tried)  # the pruner did act


def _complete(storage: Path) -> int:
    """COMPLETE trials in an Optuna SQLite storage, read without opening (or creating) the study."""
    if not storage.exists():
        return 0
    with contextlib.closing(sqlite3.connect(storage, timeout=60)) as con:
        try:
            return int(con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0])
        except sqlite3.OperationalError:  # the tables are not created yet
            return 0


@pytest.mark.slow
def test_a_killed_tune_command_resumes_and_completes_without_repeating_complete_trials(
    tmp_path: Path,
) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    command = [sys.executable, "-m", "metadl.cli", "tune", str(config), "--trials", "5", "--heartbeat", "1",
               "--pruner", "none", "--out", str(tmp_path / "out"), "--no-progress", "--db", str(tmp_path / "db.sqlite")]  # fmt: skip
    storage = (tmp_path / "out" / "study.sqlite3").resolve()
    job = TuneJob(TINY, tmp_path / "out", "tiny", f"sqlite:///{storage}", 5, heartbeat=1)
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and first.poll() is None and _complete(storage) < 2:
        time.sleep(0.5)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    before = {t.number: t.value for t in open_study(job).get_trials() if t.state.name == "COMPLETE"}
    assert 2 <= len(before) < 5
    time.sleep(3.5)  # past the grace period of the killed trial's heartbeat
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
    after = open_study(job).get_trials()
    assert {t.number: t.value for t in after if t.number in before} == before
    assert [t.state.name for t in after].count("COMPLETE") == 5  # finished ones count: no trial is repeated
    assert len(after) <= 6  # 5 complete + at most the one killed mid-run (FAIL)


@pytest.mark.slow
def test_two_workers_share_one_study(tmp_path: Path) -> None:
    """A second worker process joins a study another one is running; each runs trials of it."""
    job = _job(tmp_path, 4, pruner="none")
    open_study(job)  # created before either worker starts
    other = multiprocessing.get_context("spawn").Process(target=run_worker, args=(job, 1))
    other.start()
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and other.is_alive() and _complete(tmp_path / "study.sqlite3") < 1:
        time.sleep(0.5)
    result = tune(job, progress=False)  # this process joins as the second worker
    other.join(timeout=900)
    trials = open_study(job).get_trials()
    assert other.exitcode == 0 and result.complete >= 4
    assert len({t.user_attrs["pid"] for t in trials}) == 2
