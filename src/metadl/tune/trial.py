"""One tuning trial: a real, short ``metadl train`` of one configuration through the run object.

:func:`train_trial` builds the run from the config (:meth:`TrainingRun.setup`), wraps its validator so that
every validation score is also handed to ``report(iteration, score)`` (where an Optuna trial reports it and
its pruner may stop the run by raising), and runs it in its own locked run folder. The result carries the
best validation score, and the test score of the best weights when asked for (the benchmark needs it; a
search never looks at it).

Example:
    >>> from metadl.config import config_from_dict
    >>> from metadl.data.synthetic import synthetic_glyphs
    >>> import tempfile, pathlib
    >>> cfg = config_from_dict({"seed": 0, "device": "cpu", "dataset": {"name": "synthetic_glyphs", "image_size": 16},
    ...     "sampler": {"ways": 3, "shots": 1, "queries": 2, "meta_batch": 1}, "backbone": {"name": "mlp", "hidden": [8]},
    ...     "learner": {"name": "protonet"}, "train": {"iterations": 4, "val_every": 2, "val_episodes": 2},
    ...     "eval": {"episodes": 3}})
    >>> splits = {s: synthetic_glyphs(s, num_classes=4, examples_per_class=3, image_size=16) for s in ("train", "val", "test")}
    >>> seen = []
    >>> out = train_trial(cfg, pathlib.Path(tempfile.mkdtemp()) / "t", splits=splits,
    ...                   report=lambda it, v: seen.append(it), test=True)
    >>> seen, out.iterations, 0 <= out.value <= 1, out.test_value is not None
    ([2, 4], 4, True, True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from metadl.algorithms.base import Learner
from metadl.config import Config
from metadl.data.base import FewShotDataset
from metadl.evaluation import EvalResult
from metadl.evaluation.run import evaluate_config
from metadl.training.distributed import DistributedContext
from metadl.training.run import RunState, TrainingRun, Validator
from metadl.training.runfolder import RunFolder

Report = Callable[[int, float], None]


@dataclass
class ReportingValidator:
    """A validator that also reports each score with the iteration it was reached at."""

    inner: Validator
    state: RunState
    report: Report

    def __call__(self, learner: Learner) -> EvalResult:
        result = self.inner(learner)
        self.report(self.state.iteration, result.mean)
        return result


@dataclass(frozen=True)
class TrialOutcome:
    """How a trial's training went: best validation score, iterations run, seconds, and the test score if asked."""

    value: float
    metric: str
    iterations: int
    complete: bool
    seconds: float
    test_value: float | None = None


def train_trial(
    cfg: Config,
    folder: Path,
    *,
    splits: Mapping[str, FewShotDataset] | None = None,
    report: Report | None = None,
    time_limit: float | None = None,
    test: bool = False,
) -> TrialOutcome:
    """Train ``cfg`` into the new run folder ``folder`` (validation reported to ``report``); see the module docstring.

    ``cfg`` must validate (``train.val_every`` > 0 and a ``dataset.val_split``): a trial is judged on validation.
    Whatever ``report`` raises (Optuna's ``TrialPruned``) stops the run and propagates.
    """
    if cfg.dataset.val_split is None or cfg.train.val_every <= 0:
        raise ValueError(
            "a tuning trial is judged on validation: give dataset.val_split and train.val_every > 0"
        )
    run_folder = RunFolder(folder)
    ctx = DistributedContext.from_env(cfg.device)
    try:
        with run_folder.lock():
            built = TrainingRun.setup(
                cfg, run_folder, ctx, resume=False, splits=splits, progress=False, log=lambda _: None
            )
            assert built.validator is not None  # validation is configured (checked above)
            validator = (
                built.validator
                if report is None
                else ReportingValidator(built.validator, built.state, report)
            )
            run = TrainingRun(
                built.state, run_folder, ctx, validator=validator, time_limit=time_limit, progress=False,
                log=lambda _: None, plots=False,
            )  # fmt: skip
            result = run.run()
    finally:
        ctx.close()
    assert result.best_value is not None  # validated at least at the last iteration
    test_value = None
    if test:
        given = (splits or {}).get(cfg.eval.split)
        test_value = evaluate_config(cfg, result.learner, dataset=given).mean
    return TrialOutcome(
        result.best_value, result.metric, result.iterations, result.complete, result.seconds, test_value
    )
