"""ONNX export of adapted predictors: parity with onnxruntime for every head, metadata, and refusals."""

from __future__ import annotations

import json
import math

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("skl2onnx")
onnx = pytest.importorskip("onnx")

from metadl.algorithms import LEARNERS, create_learner, list_learners  # noqa: E402
from metadl.algorithms.base import Predictor  # noqa: E402
from metadl.algorithms.randomforest import ForestPredictor, RandomForestHead  # noqa: E402
from metadl.export import OnnxExportError, check_parity, export_onnx, run_onnx  # noqa: E402
from metadl.models import create_backbone  # noqa: E402

FEATURES = 4
# An export takes 2-10 s on a busy 2-core machine: by default prototypes and MAML-adapted weights
# (classification), a neural process (regression) and the random forest (below) run; every other head
# runs with -m slow (make test-all), as does the refusal of untraceable code (a failing torch.export is slow).
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
    heads([n for n in list_learners() if n != "cnp"]) + [pytest.param("cnp", marks=pytest.mark.slow)],
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


def _forest_learner() -> RandomForestHead:
    torch.manual_seed(0)
    backbone = create_backbone("mlp", in_features=FEATURES, hidden=[8], batch_norm=True)
    return RandomForestHead(backbone=backbone, n_way=3, n_estimators=25).eval()


def test_the_random_forest_exports_its_backbone_and_its_scikit_learn_forest(tmp_path):
    learner = _forest_learner()
    sx, sy, qx = _support()
    predictor = learner.adapt(sx, sy)
    exported = export_onnx(predictor, sx, tmp_path / "f.onnx", learner_name="randomforest")
    assert exported.classes == ["7", "12", "40"]
    ops = {node.op_type for node in onnx.load(exported.path).graph.node}
    assert {"TreeEnsembleClassifier", "Gemm"} <= ops  # the forest and the MLP
    outputs = run_onnx(exported.path, qx)
    torch.testing.assert_close(outputs["probabilities"], predictor.predict_proba(qx), atol=1e-4, rtol=0)
    torch.testing.assert_close(outputs["scores"], predictor.decision_function(qx), atol=1e-4, rtol=0)
    assert torch.equal(sy.unique()[outputs["scores"].argmax(-1)], predictor.predict(qx))
    assert outputs["probabilities"].unique().numel() > 3  # not all the same answer: the forest decides
    assert check_parity(exported.path, predictor, sx) <= 1e-4


def test_classes_the_forest_never_saw_get_probability_zero_as_in_score_head(tmp_path):
    learner = _forest_learner()
    sx, _, qx = _support()
    z = learner.backbone(sx).unsqueeze(0)
    forests = learner.fit_head(z, torch.tensor([[0, 0, 2, 2, 2, 2]]), 3)  # class 1 is absent
    predictor = ForestPredictor(
        lambda x: learner.score_head(forests, learner.backbone(x).unsqueeze(0))[0],
        torch.tensor([5, 6, 7]),
        backbone=learner.backbone,
        forest=forests[0],
    )
    exported = export_onnx(predictor, sx, tmp_path / "f.onnx")
    scores = run_onnx(exported.path, qx)["scores"]
    assert scores.shape == (len(qx), 3)
    torch.testing.assert_close(scores[:, 1], torch.full((len(qx),), math.log(1e-6)), atol=1e-5, rtol=0)
    assert check_parity(exported.path, predictor, qx) <= 1e-4


@pytest.mark.slow
def test_a_head_torch_export_cannot_trace_is_refused_in_one_line(tmp_path):
    sx, sy, _ = _support()
    branchy = Predictor(lambda x: x[:, :3] if bool(x.sum() > 0) else -x[:, :3], sy.unique())
    with pytest.raises(OnnxExportError, match="cannot export branchy") as err:  # branches on the data
        export_onnx(branchy, sx, tmp_path / "f.onnx", learner_name="branchy")
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
