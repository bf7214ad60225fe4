"""End to end on a generated ratings file: train_recommender writes RUN (model + report), then
``metadl recommend RATINGS.csv --model RUN`` recommends for a new user."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from metadl.apps.recsys.meta import EpisodeSettings
from metadl.apps.recsys.protocol import ColdStartProtocol, split_users
from metadl.apps.recsys.registry import BASELINES
from metadl.apps.recsys.train import train_recommender
from metadl.data.ratings import read_ratings_csv
from metadl.data.synthetic_ratings import planted_ratings

METADL = Path(sys.executable).with_name("metadl")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("recsys")
    planted = planted_ratings(n_users=80, n_items=40, seed=4)
    lines = ["user,item,rating,timestamp"] + [
        f"{planted.user_ids[u]},{planted.item_ids[i]},{r:g},{t:g}"
        for u, i, r, t in zip(planted.user.tolist(), planted.item.tolist(), planted.rating.tolist(),
                              planted.time.tolist(), strict=True)
    ]  # fmt: skip
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
    ratings = read_ratings_csv(folder / "ratings.csv")
    report = train_recommender(
        ratings, folder / "run", settings=EpisodeSettings(steps=10, meta_batch=4, shots=(5,))
    )
    written = json.loads((folder / "run" / "report.json").read_text())
    assert written == json.loads(json.dumps(report.as_json())) and set(written["baselines"]) == set(BASELINES)
    assert written["users"] == len(split_users(ratings, ColdStartProtocol(), seed=0).test_users)
    return folder / "run"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(METADL), "recommend", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def me(tmp_path) -> Path:
    path = tmp_path / "me.csv"
    path.write_text("item,rating\ni1,5\ni2,1\ni7,4\n")
    return path


def test_json_lists_the_top_unseen_items(model_dir, me):
    done = run(str(me), "--model", str(model_dir), "--top", "5", "--json")
    assert done.returncode == 0, done.stderr
    recs = json.loads(done.stdout)
    assert len(recs) == 5 and not {"i1", "i2", "i7"} & {r["item"] for r in recs}
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True) and all(1 < r["rating"] < 6 for r in recs)


def test_text_output_has_one_line_per_item(model_dir, me):
    done = run(str(me), "--model", str(model_dir / "model"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 10 and lines[0].startswith("1\t") and len(lines[0].split("\t")) == 4


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "label"], "--target is for ranking pipelines on a table; with --model"),
        (["--cv", "3"], "--cv is for ranking pipelines"),
        (["--top", "0"], "--top must be >= 1, got 0"),
    ],
)
def test_mixed_or_bad_options_exit_2_with_one_line(model_dir, me, extra, message):
    done = run(str(me), "--model", str(model_dir), *extra)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_unknown_item_and_missing_model_exit_2(model_dir, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("item,rating\nnot-an-item,4\n")
    done = run(str(bad), "--model", str(model_dir))
    assert done.returncode == 2 and "item 'not-an-item' is not in the catalogue" in done.stderr
    done = run(str(bad), "--model", str(tmp_path / "none"))
    assert done.returncode == 2 and "holds no recommender.json" in done.stderr
