"""Saved models: exact round trips for every registered learner, and clear errors for broken files."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch

import metadl
from metadl.algorithms import LEARNERS, list_learners
from metadl.data.preprocess import Preprocessing
from metadl.saving import (
    DOC_NAME,
    WEIGHTS_NAME,
    SavedModel,
    SavedModelError,
    build_from_spec,
    load,
    save_model,
)
from metadl.tasks.task import TaskBatch

IMAGE_SPEC = {
    "backbone": {"name": "conv4", "in_channels": 1, "hidden": 8, "image_size": 16},
    "learner": {"name": "protonet", "n_way": 3, "learn_temperature": True},
}


def vector_spec(name: str) -> dict:
    params = inspect.signature(LEARNERS[name]).parameters
    learner: dict = {"name": name}
    if "n_way" in params:
        learner["n_way"] = 3
    elif "out_features" in params:
        learner["out_features"] = 3
    return {"backbone": {"name": "mlp", "in_features": 6, "hidden": [8]}, "learner": learner}


def trained_like(spec: dict, seed: int = 0) -> torch.nn.Module:
    """A learner whose every parameter and buffer differs from a fresh initialisation."""
    torch.manual_seed(seed)
    learner = build_from_spec(spec)
    with torch.no_grad():
        for t in [*learner.parameters(), *learner.buffers()]:
            if t.is_floating_point():
                t.add_(torch.rand_like(t) * 0.1)  # positive shifts keep running variances positive
    return learner.eval()


def batch_for(x_shape: tuple[int, ...], classification: bool = True) -> TaskBatch:
    g = torch.Generator().manual_seed(1)
    y = torch.arange(3).repeat(2).expand(2, 6)
    qy = torch.arange(3).expand(2, 3)
    if not classification:
        y, qy = torch.randn(2, 6, 3, generator=g), torch.randn(2, 3, 3, generator=g)
    return TaskBatch(torch.rand(2, 6, *x_shape, generator=g), y, torch.rand(2, 3, *x_shape, generator=g), qy)


def outputs(learner: torch.nn.Module, batch: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
    learner.eval()
    with torch.no_grad():
        logits = learner(batch).logits
    support = batch[0]
    return logits, learner.adapt(support.support_x, support.support_y).decision_function(support.query_x)


def assert_round_trip(spec: dict, x_shape: tuple[int, ...], tmp_path: Path) -> SavedModel:
    learner = trained_like(spec)
    classification = "n_way" in spec["learner"]
    batch = batch_for(x_shape, classification)
    before = outputs(learner, batch)
    model = load(save_model(tmp_path / "model", learner, spec=spec))
    for name, t in learner.state_dict().items():
        assert torch.equal(model.learner.state_dict()[name], t), name
    for a, b in zip(before, outputs(model.learner, batch), strict=True):
        assert torch.equal(a, b)
    fresh = build_from_spec(spec).state_dict()
    assert any(
        not torch.equal(fresh[k], v) for k, v in learner.state_dict().items()
    )  # the weights came from the file
    return model


def test_protonet_conv4_round_trip_is_exact_and_keeps_preprocessing_and_metadata(tmp_path):
    learner = trained_like(IMAGE_SPEC)
    pre = Preprocessing(image_size=16, background="dark", resample="box")
    folder = save_model(
        tmp_path / "m", learner, spec=IMAGE_SPEC, preprocessing=pre, metadata={"val_acc": 0.5}
    )
    assert sorted(p.name for p in folder.iterdir()) == [DOC_NAME, WEIGHTS_NAME]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folders left behind
    model = metadl.load(folder / DOC_NAME)
    assert (
        model.preprocessing == pre
        and model.metadata == {"val_acc": 0.5}
        and model.metadl_version == metadl.__version__
    )
    assert not model.learner.training
    assert_round_trip(IMAGE_SPEC, (1, 16, 16), tmp_path / "again")


@pytest.mark.parametrize("name", list_learners())
def test_every_registered_learner_round_trips_exactly(name, tmp_path):
    assert_round_trip(vector_spec(name), (6,), tmp_path)


def test_float64_model_comes_back_in_float64(tmp_path):
    spec = vector_spec("protonet")
    learner = trained_like(spec).double()
    model = load(save_model(tmp_path / "m", learner, spec=spec))
    assert model.dtype == torch.float64
    x = torch.rand(4, 6, dtype=torch.float64)
    assert torch.equal(model.learner.backbone(x), learner.backbone(x))


def test_adapt_maps_back_arbitrary_labels_and_accepts_other_dtypes(tmp_path):
    model = load(save_model(tmp_path / "m", trained_like(IMAGE_SPEC), spec=IMAGE_SPEC))
    support_x, support_y = torch.rand(6, 1, 16, 16), torch.tensor([30, 10, 20, 30, 10, 20])
    predictor = model.adapt(support_x.double(), support_y)
    assert predictor.classes_.tolist() == [10, 20, 30]
    proba = predictor.predict_proba(support_x)
    torch.testing.assert_close(proba.sum(-1), torch.ones(6))
    assert set(predictor.predict(support_x).tolist()) <= {10, 20, 30}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_load_onto_cuda_and_predict_from_cpu_inputs(tmp_path):
    learner = trained_like(IMAGE_SPEC)
    model = load(save_model(tmp_path / "m", learner.cuda(), spec=IMAGE_SPEC), device="cuda")
    assert model.device.type == "cuda"
    x = torch.rand(6, 1, 16, 16)
    assert model.adapt(x, torch.arange(3).repeat(2)).predict_proba(x).device.type == "cuda"


def test_save_and_load_leave_the_global_random_state_alone(tmp_path):
    learner = trained_like(IMAGE_SPEC)
    state = torch.random.get_rng_state()
    load(save_model(tmp_path / "m", learner, spec=IMAGE_SPEC))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_overwrites_a_saved_model_but_never_another_folder(tmp_path):
    save_model(tmp_path / "m", trained_like(IMAGE_SPEC, seed=0), spec=IMAGE_SPEC)
    second = trained_like(IMAGE_SPEC, seed=1)
    save_model(tmp_path / "m", second, spec=IMAGE_SPEC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert torch.equal(load(tmp_path / "m").learner.log_scale, second.log_scale)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("...")
    with pytest.raises(FileExistsError, match="not a metadl saved model; refusing"):
        save_model(tmp_path / "precious", second, spec=IMAGE_SPEC)
    assert (tmp_path / "precious" / "thesis.tex").exists()


def test_a_spec_that_does_not_describe_the_learner_is_rejected_at_save_time(tmp_path):
    learner = trained_like(IMAGE_SPEC)
    wrong = json.loads(json.dumps(IMAGE_SPEC))
    wrong["backbone"]["hidden"] = 16
    with pytest.raises(ValueError, match=r"spec does not describe this learner.*shape differs"):
        save_model(tmp_path / "m", learner, spec=wrong)
    with pytest.raises(ValueError, match="exactly the keys 'backbone' and 'learner'"):
        save_model(tmp_path / "m", learner, spec={"learner": IMAGE_SPEC["learner"]})
    with pytest.raises(ValueError, match="unknown learner 'protonett'"):
        save_model(tmp_path / "m", learner, spec={**IMAGE_SPEC, "learner": {"name": "protonett", "n_way": 3}})
    assert not (tmp_path / "m").exists()


@pytest.fixture
def saved(tmp_path) -> Path:
    return save_model(tmp_path / "m", trained_like(IMAGE_SPEC), spec=IMAGE_SPEC)


def edit_doc(folder: Path, change) -> None:
    doc = json.loads((folder / DOC_NAME).read_text())
    change(doc)
    (folder / DOC_NAME).write_text(json.dumps(doc))


def test_corrupted_weights_are_rejected_naming_the_file(saved):
    weights = saved / WEIGHTS_NAME
    blob = bytearray(weights.read_bytes())
    blob[-3] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(
        SavedModelError, match=rf"{WEIGHTS_NAME}: sha256 [0-9a-f]{{64}} but .*records .*corrupt"
    ):
        load(saved)


def test_truncated_weights_are_rejected(saved):
    weights = saved / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(SavedModelError, match=rf"{WEIGHTS_NAME}: \d+ bytes but .* records \d+; .*truncated"):
        load(saved)


def test_weights_that_are_not_safetensors_are_rejected_even_with_a_matching_hash(saved):
    import hashlib

    garbage = b"\x00" * 65536  # as large as the weights the spec needs, so only the format is wrong
    (saved / WEIGHTS_NAME).write_bytes(garbage)
    edit_doc(saved, lambda d: d["weights"].update(bytes=65536, sha256=hashlib.sha256(garbage).hexdigest()))
    with pytest.raises(SavedModelError, match="not a readable safetensors file"):
        load(saved)


def test_truncated_json_is_rejected_naming_the_file(saved):
    doc = saved / DOC_NAME
    doc.write_text(doc.read_text()[:50])
    with pytest.raises(SavedModelError, match=rf"{DOC_NAME}: not valid JSON .*truncated or corrupt"):
        load(saved)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["spec"]["backbone"].update(hidden=16),
            r"weights do not match the spec in .*shape differs",
        ),
        (
            lambda d: d["spec"].update(backbone={"name": "mlp", "in_features": 256, "hidden": [8]}),
            r"weights do not match the spec.*missing \['backbone\.net\.0\.bias'.*unexpected \['backbone\.encoder",
        ),
        (
            lambda d: d["spec"]["learner"].update(name="nonexistent"),
            r"the spec does not build a learner: unknown learner",
        ),
        (lambda d: d["spec"]["backbone"].update(widths=3), r"the spec does not build a learner: .*widths"),
        (lambda d: d.update(format_version=99), r"format_version 99 .*upgrade metadl"),
        (lambda d: d.update(format="something else"), r"not a metadl saved model"),
        (lambda d: d["weights"].update(file="../elsewhere.safetensors"), r"must be a plain file name"),
        (
            lambda d: d.update(preprocessing={"image_size": 28, "channels": 2}),
            r"bad preprocessing: .*channels=2",
        ),
    ],
)
def test_a_mismatched_or_malformed_description_is_rejected(saved, change, message):
    edit_doc(saved, change)
    with pytest.raises(SavedModelError, match=message):
        load(saved)


def test_a_folder_that_is_not_a_saved_model(tmp_path):
    with pytest.raises(SavedModelError, match=rf"not a metadl saved model folder \(no {DOC_NAME}"):
        load(tmp_path)
