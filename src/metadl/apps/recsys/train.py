"""Meta-train the two-head recommender on one cold-start split, save it, and score it beside every baseline.

:func:`train_recommender` is the whole recipe behind ``metadl recommend RATINGS.csv --model RUN``: split
the users (:func:`~metadl.apps.recsys.protocol.split_users`), meta-train on the meta-train users with the
benchmark's settings (validation users choose the weights and ``beta``), save the recommender to
``RUN/model``, the validation curve to ``RUN/metrics.csv`` and the report of
:func:`~metadl.apps.recsys.report.evaluate_against_baselines` on the test users to ``RUN/report.json``.

:func:`train_run` is ``metadl train`` on a recommendation config (:mod:`metadl.apps.recsys.config`): the
same recipe into a new run folder that also holds ``config.yaml`` (the config as run), and
:func:`evaluate_run` is ``metadl eval RUN``: it reads the data again, rebuilds the run's split, loads the
saved model and scores it beside every baseline on the same test users (``report.json``'s numbers).

Example:
    >>> import tempfile, pathlib
    >>> from metadl.data.synthetic_ratings import planted_ratings
    >>> run = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> report = train_recommender(planted_ratings(n_users=60, n_items=40, seed=0), run,
    ...                            settings=EpisodeSettings(steps=5, meta_batch=4, shots=(5,)))
    >>> sorted(p.name for p in run.iterdir()), sorted(report.as_json()["model"])[:2]
    (['metrics.csv', 'model', 'report.json'], ['mae', 'ndcg@10_full'])
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import yaml

from metadl.apps.recsys.config import RecsysConfig, load_recsys_config, read_dataset
from metadl.apps.recsys.meta import EpisodeSettings, TwoHeadMetaRecommender
from metadl.apps.recsys.protocol import ColdStartProtocol, split_users
from metadl.apps.recsys.report import ColdStartReport, evaluate_against_baselines
from metadl.apps.recsys.saved import load_recommender, save_recommender
from metadl.config import ConfigError
from metadl.data.ratings import Ratings
from metadl.fileio import atomic_write_bytes

# The schedule of benchmarks/recsys_coldstart.py (chosen on split 0's validation users of ML-100K).
TWOHEAD_EPISODES = EpisodeSettings(steps=3000, lr=3e-3)
CONFIG_FILE, METRICS_FILE, REPORT_FILE = "config.yaml", "metrics.csv", "report.json"
DEFAULT_PROTOCOL = ColdStartProtocol()


def train_recommender(
    ratings: Ratings,
    run: str | os.PathLike[str],
    *,
    protocol: ColdStartProtocol = DEFAULT_PROTOCOL,
    seed: int = 0,
    settings: EpisodeSettings = TWOHEAD_EPISODES,
    **kwargs: Any,
) -> ColdStartReport:
    """Meta-train on split ``seed`` of ``ratings``, save to ``run/model``, report on its test users.

    ``kwargs`` are :class:`~metadl.apps.recsys.twohead.TwoHeadRecommender`'s hyperparameters.
    """
    split = split_users(ratings, protocol, seed=seed)
    model = TwoHeadMetaRecommender(settings, **kwargs)
    model.fit(split)
    assert model.learner is not None  # fit sets it
    folder = Path(run)
    metadata = {"protocol": asdict(protocol), "split_seed": seed, "episodes": asdict(settings),
                "steps_done": model.meta.steps_done, "beta": model.beta,
                "validation_ndcg@10_full": {str(b): v for b, v in model.validation_ndcg.items()}}  # fmt: skip
    save_recommender(
        folder / "model", model.learner, beta=model.beta, item_ids=ratings.item_ids, metadata=metadata
    )
    names = list(model.meta.history[0][1])
    curve = ",".join(["step", *(f"validation_{n}" for n in names)]) + "\n"
    curve += "".join(
        f"{step}," + ",".join(f"{v[n]:.6f}" for n in names) + "\n" for step, v in model.meta.history
    )
    atomic_write_bytes(folder / METRICS_FILE, curve.encode())
    report = evaluate_against_baselines(model, split)
    atomic_write_bytes(folder / REPORT_FILE, (json.dumps(report.as_json(), indent=2) + "\n").encode())
    return report


def train_run(
    cfg: RecsysConfig, run: str | os.PathLike[str], *, time_limit: float | None = None
) -> ColdStartReport:
    """``metadl train`` on a recommendation config: a new run folder ``run`` (it must not hold files).

    ``time_limit`` (seconds) ends meta-training early with the best weights so far; the run is then
    complete (saved and reported): a recommendation run cannot be resumed.
    """
    folder = Path(run)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"run folder {folder} exists and is not empty; give a new --out folder")
    ratings = read_dataset(cfg.dataset)  # a bad dataset.root fails before the run folder is made
    settings = cfg.train if time_limit is None else replace(cfg.train, time_limit=time_limit)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / CONFIG_FILE, yaml.safe_dump(cfg.raw, sort_keys=False).encode())
    return train_recommender(
        ratings, folder, protocol=cfg.protocol, seed=cfg.split_seed, settings=settings, **asdict(cfg.model)
    )


def evaluate_run(run: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = ()) -> ColdStartReport:
    """``metadl eval RUN``: the run's saved model beside every baseline on its split's test users.

    ``overrides`` may change ``dataset.*`` only (where the same data lies now), never the protocol.
    """
    folder = Path(run)
    folder = folder.parent if folder.name == "model" and not (folder / CONFIG_FILE).is_file() else folder
    bad = [o for o in overrides if not o.startswith("dataset.")]
    if bad:
        raise ConfigError(f"--set {bad[0]}: a recommendation run is evaluated on the split it was trained "
                          "with; only dataset.* (where its data is now) can change")  # fmt: skip
    cfg = load_recsys_config(folder / CONFIG_FILE, overrides)
    ratings = read_dataset(cfg.dataset)
    saved = load_recommender(folder)
    if saved.item_ids != ratings.item_ids:
        raise ConfigError(f"dataset.root={cfg.dataset.root} holds {ratings.n_items} items, not the "
                          f"{len(saved.item_ids)} the run {folder} was trained on; point it at the same data")  # fmt: skip
    return evaluate_against_baselines(
        saved.recommender, split_users(ratings, cfg.protocol, seed=cfg.split_seed)
    )
