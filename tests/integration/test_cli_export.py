"""``metadl export``: a saved model adapted to a CSV support table, written as ONNX, run in onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from metadl.algorithms import create_learner  # noqa: E402
from metadl.cli import main  # noqa: E402
from metadl.export import run_onnx  # noqa: E402
from metadl.models import create_backbone  # noqa: E402
from metadl.saving import save_model  # noqa: E402


def _save(root: Path, name: str, head: dict[str, int]) -> Path:
    torch.manual_seed(0)
    spec = {"backbone": {"name": "mlp", "in_features": 2, "hidden": [8]}, "learner": {"name": name, **head}}
    learner = create_learner(name, backbone=create_backbone("mlp", in_features=2, hidden=[8]), **head)
    return save_model(root / name, learner, spec=spec)


def test_a_regression_model_exports_what_predict_predicts(tmp_path, capsys):
    model = _save(tmp_path, "cnp", {"out_features": 1})
    (tmp_path / "s.csv").write_text("a,b,y\n0,1,0.5\n1,0,1.5\n2,2,3.0\n")
    (tmp_path / "q.csv").write_text("a,b\n0.5,0.5\n3,1\n")
    assert (
        main(["export", str(model), "--support", str(tmp_path / "s.csv"), "--out", str(tmp_path / "m.onnx")])
        == 0
    )
    assert "parity checked" in capsys.readouterr().out
    assert (
        main(
            [
                "predict",
                str(model),
                "--support",
                str(tmp_path / "s.csv"),
                "--query",
                str(tmp_path / "q.csv"),
                "--json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    outputs = run_onnx(tmp_path / "m.onnx", torch.tensor([[0.5, 0.5], [3.0, 1.0]]))
    assert outputs["prediction"].flatten().tolist() == pytest.approx(
        [r["prediction"] for r in rows], abs=1e-4
    )
    assert outputs["variance"].sqrt().flatten().tolist() == pytest.approx([r["std"] for r in rows], abs=1e-4)


def test_a_classifier_exports_with_its_class_names(tmp_path, capsys):
    model = _save(tmp_path, "protonet", {"n_way": 2})
    (tmp_path / "s.csv").write_text("a,b,label\n0,1,cat\n0,2,cat\n5,5,dog\n6,5,dog\n")
    assert (
        main(["export", str(model), "--support", str(tmp_path / "s.csv"), "--out", str(tmp_path / "c.onnx")])
        == 0
    )
    assert "['cat', 'dog']" in capsys.readouterr().out
    scores = run_onnx(tmp_path / "c.onnx", torch.tensor([[0.0, 1.5], [5.5, 5.0]]))["scores"]
    assert scores.argmax(-1).tolist() == [0, 1]


def test_bad_support_exits_2_with_one_line(tmp_path, capsys):
    model = _save(tmp_path, "protonet", {"n_way": 2})
    (tmp_path / "s.csv").write_text("a,b,kind\n0,1,cat\n5,5,dog\n")
    code = main(
        ["export", str(model), "--support", str(tmp_path / "s.csv"), "--out", str(tmp_path / "c.onnx")]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "'label'" in err
    assert not (tmp_path / "c.onnx").exists()


def test_a_random_forest_model_exports_backbone_and_forest(tmp_path, capsys):
    model = _save(tmp_path, "randomforest", {"n_way": 2, "n_estimators": 10})
    (tmp_path / "s.csv").write_text("a,b,label\n0,1,cat\n0,2,cat\n5,5,dog\n6,5,dog\n")
    assert (
        main(["export", str(model), "--support", str(tmp_path / "s.csv"), "--out", str(tmp_path / "f.onnx")])
        == 0
    )
    assert "parity checked" in capsys.readouterr().out
    outputs = run_onnx(tmp_path / "f.onnx", torch.tensor([[0.0, 1.5], [5.5, 5.0]]))
    assert outputs["probabilities"].argmax(-1).tolist() == [0, 1]
    assert outputs["probabilities"].sum(-1).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
