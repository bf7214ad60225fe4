"""Screening for the two-head model's MAE on VALIDATION users only (never test users).

    python benchmarks/recsys_mae_screen.py --recbole /tmp/ml100k --name ml-100k --splits 0:random 1:random 2:random 0:last 1:last

Per split (``SEED:QUERY_ORDER``): meta-trains ``twohead`` with the benchmark's schedule, then prints the
validation users' MAE of ``user_item_bias``, ``mf`` and ``twohead`` with 0 / 1 / 3 inner steps at test
time, of blends ``ubias + a (twohead - ubias) + b (mf - ubias)``, and of each model's predictions pulled a
fraction ``s`` of the way to the nearest whole rating (the median of a rating distribution on 1..5 is a
whole number, so this is a decision rule for MAE that any rating predictor can use).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from metadl.apps.recsys.baselines import Recommender
from metadl.apps.recsys.meta import EpisodeSettings, TwoHeadMetaRecommender
from metadl.apps.recsys.protocol import ColdStartProtocol, split_users
from metadl.apps.recsys.registry import create_recommender
from metadl.data.movielens import read_recbole_atomic
from metadl.tasks.source import NamedTask

PULLS = (0.0, 0.5, 1.0)
BLENDS = ((0.5, 0.0), (0.75, 0.0), (1.0, 0.0), (0.5, 0.25), (0.75, 0.25), (1.0, 0.25))


def predictions(rec: Recommender, tasks: list[NamedTask]) -> list[np.ndarray]:
    """Each validation user's predicted query ratings."""
    return [rec.scores(t)[t.query_x[:, 1]].numpy() for t in tasks]


def mae(truth: list[np.ndarray], predicted: list[np.ndarray]) -> float:
    """The mean over users of each user's MAE."""
    return float(np.mean([np.abs(p - y).mean() for p, y in zip(predicted, truth, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recbole", type=Path, required=True)
    parser.add_argument("--name", default="ml-100k")
    parser.add_argument("--splits", nargs="+", default=["0:random"], help="SEED:random|last")
    parser.add_argument("--select", choices=["heads", "loss"], default="heads")
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ratings = read_recbole_atomic(args.recbole, args.name)
    for item in args.splits:
        seed, order = int(item.split(":")[0]), item.split(":")[1]
        split = split_users(ratings, ColdStartProtocol(query_order=order), seed=seed)
        val = split.tasks("val")
        ys = [t.query_y[:, 0].numpy() for t in val]
        twohead = TwoHeadMetaRecommender(
            EpisodeSettings(steps=args.steps, lr=3e-3, seed=seed), select=args.select
        )
        twohead.fit(split)
        ubias, mf = create_recommender("user_item_bias"), create_recommender("mf")
        ubias.fit(split)
        mf.fit(split)
        found = {"user_item_bias": predictions(ubias, val), "mf": predictions(mf, val)}
        assert twohead.learner is not None
        for k in (0, 1, 3):
            twohead.learner.eval_inner_steps = k
            found[f"twohead (eval steps {k})"] = predictions(twohead, val)
        twohead.learner.eval_inner_steps = 3
        print(
            f"\nsplit {item} ({len(val)} validation users), select {args.select}: MAE with pull s = {PULLS}"
        )
        for name, p in found.items():
            pulled = [mae(ys, [x + s * (np.clip(np.round(x), 1, 5) - x) for x in p]) for s in PULLS]
            print(f"  {name:26s} " + "  ".join(f"{v:.4f}" for v in pulled))
        u, t, f = found["user_item_bias"], found["twohead (eval steps 3)"], found["mf"]
        for a, b in BLENDS:
            blend = mae(ys, [x + a * (y - x) + b * (z - x) for x, y, z in zip(u, t, f, strict=True)])
            print(f"  blend a={a} b={b}: {blend:.4f}")


if __name__ == "__main__":
    main()
