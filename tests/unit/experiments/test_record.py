"""What train/eval record: meta-features of a dataset's episodes and of a task source, the task kind."""

from __future__ import annotations

from metadl.config import config_from_dict
from metadl.experiments.record import config_features, distribution_name, task_kind


def test_a_regression_task_source_is_described_by_its_shape_and_kind() -> None:
    cfg = config_from_dict(
        {"dataset": {"name": "sinusoid"}, "backbone": {"name": "mlp"}, "learner": {"name": "maml"}}
    )
    features = config_features(cfg, "train", (5, 10, 15))
    assert task_kind(cfg) == "regression"
    assert features.modality == "regression" and (features.shots, features.queries) == (10, 15)
    assert features.landmark_raw is None and features.as_dict()["is_regression"] == 1.0


def test_a_dataset_is_described_with_its_landmarkers() -> None:
    cfg = config_from_dict(
        {
            "dataset": {
                "name": "synthetic_glyphs",
                "image_size": 16,
                "num_classes": 6,
                "examples_per_class": 4,
            },
            "backbone": {"name": "conv4"},
            "learner": {"name": "protonet"},
        }  # fmt: skip
    )
    features = config_features(cfg, "val", (3, 1, 2))
    assert task_kind(cfg) == "classification"
    assert (features.classes, features.ways, features.height, features.modality) == (6, 3, 16, "image")
    assert features.landmark_raw is not None and features.landmark_frozen is not None
    assert distribution_name(cfg, "val", (3, 1, 2)).endswith("/val:3w1s2q")
