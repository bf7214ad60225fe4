"""ONNX export of adapted predictors: parity with onnxruntime for every head, metadata, and refusals."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")

from metadl.algorithms import LEARNERS, create_learner, list_learners  # noqa: E402
from metadl.export import OnnxExportError, check_parity, export_onnx, run_onnx  # noqa: E402
from metadl.models import create_backbone  # noqa: E402

FEATURES = 4
NOT_TRACEABLE = {"randomforest"}  # a scikit-learn head: no PyTorch code to trace
# An export takes 2-10 s on a busy 2-core machine: by default prototypes and MAML-adapted weights
# (classification) and a neural process (regression) run; every other head runs with -m slow
# (make test-all), as does the refusal of the random forest (a failing torch.export is slow).
FAST = {"protonet", "maml", "cnp"}


def heads(names: list[str]) -> list[object]:
    return [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in names]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _support(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = 2 * torch.randn(3, 1, FEATURES, generator=g)
    sx = (centres + 0.5 * torch.randn(3, 2, FEATURES, generator=g)).flatten(0, 1)
    qx = (centres + 0.5 * torch.randn(3, 4, FEATURES, generator=g)).flatten(0, 1)
    return sx, torch.tensor([40, 40, 7, 7, 12, 12]), qx


@pytest.mark.parametrize(
    "name",
    heads([n for n in list_learners() if n not in NOT_TRACEABLE | {"cnp"}])
    + [pytest.param("cnp", marks=pytest.mark.slow)],
)
def test_every_head_matches_onnxruntime_on_a_batch_of_another_size(name, tmp_path):
    torch.manual_seed(0)
    backbone = create_backbone("mlp", in_features=FEATURES, hidden=[8], batch_norm=True)
    learner = create_learner(name, backbone=backbone, n_way=3).eval()
    sx, sy, qx = _support()
    predictor = learner.adapt(sx, sy)
    exported = export_onnx(predictor, sx, tmp_path / "m.onnx", learner_name=name)
    assert exported.outputs == ["scores", "probabilities"] and exported.classes == ["7", "12", "40"]
    outputs = run_onnx(exported.path, qx)
    torch.testing.assert_close(outputs["probabilities"], predictor.predict_proba(qx), atol=1e-4, rtol=0)
    labels = torch.tensor([int(c) for c in exported.classes])[outputs["scores"].argmax(-1)]
    assert torch.equal(labels, predictor.predict(qx))
    assert check_parity(exported.path, predictor, qx[:5]) <= 1e-4


@pytest.mark.parametrize("name", heads([n for n in list_learners() if LEARNERS[n].capabilities.regression]))
def test_regression_heads_export_their_prediction_and_variance(name, tmp_path):
    torch.manual_seed(0)
    learner = create_learner(
        name, backbone=create_backbone("mlp", in_features=1, hidden=[16]), out_features=1
    ).eval()
    x = torch.linspace(-3, 3, 12).view(12, 1)
    predictor = learner.adapt(x[::2], x[::2].sin())
    exported = export_onnx(predictor, x[::2], tmp_path / "r.onnx", learner_name=name)
    outputs = run_onnx(exported.path, x[1::2])
    torch.testing.assert_close(outputs["prediction"], predictor.predict(x[1::2]), atol=1e-4, rtol=0)
    assert ("variance" in outputs) == learner.capabilities.uncertainty
    if learner.capabilities.uncertainty:
        torch.testing.assert_close(
            outputs["variance"], predictor.predict_variance(x[1::2]), atol=1e-4, rtol=0
        )


def test_a_conv4_prototype_classifier_on_images(tmp_path):
    torch.manual_seed(0)
    learner = create_learner(
        "protonet", backbone=create_backbone("conv4", in_channels=1, hidden=8), n_way=2
    ).eval()
    g = torch.Generator().manual_seed(0)
    sx, qx = torch.rand(4, 1, 28, 28, generator=g), torch.rand(3, 1, 28, 28, generator=g)
    predictor = learner.adapt(sx, torch.tensor([0, 0, 1, 1]))
    exported = export_onnx(predictor, sx, tmp_path / "c.onnx", class_names=["cat", "dog"])
    assert exported.classes == ["cat", "dog"]
    meta = {p.key: p.value for p in onnx.load(exported.path).metadata_props}
    assert json.loads(meta["classes"]) == ["cat", "dog"]
    assert check_parity(exported.path, predictor, qx) <= 1e-4


@pytest.mark.slow
def test_a_scikit_learn_head_is_refused_in_one_line(tmp_path):
    learner = create_learner(
        "randomforest", backbone=create_backbone("mlp", in_features=FEATURES, hidden=[8]), n_way=3
    )
    sx, sy, _ = _support()
    with pytest.raises(OnnxExportError, match="cannot export randomforest") as err:
        export_onnx(learner.eval().adapt(sx, sy), sx, tmp_path / "f.onnx", learner_name="randomforest")
    assert "\n" not in str(err.value) and "\x1b" not in str(err.value)
    assert not (tmp_path / "f.onnx").exists()


def test_parity_check_fails_when_the_file_computes_something_else(tmp_path):
    torch.manual_seed(0)
    learner = create_learner(
        "protonet", backbone=create_backbone("mlp", in_features=FEATURES, hidden=[8]), n_way=3
    )
    sx, sy, qx = _support()
    exported = export_onnx(learner.eval().adapt(sx, sy), sx, tmp_path / "m.onnx")
    other = learner.adapt(sx, torch.tensor([7, 7, 12, 12, 40, 40]))  # prototypes of other classes
    with pytest.raises(OnnxExportError, match="differs from metadl"):
        check_parity(exported.path, other, qx)
