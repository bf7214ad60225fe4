"""``metadl predict`` for regression models: a CSV support table with float targets, one prediction per query row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from metadl.algorithms import create_learner
from metadl.cli import main
from metadl.models import create_backbone
from metadl.saving import load, save_model
from metadl.tasks import SinusoidSampler
from metadl.training import meta_train


def _saved(root: Path, name: str, **kwargs: object) -> Path:
    torch.manual_seed(0)
    spec = {"backbone": {"name": "mlp", "in_features": 1, "hidden": [16]},
            "learner": {"name": name, "out_features": 1, **kwargs}}  # fmt: skip
    learner = create_learner(
        name, backbone=create_backbone("mlp", in_features=1, hidden=[16]), out_features=1, **kwargs
    )
    opt = torch.optim.Adam(learner.parameters(), 1e-3)
    meta_train(
        learner,
        SinusoidSampler(k_shot=5, n_query=5, seed=0),
        opt,
        iterations=30,
        meta_batch=8,
        progress=False,
    )
    return save_model(root / name, learner, spec=spec)


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("regression")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a shared machine
    task = SinusoidSampler(k_shot=5, n_query=4, seed=1).sample()
    support = "x,y\n" + "".join(f"{x:.6f},{y:.6f}\n" for x, y in zip(task.support_x[:, 0].tolist(), task.support_y[:, 0].tolist(), strict=True))  # fmt: skip
    (root / "support.csv").write_text(support)
    (root / "query.csv").write_text("x\n" + "".join(f"{x:.6f}\n" for x in task.query_x[:, 0].tolist()))
    (root / "bad.csv").write_text("x,target\n1,2\n3,4\n")
    models = {"cnp": _saved(root, "cnp", hidden=16), "maml": _saved(root, "maml", inner_lr=0.01)}
    torch.set_num_threads(threads)
    return models | {"support": root / "support.csv", "query": root / "query.csv", "bad": root / "bad.csv"}


def _support_tensors(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    return torch.tensor([[float(r[0])] for r in rows]), torch.tensor([[float(r[1])] for r in rows])


def test_predict_json_gives_a_float_prediction_and_its_uncertainty_per_query_row(tables, capsys):
    code = main(
        [
            "predict",
            str(tables["cnp"]),
            "--support",
            str(tables["support"]),
            "--query",
            str(tables["query"]),
            "--json",
        ]
    )
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["row"] for r in rows] == [1, 2, 3, 4]
    sx, sy = _support_tensors(tables["support"])
    qx = torch.tensor([[float(v)] for v in tables["query"].read_text().splitlines()[1:]])
    predictor = load(tables["cnp"]).adapt(sx, sy)
    for row, mean, var in zip(rows, predictor.predict(qx), predictor.predict_variance(qx), strict=True):
        assert isinstance(row["prediction"], float) and row["prediction"] == pytest.approx(
            mean.item(), rel=1e-5
        )
        assert row["std"] == pytest.approx(var.sqrt().item(), rel=1e-5)
        low, high = row["interval95"]
        assert low < row["prediction"] < high and high - low == pytest.approx(2 * 1.96 * row["std"], rel=1e-3)


def test_a_learner_without_variance_gives_predictions_only_and_the_plain_output_is_tab_separated(
    tables, capsys
):
    assert (
        main(
            [
                "predict",
                str(tables["maml"]),
                "--support",
                str(tables["support"]),
                "--query",
                str(tables["query"]),
                "--json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert all(set(r) == {"row", "prediction"} for r in rows) and len(rows) == 4
    assert (
        main(
            [
                "predict",
                str(tables["maml"]),
                "--support",
                str(tables["support"]),
                "--query",
                str(tables["query"]),
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["1", "2", "3", "4"]
    assert float(lines[0].split("\t")[1]) == pytest.approx(rows[0]["prediction"], abs=1e-6)


def test_a_missing_target_column_exits_2_with_one_line_naming_the_fix(tables, capsys):
    code = main(
        ["predict", str(tables["cnp"]), "--support", str(tables["bad"]), "--query", str(tables["query"])]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "'y'" in err and "--target-column" in err
    assert main(["predict", str(tables["cnp"]), "--support", str(tables["bad"]), "--query", str(tables["query"]),
                 "--target-column", "target"]) == 0  # fmt: skip
