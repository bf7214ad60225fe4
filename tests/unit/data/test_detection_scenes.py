"""The Omniglot-scenes generator, on stand-in characters (tests/conftest.py): classes, boxes, files, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest

from metadl.data.detection import read_coco
from metadl.data.detection.scenes import SceneSpec, choose_classes, draw_canvas, generate_scenes


def test_classes_come_from_background_and_at_least_five_evaluation_alphabets(stand_in_characters):
    chars = stand_in_characters
    classes = choose_classes(chars, SceneSpec())
    assert len(classes.base) == 30 and {chars.sets[i] for i in classes.base} == {"background"}
    assert len({chars.names[i].split("/")[0] for i in classes.base}) == 30
    assert len(classes.novel) >= 20 and {chars.sets[i] for i in classes.novel} == {"evaluation"}
    assert len({chars.names[i].split("/")[0] for i in classes.novel}) >= 5
    assert classes == choose_classes(chars, SceneSpec())


def test_a_canvas_holds_tight_boxes_with_limited_overlap_within_the_image(stand_in_characters):
    chars, spec = stand_in_characters, SceneSpec()
    rng = np.random.default_rng(1)
    for _ in range(20):
        pixels, placed = draw_canvas(chars, [0, 1, 2, 3, 4, 5], range(12), spec, rng)
        assert pixels.shape == (128, 128) and pixels.dtype == np.uint8
        for i, (_, (x, y, w, h)) in enumerate(placed):
            assert x >= 0 and y >= 0 and x + w <= 128 and y + h <= 128 and max(w, h) <= spec.max_size
            assert pixels[int(y) : int(y + h), int(x) : int(x + w)].max() == 255  # the box holds ink
            for _, (x2, y2, w2, h2) in placed[i + 1 :]:
                iw = max(0.0, min(x + w, x2 + w2) - max(x, x2))
                ih = max(0.0, min(y + h, y2 + h2) - max(y, y2))
                assert iw * ih / (w * h + w2 * h2 - iw * ih) <= spec.max_iou + 1e-9


@pytest.fixture(scope="module")
def scenes(tmp_path_factory, stand_in_characters):
    spec = SceneSpec(train_images=30, val_images=5, test_images=8, novel_fraction=0.3)
    return spec, generate_scenes(stand_in_characters, spec, tmp_path_factory.mktemp("scenes"))


def test_the_benchmark_is_written_as_coco_with_novel_objects_unannotated_in_base_training(scenes):
    spec, folder = scenes
    split = json.loads((folder / "split.json").read_text())
    assert len(split["base"]) == 30 and len(split["novel"]) == 20 and split["spec"]["seed"] == spec.seed
    full, base = read_coco(folder / "train_all.json"), read_coco(folder / "train_base.json")
    novel = set(full.category_ids(split["novel"]))
    assert base.images == full.images and len(full.images) == 30
    assert any(a.category_id in novel for a in full.annotations)
    assert [a for a in full.annotations if a.category_id not in novel] == list(base.annotations)
    test = read_coco(folder / "test.json")
    assert len(test.images) == 8 and all(2 <= len(test.boxes_of(i.id)) <= 6 for i in test.images)
    assert {i.file_name for i in test.images}.isdisjoint({i.file_name for i in full.images})


def test_generation_is_deterministic(scenes, tmp_path, stand_in_characters):
    spec, folder = scenes
    again = generate_scenes(stand_in_characters, spec, tmp_path / "again")
    for name in ("train_all.json", "test.json", "split.json", "images/test_00003.png"):
        assert (again / name).read_bytes() == (folder / name).read_bytes()


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="objects per canvas"):
        SceneSpec(min_objects=1)
    with pytest.raises(ValueError, match="sizes"):
        SceneSpec(max_size=100)
