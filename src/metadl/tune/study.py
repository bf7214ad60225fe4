"""``metadl tune``: an Optuna study over a config's learner, architecture and optimisation settings.

Each trial is a real, short ``metadl train`` of one point of :mod:`metadl.tune.space` through the run
object (:mod:`metadl.tune.trial`); every validation score is reported to Optuna, whose pruner (median or
Hyperband) stops the runs that trail the others at the same iteration.

**Resumable.** The study lives in an RDB storage (default ``sqlite:///OUT/study.sqlite3``) whose workers
send heartbeats. A study killed at any moment is resumed by running the same command again: trials that
finished (complete or pruned) are kept and count towards ``--trials``; a trial that was running when its
process died stops sending heartbeats, is marked failed once ``3 x heartbeat`` seconds have passed, and
its configuration is tried again (Optuna's ``RetryHeartbeatStaleTrialCallback``).

**Several workers.** ``workers`` processes (spawned here, or the same command started on other machines
with the same ``--storage``) share the study through its storage; together they stop at ``trials`` finished
trials (``MaxTrialsCallback``; workers that are mid-trial then may finish one more each).

**Warm start.** Before the first trial, :mod:`metadl.tune.warmstart` may enqueue the configurations that
did best on the most similar task distributions of the experiment database.

Every finished trial is also recorded in the experiment database (kind ``trial``), and ``OUT/best_vs_time.png``
plots the best validation score against the study's time.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tqdm.auto import tqdm

from metadl.config import Config, config_from_dict, config_to_dict
from metadl.experiments.database import ExperimentDB, RunRecord
from metadl.experiments.record import config_features, distribution_name, peak_memory_mb, task_kind
from metadl.training.meta import NonFiniteLossError
from metadl.tune.plots import plot_best_vs_time
from metadl.tune.space import Params, apply_params, modality_of, suggest
from metadl.tune.trial import train_trial

if TYPE_CHECKING:
    import optuna

PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("tpe", "random")
PLOT_FILE = "best_vs_time.png"


class TuneError(ValueError):
    """A tuning setting is out of range (the message names it and the fix)."""


@dataclass(frozen=True)
class TuneJob:
    """Everything a worker process needs to run trials of one study (picklable, for spawned workers).

    ``raw`` is the base config mapping, whose data every trial trains on.
    """

    raw: dict[str, Any]
    out: Path
    study: str
    storage: str
    trials: int
    deadline: float | None = None  # time.time() after which no trial starts and the running one stops
    pruner: str = "median"
    sampler: str = "tpe"
    seed: int = 0
    heartbeat: int = 10
    db: Path | None = None  # the experiment database to record trials in, or None

    @cached_property
    def base(self) -> Config:
        return config_from_dict(self.raw, source=self.study)

    @cached_property
    def direction(self) -> Literal["minimize", "maximize"]:
        return "minimize" if task_kind(self.base) == "regression" else "maximize"

    def check(self) -> TuneJob:
        if self.trials < 1:
            raise TuneError(f"--trials {self.trials}; give at least 1 trial")
        if self.pruner not in PRUNERS or self.sampler not in SAMPLERS:
            raise TuneError(
                f"pruner={self.pruner!r}, sampler={self.sampler!r}; choose from {PRUNERS} and {SAMPLERS}"
            )
        if self.heartbeat < 1:
            raise TuneError(f"heartbeat={self.heartbeat}; give at least 1 second")
        if self.base.dataset.val_split is None or self.base.train.val_every <= 0:
            raise TuneError(
                "tuning judges trials on validation: set dataset.val_split and train.val_every > 0"
            )
        return self


@dataclass(frozen=True)
class TuneResult:
    """How a study stands after a ``tune`` call: counts by state, the best trial, and the plot."""

    study: str
    storage: str
    complete: int
    pruned: int
    failed: int
    best_value: float | None
    best_params: Params | None
    plot: Path | None


def storage_for(job: TuneJob) -> optuna.storages.RDBStorage:
    import optuna  # optional dependency: metadl[tune]

    with warnings.catch_warnings():  # heartbeats are marked experimental; they are what makes resuming work
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            job.storage,
            engine_kwargs={"connect_args": {"timeout": 60}} if job.storage.startswith("sqlite") else None,
            heartbeat_interval=job.heartbeat,
            grace_period=3 * job.heartbeat,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
        )


def make_sampler(job: TuneJob, worker: int = 0) -> optuna.samplers.BaseSampler:
    """TPE (5 random trials first) or random search, seeded by the job's seed plus the worker's index."""
    import optuna  # optional dependency: metadl[tune]

    if job.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=job.seed + worker, n_startup_trials=5)
    return optuna.samplers.RandomSampler(seed=job.seed + worker)


def make_pruner(job: TuneJob) -> optuna.pruners.BasePruner:
    """Median (after 3 trials), Hyperband (from one validation period to the whole run) or none."""
    import optuna  # optional dependency: metadl[tune]

    train = job.base.train
    if job.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3)
    if job.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=train.val_every, max_resource=train.iterations)
    return optuna.pruners.NopPruner()


def open_study(job: TuneJob, worker: int = 0) -> optuna.Study:
    """Create the study in its storage, or load it to resume; ``worker`` offsets the sampler's seed."""
    import optuna  # optional dependency: metadl[tune]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=job.study, storage=storage_for(job), sampler=make_sampler(job, worker),
        pruner=make_pruner(job), direction=job.direction, load_if_exists=True,
    )  # fmt: skip


