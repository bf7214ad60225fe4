"""``metadl train recsys_movielens100k_coldstart`` end to end through the console script, on generated
MovieLens-100K-format files (u.data, u.user, u.item; never MovieLens itself): train, ``eval --json``
(stable keys, the numbers of report.json), ``recommend`` from the run, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from metadl.apps.recsys.evaluate import METRICS
from metadl.apps.recsys.registry import BASELINES
from metadl.cli import main
from metadl.data.synthetic_ratings import planted_ratings

METADL = Path(sys.executable).with_name("metadl")
CONFIG = "recsys_movielens100k_coldstart"
FLAGS = "0|1|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0"
TINY = ["--set", "train.steps=12", "--set", "train.meta_batch=4", "--set", "train.shots=[5]",
        "--set", "train.validate_every=6", "--no-record", "--no-progress"]  # fmt: skip


def metadl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"OMP_NUM_THREADS": "1", "PATH": str(METADL.parent)}
    return subprocess.run([str(METADL), *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def write_movielens_100k(folder: Path) -> Path:
    """Planted ratings (taste groups, informative item choice) in GroupLens's ML-100K layout."""
    r = planted_ratings(n_users=80, n_items=40, selection=1.0, seed=4)
    folder.mkdir()
    rows = zip(r.user.tolist(), r.item.tolist(), r.rating.tolist(), r.time.tolist(), strict=True)
    (folder / "u.data").write_text(
        "".join(f"{u + 1}\t{i + 1}\t{y:g}\t{880000000 + t:.0f}\n" for u, i, y, t in rows)
    )
    (folder / "u.user").write_text("".join(f"{u + 1}|{20 + u % 40}|{'MF'[u % 2]}|other|{u % 9}0000\n"
                                           for u in range(r.n_users)))  # fmt: skip
    (folder / "u.item").write_text("".join(f"{i + 1}|Film {i}|01-Jan-{1960 + i}||http://x|{FLAGS}\n"
                                           for i in range(r.n_items)))  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_movielens_100k(tmp_path_factory.mktemp("recsys") / "ml-100k")


@pytest.fixture(scope="module")
def run(data) -> Path:
    out = data.parent / "run"
    done = metadl("train", CONFIG, "--set", f"dataset.root={data}", "--out", str(out), *TINY)
    assert done.returncode == 0, done.stderr
    assert f"run folder {out}; model saved to {out / 'model'}" in done.stdout
    return out


def test_train_writes_the_run_folder(run):
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "metrics.csv", "model", "report.json"]
    assert (
        "dataset:" in (run / "config.yaml").read_text() and "app: recsys" in (run / "config.yaml").read_text()
    )
    curve = (run / "metrics.csv").read_text().splitlines()
    assert curve[0] == "step,validation_mae,validation_implicit"  # each head early-stopped on its own
    assert [line.split(",")[0] for line in curve[1:]] == ["6", "12"]


def test_eval_json_has_stable_keys_and_reproduces_the_report(run):
    done = metadl("eval", str(run), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"model", "baselines", "vs_best_baseline", "users"}
    assert set(report["model"]) == set(METRICS) and set(report["baselines"]) == set(BASELINES)
    for estimates in [report["model"], *report["baselines"].values()]:
        assert all(set(e) == {"mean", "ci95", "n"} for e in estimates.values())
    assert report["baselines"]["popularity"]["mae"]["mean"] is None  # popularity predicts no rating
    assert set(report["vs_best_baseline"]["mae"]) == {"baseline", "mean", "ci95", "n", "better"}
    written = json.loads((run / "report.json").read_text())
    assert report["users"] == written["users"] == 8
    for name in ("mae", "rmse", "ndcg@10_full"):  # the saved model scores as the trained one did
        assert math.isclose(report["model"][name]["mean"], written["model"][name]["mean"], abs_tol=1e-6)
    assert report["baselines"] == written["baselines"]


def test_eval_of_the_model_folder_prints_a_table(run):
    done = metadl("eval", str(run / "model"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "8 test users; mean ± 95% CI" and lines[2].startswith("model ")
    assert any(line.startswith("user_item_bias ") for line in lines)
    assert any(line.startswith("model - ") and " on mae: " in line for line in lines)


def test_recommend_from_the_run(run, tmp_path):
    me = tmp_path / "me.csv"
    me.write_text("item,rating\n1,5\n2,1\n7,4\n")
    done = metadl("recommend", str(me), "--model", str(run), "--top", "5", "--json")
    assert done.returncode == 0, done.stderr
    recs = json.loads(done.stdout)
    assert len(recs) == 5 and not {"1", "2", "7"} & {r["item"] for r in recs}


def test_time_limit_ends_meta_training_early_with_a_saved_model(data, tmp_path):
    out = tmp_path / "limited"
    args = ["train", CONFIG, "--set", f"dataset.root={data}", "--out", str(out), *TINY]
    done = metadl(*args, "--set", "train.steps=1000000", "--time-limit", "1s")
    assert done.returncode == 0, done.stderr
    metadata = json.loads((out / "model" / "recommender.json").read_text())["metadata"]
    assert 1 <= metadata["steps_done"] < 1000000 and (out / "report.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "model.width=3"], "model: unknown keys ['width']; allowed: ['dim'"),
        (["--set", "protocol.query_order=first"], "query_order='first'; use 'random' or 'last'"),
        (["--set", "train.steps=1.5"], "train.steps = 1.5; expected int"),
        (["--set", "dataset.format=parquet"], "dataset.format='parquet'; choose one of ['auto'"),
        (["--set", "dataset.root=."], "holds none of ml-100k.inter (RecBole), u.data (ML-100K)"),
    ],
)
def test_bad_config_values_exit_2_with_one_line(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", CONFIG, *args, "--out", str(tmp_path / "run"), "--no-record"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_bad_dataset_root_exits_2_with_one_line_through_the_console_script(tmp_path):
    done = metadl("train", CONFIG, "--set", "dataset.root=/no/such/folder", "--out", str(tmp_path / "run"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "dataset.root=/no/such/folder does not exist; --set dataset.root=FOLDER" in done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--resume", "RUN"], "a recommendation run cannot be resumed"),
        (["train", "--resume", "RUN", "--set", "train.steps=3"], "--set changes a config; a resumed run"),
        (["eval", "RUN", "--shots", "5"], "--shots does not apply to a recommendation run"),
        (
            ["eval", "RUN", "--set", "protocol.split_seed=1"],
            "only dataset.* (where its data is now) can change",
        ),
    ],
)
def test_resume_and_eval_flags_are_refused_in_one_line(run, argv, message, capsys):
    assert main([str(run) if a == "RUN" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_eval_against_other_data_is_refused(run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "ratings.csv").write_text(
        "user,item,rating\n" + "".join(f"u{u},i{i},3\n" for u in range(20) for i in range(14))
    )
    done = metadl("eval", str(run), "--set", f"dataset.root={other / 'ratings.csv'}")
    assert done.returncode == 2 and "holds 14 items, not the 40" in done.stderr
