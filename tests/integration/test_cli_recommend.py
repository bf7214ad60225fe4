"""``metadl recommend`` end to end through the console script, on a CSV with categorical and missing values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from metadl.automl.portfolio import list_pipelines

METADL = Path(sys.executable).with_name("metadl")


@pytest.fixture
def csv_file(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    lines = ["age,colour,income,city,label"]
    for i in range(150):
        age = rng.normal(40, 10)
        colour = ["red", "green", "blue"][i % 3]
        income = "" if i % 11 == 0 else f"{rng.normal(50, 15):.1f}"  # missing values
        city = "?" if i % 13 == 0 else f"c{rng.integers(0, 15)}"  # many levels, some missing
        label = "yes" if age + (colour == "red") * 10 > 45 else "no"
        lines.append(f"{age:.1f},{colour},{income},{city},{label}")
    path = tmp_path / "customers.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(METADL), "recommend", *args], capture_output=True, text=True, timeout=300)


def test_recommend_json_with_cv(csv_file):
    done = run(str(csv_file), "--target", "label", "--top", "2", "--cv", "3", "--json")
    assert done.returncode == 0, done.stderr
    recs = json.loads(done.stdout)
    assert len(recs) == 2 and all(r["pipeline"] in list_pipelines() for r in recs)
    assert recs[0]["predicted_score"] >= recs[1]["predicted_score"]
    assert all(0.5 < r["cv_score"] <= 1.0 for r in recs)  # the label is learnable from age and colour
    assert len(recs[0]["why"]["nearest_datasets"]) == 3 and recs[0]["why"]["important_metafeatures"]


def test_recommend_text_output(csv_file):
    done = run(str(csv_file), "--target", "label", "--top", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1. ") and "nearest datasets:" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "nope"], "target column 'nope' is not among"),
        ([], "--target COLUMN"),
        (["--target", "label", "--top", "0"], "top=0"),
    ],
)
def test_bad_input_exits_2_with_one_line(csv_file, args, message):
    done = run(str(csv_file), *args)
    assert done.returncode == 2 and message in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
