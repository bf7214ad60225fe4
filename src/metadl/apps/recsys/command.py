"""The recommendation path of ``metadl recommend``: ``metadl recommend RATINGS.csv --model MODEL [--top N] [--json]``.

``RATINGS.csv`` holds a new user's ``item,rating`` rows; ``MODEL`` is a saved recommender (or a run
folder holding one in ``model/``). Prints the ``N`` best-ranked items the user has not rated: rank,
item id, ranking score and predicted rating, tab-separated, or a JSON list with ``--json``.
``metadl.automl.command`` parses the arguments and dispatches here when ``--model`` is given.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from metadl.apps.recsys.recommend import Recommendation, new_user_task, read_user_ratings, top_n
from metadl.apps.recsys.saved import load_recommender

DEFAULT_TOP = 10


def recommend_for_user(
    ratings_csv: str | Path, model: str | Path, *, top: int = DEFAULT_TOP
) -> list[Recommendation]:
    """The ``top`` items a saved recommender ranks first for the user whose ratings are in ``ratings_csv``."""
    if top < 1:
        raise ValueError(f"--top must be >= 1, got {top}")
    saved = load_recommender(model)
    pairs = read_user_ratings(ratings_csv)
    task = new_user_task(saved.item_ids, pairs, user=0)  # the two-head model ignores the user index
    return top_n(saved.recommender, task, saved.item_ids, n=top)


def print_recommendations(recs: list[Recommendation], *, as_json: bool) -> None:
    """A JSON list, or one tab-separated line per item: rank, item, score, predicted rating."""
    if as_json:
        print(json.dumps([r.as_json() for r in recs], indent=2))
        return
    out = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
    for rank, r in enumerate(recs, 1):
        out.writerow([rank, r.item, f"{r.score:.4f}", "" if r.rating is None else f"{r.rating:.2f}"])
