"""``metadl train / eval / detect`` on a tiny ``detect_omniglot_scenes`` run, end to end.

The scenes are drawn from stand-in characters (tests/conftest.py) into ``data.folder``, so no Omniglot
files are needed; generating them from Omniglot is what ``benchmarks/fewshot_detection.py`` runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from metadl.apps.detect.config import load_detect_config
from metadl.cli import main
from metadl.config import shipped_config
from metadl.data.detection import DetectionDataset, read_coco, write_coco
from metadl.data.detection.scenes import generate_scenes

TINY = [
    "scenes.train_images=150",
    "scenes.val_images=4",
    "scenes.test_images=6",
    "scenes.novel_per_alphabet=1",
    "scenes.novel_fraction=0.5",
    "detector.hidden=4",
    "detector.dim=8",
    "train.steps=3",
    "train.checkpoint_every=1",
    "train.batch_size=4",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory, stand_in_characters) -> Iterator[Path]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("detect") / "run"
    spec = load_detect_config(shipped_config("detect_omniglot_scenes"), TINY).scenes
    folder = generate_scenes(stand_in_characters, spec, out.parent / "scenes")
    args = [
        "train",
        "detect_omniglot_scenes",
        "--out",
        str(out),
        "--no-progress",
        "--set",
        f"data.folder={folder}",
    ]
    assert main([*args, *(a for item in TINY for a in ("--set", item))]) == 0
    yield out
    torch.set_num_threads(threads)


def test_train_writes_a_run_folder_with_checkpoint_metrics_model_and_benchmark(run):
    assert (run / "last.ckpt").is_file() and (run / "model" / "detector.ckpt").is_file()
    assert (run / "metrics.csv").read_text().splitlines()[0] == "step,loss,time_s"
    assert len((run / "metrics.csv").read_text().splitlines()) == 4
    assert f"folder: {run.parent / 'scenes'}" in (run / "config.yaml").read_text()  # the benchmark it used


def test_a_finished_run_is_not_overwritten_and_resume_keeps_its_weights(run, capsys):
    assert main(["train", "detect_omniglot_scenes", "--out", str(run), "--no-progress"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    before = (run / "model" / "detector.ckpt").read_bytes()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert (run / "model" / "detector.ckpt").read_bytes() == before


def test_eval_reports_ap50_over_seeded_k_shot_samples(run, capsys):
    capsys.readouterr()
    args = [
        "eval",
        str(run),
        "--json",
        "--shots",
        "1",
        "--set",
        "eval.samples=2",
        "--set",
        "finetune.steps=2",
    ]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert {r["method"] for r in report["results"]} == {"prototype", "tfa", "tfa_imprinted"}
    for r in report["results"]:
        assert r["shots"] == 1 and r["novel"]["n"] == 2 and 0 <= r["novel"]["ap50"] <= 1
    # with prototypes, base classes keep exactly the detections they had: no base AP is lost
    proto = next(r for r in report["results"] if r["method"] == "prototype")
    assert proto["base"]["ap50"] == pytest.approx(report["base_before"]["ap50"])


def test_detect_adds_support_classes_and_writes_json_and_drawings(run, tmp_path, capsys):
    scenes = run.parent / "scenes"
    split = json.loads((scenes / "split.json").read_text())
    pool = read_coco(scenes / "train_all.json")
    novel = pool.category_ids(split["novel"][:2])
    boxes = [next(a for a in pool.annotations if a.category_id == c) for c in novel]
    images = [i for i in pool.images if i.id in {a.image_id for a in boxes}]
    support = DetectionDataset(tuple(images), tuple(boxes), {c: pool.categories[c] for c in novel}, scenes)
    write_coco(support, scenes / "support.json")
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.open(scenes / f"images/test_{i:05d}.png").save(folder / f"q{i}.png")
    capsys.readouterr()
    args = ["detect", str(run), "--support", str(scenes / "support.json"), "--images", str(folder)]
    assert main([*args, "--json", "--threshold", "0", "--draw", str(tmp_path / "drawn")]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [f["file"] for f in found] == ["q0.png", "q1.png", "q2.png"]
    labels = {d["label"] for f in found for d in f["detections"]}
    assert labels <= set(split["base"]) | set(split["novel"][:2]) and labels & set(split["novel"][:2])
    for d in found[0]["detections"]:
        x, y, w, h = d["bbox"]
        assert x >= 0 and y >= 0 and x + w <= 128.01 and y + h <= 128.01 and 0 <= d["score"] <= 1
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == ["q0.png", "q1.png", "q2.png"]


def test_detect_errors_are_one_line(run, tmp_path, capsys):
    assert main(["detect", str(tmp_path), "--images", str(tmp_path)]) == 2
    assert "holds no saved detector" in capsys.readouterr().err
    assert main(["detect", str(run), "--images", str(tmp_path)]) == 2
    assert "holds no image files" in capsys.readouterr().err