def finished(study: optuna.Study) -> int:
    """Trials that count towards ``--trials``: complete or pruned."""
    return len(study.get_trials(deepcopy=False, states=_done_states()))


class Objective:
    """One trial: train the suggested point, report validation to the pruner, record it in the database."""

    def __init__(self, job: TuneJob) -> None:
        self.job = job
        self.db = ExperimentDB(job.db) if job.db is not None else None
        self._features: dict[str, float] | None = None

    def features(self, cfg: Config) -> dict[str, float]:
        if self._features is None:
            s = cfg.sampler
            self._features = config_features(cfg, cfg.dataset.split, (s.ways, s.shots, s.queries)).as_dict()
        return self._features

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna  # optional dependency: metadl[tune]

        params = suggest(trial.suggest_categorical, modality_of(self.features(self.job.base)))
        trial.set_user_attr("pid", os.getpid())
        cfg = config_from_dict(apply_params(self.job.raw, params), source=f"trial {trial.number}")

        def report(iteration: int, value: float) -> None:
            trial.report(value, iteration)
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation {value:.4f} at iteration {iteration}")

        left = None if self.job.deadline is None else max(1.0, self.job.deadline - time.time())
        folder = self.job.out / "trials" / f"trial-{trial.number:04d}"
        outcome = train_trial(cfg, folder, report=report, time_limit=left)
        if not outcome.complete:
            trial.set_user_attr("stopped_by", "time limit")
            raise optuna.TrialPruned(f"cut by the time limit at iteration {outcome.iterations}")
        if self.db is not None:
            s = cfg.sampler
            self.db.add(
                RunRecord(
                    kind="trial",
                    distribution=distribution_name(cfg, cfg.dataset.split, (s.ways, s.shots, s.queries)),
                    config=config_to_dict(cfg),
                    params=params,
                    metafeatures=self.features(cfg),
                    metrics={f"val_{outcome.metric}": outcome.value},
                    seconds=outcome.seconds,
                    peak_memory_mb=peak_memory_mb(),
                    study=self.job.study,
                )
            )
        return outcome.value


def run_worker(job: TuneJob, worker: int = 0, progress: bool = False) -> None:
    """Run trials of the study until it has ``job.trials`` finished ones or the deadline passes."""
    import optuna  # optional dependency: metadl[tune]

    study = open_study(job, worker)
    with warnings.catch_warnings():  # experimental since Optuna 2.9, and what resuming a killed study needs
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    remaining = job.trials - finished(study)
    if remaining <= 0:
        return
    bar = tqdm(
        total=job.trials,
        initial=job.trials - remaining,
        desc="tune",
        disable=not progress,
        dynamic_ncols=True,
    )

    def update(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        bar.n = min(job.trials, finished(study))
        best = _best(study)
        bar.set_postfix({"best": f"{best[0]:.4f}"} if best else {}, refresh=True)

    timeout = None if job.deadline is None else max(0.0, job.deadline - time.time())
    try:
        study.optimize(
            Objective(job),
            n_trials=remaining,
            timeout=timeout,
            catch=(NonFiniteLossError,),  # a diverging configuration is a failed trial, not a failed study
            callbacks=[optuna.study.MaxTrialsCallback(job.trials, states=_done_states()), update],
        )
    finally:
        bar.close()


def tune(
    job: TuneJob, *, workers: int = 1, warm_start: list[Params] | None = None, progress: bool = True
) -> TuneResult:
    """Run (or resume) the study ``job`` describes with ``workers`` processes; see the module docstring."""
    job.check()
    if workers < 1:
        raise TuneError(f"--workers {workers}; give at least 1")
    job.out.mkdir(parents=True, exist_ok=True)
    study = open_study(job)
    if warm_start and not study.trials:  # only a new study is warm-started; a resumed one has its queue
        for params in warm_start:
            study.enqueue_trial(params, user_attrs={"warm_start": True}, skip_if_exists=True)
    spawn = multiprocessing.get_context("spawn")
    others = [spawn.Process(target=run_worker, args=(job, w)) for w in range(1, workers)]
    for process in others:
        process.start()
    try:
        run_worker(job, 0, progress)
    finally:
        for process in others:
            process.join()
    study = open_study(job)
    count = {state.name: len(study.get_trials(deepcopy=False, states=(state,))) for state in _all_states()}
    best = _best(study)
    trials = study.get_trials(deepcopy=False)
    plot = plot_best_vs_time(trials, job.out / PLOT_FILE, maximize=job.direction == "maximize")
    return TuneResult(
        study=job.study,
        storage=job.storage,
        complete=count["COMPLETE"],
        pruned=count["PRUNED"],
        failed=count["FAIL"],
        best_value=best[0] if best else None,
        best_params=best[1] if best else None,
        plot=plot,
    )


def _best(study: optuna.Study) -> tuple[float, Params] | None:
    complete = [t for t in study.get_trials(deepcopy=False, states=_done_states()[:1]) if t.value is not None]
    if not complete:
        return None
    sign = 1 if study.direction.name == "MAXIMIZE" else -1
    top = max(complete, key=lambda t: sign * float(t.value or 0.0))
    return float(top.value or 0.0), dict(top.params)


def _done_states() -> tuple[Any, ...]:
    import optuna  # optional dependency: metadl[tune]

    return (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def _all_states() -> tuple[Any, ...]:
    import optuna  # optional dependency: metadl[tune]

    s = optuna.trial.TrialState
    return (s.COMPLETE, s.PRUNED, s.FAIL)
