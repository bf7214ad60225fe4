"""COCO and VOC readers on small handmade files: what they read, and one-line errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from metadl.data.detection import AnnotationError, read_coco, read_voc, write_coco
from metadl.data.detection.coco import coco_dict
from metadl.data.detection.voc import MAX_XML_BYTES


def coco(images=None, annotations=None, categories=None) -> dict:
    return {
        "images": images
        if images is not None
        else [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        "annotations": annotations
        if annotations is not None
        else [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [1, 2, 10, 20]}],
        "categories": categories if categories is not None else [{"id": 2, "name": "two"}],
    }


def write(folder: Path, raw: dict, image: bool = True) -> Path:
    if image:
        Image.new("L", (40, 30)).save(folder / "a.png")
    path = folder / "ann.json"
    path.write_text(json.dumps(raw))
    return path


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_coco_reads_images_boxes_and_categories_and_round_trips(tmp_path):
    ds = read_coco(write(tmp_path, coco()))
    assert ds.images[0].file_name == "a.png" and (ds.images[0].width, ds.images[0].height) == (40, 30)
    assert ds.annotations[0].bbox == (1.0, 2.0, 10.0, 20.0) and ds.categories == {2: "two"}
    assert ds.image_path(ds.images[0]) == tmp_path / "a.png"
    write_coco(ds, tmp_path / "again.json")
    again = read_coco(tmp_path / "again.json")
    assert again.annotations == ds.annotations and again.images == ds.images
    assert coco_dict(again)["annotations"][0]["area"] == 200.0


def test_coco_drops_crowd_regions(tmp_path):
    raw = coco(annotations=[{"id": 1, "image_id": 1, "category_id": 2, "bbox": [1, 2, 10, 20], "iscrowd": 1}])
    assert read_coco(write(tmp_path, raw)).annotations == ()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            coco(annotations=[{"image_id": 1, "category_id": 2, "bbox": [35, 2, 10, 20]}]),
            "outside its 40x30 image",
        ),
        (
            coco(annotations=[{"image_id": 1, "category_id": 9, "bbox": [1, 2, 10, 20]}]),
            "unknown category id 9",
        ),
        (coco(annotations=[{"image_id": 5, "category_id": 2, "bbox": [1, 2, 10, 20]}]), "image id 5"),
        (coco(annotations=[{"image_id": 1, "category_id": 2, "bbox": [1, 2, 0, 20]}]), "has no area"),
        (coco(annotations=[{"image_id": 1, "category_id": 2, "bbox": [1, 2, 3]}]), "not four numbers"),
        (coco(images=[{"id": 1, "file_name": "a.png", "width": 10**9, "height": 30}]), "sides must be"),
        (coco(images=[{"id": 1, "file_name": "a.png", "height": 30}]), "has no 'width'"),
        ({"images": []}, "no 'annotations' list"),
    ],
)
def test_coco_refuses_bad_annotations_in_one_line(tmp_path, raw, expected):
    with pytest.raises(AnnotationError) as err:
        read_coco(write(tmp_path, raw))
    assert expected in one_line(err)


def test_coco_names_a_missing_image_file_and_a_missing_file(tmp_path):
    with pytest.raises(AnnotationError) as err:
        read_coco(write(tmp_path, coco(), image=False))
    assert "'a.png' is not in" in one_line(err)
    with pytest.raises(AnnotationError, match="does not exist"):
        read_coco(tmp_path / "nothing.json")


def test_coco_bounds_the_file_size_before_parsing(tmp_path, monkeypatch):
    monkeypatch.setattr("metadl.data.detection.coco.MAX_COCO_BYTES", 100)
    with pytest.raises(AnnotationError, match="more than the 100"):
        read_coco(write(tmp_path, coco()))


def voc_folder(root: Path, objects: str, *, image: bool = True, stem: str = "000001") -> Path:
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (root / "JPEGImages").mkdir(exist_ok=True)
    (root / "ImageSets" / "Main" / "trainval.txt").write_text(f"{stem}\n")
    (root / "Annotations" / f"{stem}.xml").write_text(
        f"<annotation><filename>{stem}.jpg</filename><size><width>100</width><height>80</height>"
        f"<depth>3</depth></size>{objects}</annotation>"
    )
    if image:
        Image.new("RGB", (100, 80)).save(root / "JPEGImages" / f"{stem}.jpg")
    return root


def obj(name: str, box: tuple[int, int, int, int], difficult: int = 0) -> str:
    x1, y1, x2, y2 = box
    return (
        f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x1}</xmin>"
        f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
    )


def test_voc_reads_boxes_in_coco_convention_and_skips_difficult(tmp_path):
    root = voc_folder(tmp_path, obj("dog", (1, 1, 100, 80)) + obj("cat", (11, 21, 40, 60), difficult=1))
    ds = read_voc(root)
    assert [(ds.categories[a.category_id], a.bbox) for a in ds.annotations] == [
        ("dog", (0.0, 0.0, 100.0, 80.0))
    ]
    assert ds.image_path(ds.images[0]) == root / "JPEGImages" / "000001.jpg"
    assert len(read_voc(root, keep_difficult=True).annotations) == 2


@pytest.mark.parametrize(
    ("objects", "expected"),
    [
        (obj("unicorn", (1, 1, 10, 10)), "unknown category 'unicorn'"),
        (obj("dog", (50, 1, 120, 10)), "outside its 100x80 image"),
        ("<object><name>dog</name><bndbox><xmin>1</xmin></bndbox></object>", "has no <bndbox/ymin>"),
        (obj("dog", (1, 1, 10, 10)).replace("<xmin>1<", "<xmin>one<"), "is not a number"),
    ],
)
def test_voc_refuses_bad_objects_in_one_line(tmp_path, objects, expected):
    with pytest.raises(AnnotationError) as err:
        read_voc(voc_folder(tmp_path, objects))
    assert expected in one_line(err)


def test_voc_names_missing_files_and_refuses_entities_and_huge_files(tmp_path):
    with pytest.raises(AnnotationError, match="JPEGImages/000001.jpg is missing"):
        read_voc(voc_folder(tmp_path / "a", obj("dog", (1, 1, 10, 10)), image=False))
    with pytest.raises(AnnotationError, match="ImageSets/Main/test.txt does not exist"):
        read_voc(voc_folder(tmp_path / "b", ""), "test")
    root = voc_folder(tmp_path / "c", "")
    xml = root / "Annotations" / "000001.xml"
    xml.write_text('<!DOCTYPE a [<!ENTITY x "xx">]>' + xml.read_text())
    with pytest.raises(AnnotationError, match="declares a DTD"):
        read_voc(root)
    xml.write_bytes(b" " * (MAX_XML_BYTES + 1))
    with pytest.raises(AnnotationError, match="bytes, more than"):
        read_voc(root)
    (root / "Annotations" / "000001.xml").unlink()
    with pytest.raises(AnnotationError, match="is missing"):
        read_voc(root)
