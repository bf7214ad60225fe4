"""Meta-train the two-head recommender on one cold-start split, save it, and score it beside every baseline.

:func:`train_recommender` is the whole recipe behind ``metadl recommend RATINGS.csv --model RUN``: split
the users (:func:`~metadl.apps.recsys.protocol.split_users`), meta-train on the meta-train users with the
benchmark's settings (validation users choose the weights and ``beta``), save the recommender to
``RUN/model`` and the report of :func:`~metadl.apps.recsys.report.evaluate_against_baselines` on the test
users to ``RUN/report.json``.

Example:
    >>> import tempfile, pathlib
    >>> from metadl.data.synthetic_ratings import planted_ratings
    >>> run = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> report = train_recommender(planted_ratings(n_users=60, n_items=40, seed=0), run,
    ...                            settings=EpisodeSettings(steps=5, meta_batch=4, shots=(5,)))
    >>> sorted(p.name for p in run.iterdir()), sorted(report.as_json()["model"])[:2]
    (['model', 'report.json'], ['mae', 'ndcg@10_full'])
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from metadl.apps.recsys.meta import EpisodeSettings, TwoHeadMetaRecommender
from metadl.apps.recsys.protocol import ColdStartProtocol, split_users
from metadl.apps.recsys.report import ColdStartReport, evaluate_against_baselines
from metadl.apps.recsys.saved import save_recommender
from metadl.data.ratings import Ratings
from metadl.fileio import atomic_write_bytes

# The schedule of benchmarks/recsys_coldstart.py (chosen on split 0's validation users of ML-100K).
TWOHEAD_EPISODES = EpisodeSettings(steps=3000, lr=3e-3)
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
                "beta": model.beta, "validation_ndcg@10_full": {str(b): v for b, v in model.validation_ndcg.items()}}  # fmt: skip
    save_recommender(
        folder / "model", model.learner, beta=model.beta, item_ids=ratings.item_ids, metadata=metadata
    )
    report = evaluate_against_baselines(model, split)
    atomic_write_bytes(folder / "report.json", (json.dumps(report.as_json(), indent=2) + "\n").encode())
    return report
