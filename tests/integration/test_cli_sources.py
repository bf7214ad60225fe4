"""Shipped configs on task sources, end to end: ``metadl train NAME --set ...``, ``metadl eval``, ``metadl predict``.

The fertility run is the real family (countries from the statsmodels wheel; skipped without it), trained
for a few iterations; eval's NLL and coverage are recomputed here from the saved learner on the test
countries the split and seed derivation promise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metadl.cli import main
from metadl.evaluation.regression import learner_regressor, score_regressor
from metadl.tasks import create_task_source
from metadl.training.build import derive_seed
from metadl.training.trainer import load_trained

pytestmark = pytest.mark.usefixtures("one_thread_per_module")
SMALL = ["train.iterations=6", "train.val_every=3", "train.checkpoint_every=3", "train.val_episodes=4",
         "sampler.meta_batch=4", "device=cpu"]  # fmt: skip


def _train(config: str, out: Path, *extra: str) -> Path:
    sets = [arg for item in (*SMALL, *extra) for arg in ("--set", item)]
    assert main(["train", config, *sets, "--out", str(out), "--no-progress"]) == 0
    return out


def _tables(root: Path, xs: list[float], ys: list[float], query: list[float]) -> tuple[Path, Path]:
    (root / "support.csv").write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in zip(xs, ys, strict=True)))
    (root / "query.csv").write_text("x\n" + "".join(f"{x}\n" for x in query))
    return root / "support.csv", root / "query.csv"


@pytest.fixture(scope="module")
def fertility_run(tmp_path_factory) -> Path:
    pytest.importorskip("statsmodels")
    root = tmp_path_factory.mktemp("fertility")
    return _train(
        "anp_fertility", root / "run", "learner.hidden=16", "learner.latent_dim=8", "learner.heads=2"
    )


def test_eval_of_a_neural_process_reports_mse_nll_and_coverage_over_test_countries(fertility_run, capsys):
    assert main(["eval", str(fertility_run), "--episodes", "12", "--json", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["dataset"], out["split"], out["metric"], out["episodes"]) == ("fertility", "test", "mse", 12)
    for key in ("mse", "nll", "coverage95"):
        assert set(out[key]) == {"mean", "ci95"}
    assert out["mean"] == out["mse"]["mean"] and out["ci95"] == out["mse"]["ci95"]
    assert set(out["baselines"]) == {"ridge", "gp"}
    assert set(out["baselines"]["gp"]) == {"mse", "nll", "coverage95", "margin_mse"}
    # The same figures, recomputed: the test countries, K=5 and 20 query years, seeded by (eval.seed, "test").
    source = create_task_source("fertility", split="test", k_shot=5, n_query=20, seed=derive_seed(0, "test"))
    tasks = [source.sample() for _ in range(12)]
    _, learner, _ = load_trained(fertility_run)
    scores = score_regressor(learner_regressor(learner), tasks)
    assert out["groups"] == len(scores.per_group) == len({t.name for t in tasks})
    assert out["nll"]["mean"] == pytest.approx(scores.nll.mean, rel=1e-5)
    assert out["coverage95"]["mean"] == pytest.approx(scores.coverage.mean, rel=1e-6)
    margin = out["baselines"]["ridge"]["mse"]["mean"] - out["mse"]["mean"]
    assert out["baselines"]["ridge"]["margin_mse"]["mean"] == pytest.approx(margin, rel=1e-5, abs=1e-9)
    assert main(["eval", str(fertility_run), "--episodes", "4", "--no-baselines", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "NLL" in text and "95% coverage" in text and "per-task" not in text


def test_predict_with_a_model_trained_on_countries(fertility_run, tmp_path, capsys):
    support, query = _tables(tmp_path, [0.0, 0.5, 1.0, 1.5, 2.0], [6.1, 5.9, 5.2, 4.4, 3.6], [2.5, 3.0, 4.0])
    code = main(
        ["predict", str(fertility_run / "model"), "--support", str(support), "--query", str(query), "--json"]
    )
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["row"] for r in rows] == [1, 2, 3]
    for r in rows:
        low, high = r["interval95"]
        assert isinstance(r["prediction"], float) and r["std"] > 0 and low < r["prediction"] < high


def test_maml_on_step_functions_trains_evaluates_and_predicts(tmp_path, capsys):
    run = _train("maml_step_functions", tmp_path / "run", "eval.episodes=8")
    capsys.readouterr()  # the training log
    assert main(["eval", str(run), "--json", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["dataset"], out["metric"], out["episodes"], out["shots"]) == ("step_functions", "mse", 8, 10)
    assert "nll" not in out  # MAML predicts no variance: MSE only
    support, query = _tables(tmp_path, [-4.0, -2.0, 0.0, 2.0, 4.0], [1.0, 1.0, -1.0, -1.0, -1.0], [-3.0, 3.0])
    assert (
        main(["predict", str(run / "model"), "--support", str(support), "--query", str(query), "--json"]) == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [r["row"] for r in rows] == [1, 2] and all("std" not in r for r in rows)


def test_bad_source_settings_fail_in_one_line(tmp_path, capsys):
    code = main(["train", "maml_step_functions", "--set", "dataset.max_step=2", "--out", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "unknown key 'dataset.max_step' (did you mean 'max_steps'?)" in err and "\n" not in err
