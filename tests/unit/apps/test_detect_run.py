"""The detection run: a session cut by the time limit and resumed ends with the uninterrupted run's weights."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from metadl.apps.detect.config import load_detect_config
from metadl.apps.detect.model import DetectorModelError, load_detector
from metadl.apps.detect.run import train_detection
from metadl.config import shipped_config
from metadl.data.detection.scenes import generate_scenes
from metadl.training.runfolder import RunFolderError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def config(tmp_path_factory, stand_in_characters):
    cfg = load_detect_config(
        shipped_config("detect_omniglot_scenes"),
        ["scenes.train_images=80", "scenes.val_images=4", "scenes.test_images=4", "detector.hidden=4",
         "detector.dim=8", "train.steps=4", "train.batch_size=4", "train.checkpoint_every=1"],
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("scenes")
    generate_scenes(stand_in_characters, cfg.scenes, folder)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, folder=str(folder)))


def test_a_time_limited_session_resumed_equals_an_uninterrupted_run(config, tmp_path):
    straight = train_detection(config, tmp_path / "straight", progress=False)
    assert straight.steps_done == 4 and not straight.stopped
    cut = train_detection(config, tmp_path / "cut", progress=False, time_limit=1e-9)
    assert cut.stopped and cut.steps_done == 1
    assert len((tmp_path / "cut" / "metrics.csv").read_text().splitlines()) == 2
    resumed = train_detection(None, tmp_path / "cut", resume=True, progress=False)
    assert resumed.steps_done == 4 and not resumed.stopped
    a, b = load_detector(tmp_path / "straight"), load_detector(tmp_path / "cut")
    assert a.class_names == b.class_names and len(a.class_names) == 30
    for x, y in zip(a.detector.state_dict().values(), b.detector.state_dict().values(), strict=True):
        assert torch.equal(x, y)


def test_a_run_folder_with_history_is_refused_and_resume_needs_a_checkpoint(config, tmp_path):
    train_detection(config, tmp_path / "run", progress=False)
    with pytest.raises(RunFolderError, match="already holds a run"):
        train_detection(config, tmp_path / "run", progress=False)
    with pytest.raises(RunFolderError, match="no last.ckpt"):
        train_detection(None, tmp_path / "empty", resume=True, progress=False)
    with pytest.raises(DetectorModelError, match="holds no saved detector"):
        load_detector(tmp_path / "empty")
