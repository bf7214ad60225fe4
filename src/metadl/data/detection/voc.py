"""Pascal VOC annotations: one XML file per image, read into a :class:`DetectionDataset`.

A VOC folder (VOC2007/VOC2012, or your own in the same layout) holds ``Annotations/<id>.xml``,
``JPEGImages/<id>.jpg`` and ``ImageSets/Main/<split>.txt`` listing the image ids of a split. Each XML
gives ``<size><width>/<height>`` and one ``<object>`` per box with ``<name>``, ``<difficult>`` and
``<bndbox>`` (``xmin, ymin, xmax, ymax``, 1-based inclusive pixels). Boxes become COCO's ``[x, y, w,
h]`` the way detectron2 converts them (``x = xmin - 1``, ``w = xmax - xmin + 1``); objects marked
``difficult`` are dropped unless asked for (the VOC protocol ignores them). Category ids follow the
order of ``class_names`` (the 20 VOC classes by default), from 1.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "Annotations").mkdir(); (root / "ImageSets" / "Main").mkdir(parents=True)
    >>> _ = (root / "ImageSets" / "Main" / "train.txt").write_text("000001\\n")
    >>> _ = (root / "Annotations" / "000001.xml").write_text(
    ...     "<annotation><size><width>100</width><height>80</height></size><object><name>dog</name>"
    ...     "<difficult>0</difficult><bndbox><xmin>11</xmin><ymin>21</ymin><xmax>40</xmax><ymax>60</ymax>"
    ...     "</bndbox></object></annotation>")
    >>> ds = read_voc(root, "train", check_files=False)
    >>> ds.annotations[0].bbox, ds.categories[ds.annotations[0].category_id]
    ((10.0, 20.0, 30.0, 40.0), 'dog')
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from metadl.data.detection.annotations import AnnotationError, BoxAnnotation, DetectionDataset, ImageInfo

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
MAX_XML_BYTES = 1 << 20  # a VOC annotation is a few kilobytes; refuse anything that could be a bomb


def _text(node: ET.Element, path: str, where: str) -> str:
    found = node.find(path)
    if found is None or found.text is None or not found.text.strip():
        raise AnnotationError(f"{where} has no <{path}>; every VOC annotation needs one")
    return found.text.strip()


def _number(node: ET.Element, path: str, where: str) -> float:
    text = _text(node, path, where)
    try:
        return float(text)
    except ValueError:
        raise AnnotationError(f"{where}: <{path}> = {text!r} is not a number") from None


def _read_xml(path: Path) -> ET.Element:
    if not path.is_file():
        raise AnnotationError(
            f"annotation {path} is missing; every id of the split needs Annotations/<id>.xml"
        )
    size = path.stat().st_size
    if size > MAX_XML_BYTES:
        raise AnnotationError(
            f"{path} has {size} bytes, more than the {MAX_XML_BYTES} a VOC annotation may have"
        )
    text = path.read_text(encoding="utf-8", errors="strict")
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise AnnotationError(f"{path} declares a DTD or entities; VOC annotations have none")
    try:
        return ET.fromstring(text)
    except ET.ParseError as err:
        raise AnnotationError(f"{path} is not valid XML: {err}") from None


def read_voc(
    root: str | Path,
    split: str = "trainval",
    *,
    class_names: tuple[str, ...] = VOC_CLASSES,
    keep_difficult: bool = False,
    check_files: bool = True,
) -> DetectionDataset:
    """Read the VOC split ``root/ImageSets/Main/<split>.txt`` (see the module docstring).

    Unknown class names, boxes outside their image and (with ``check_files``) missing JPEGs fail with
    one line naming the file.
    """
    root = Path(root)
    listing = root / "ImageSets" / "Main" / f"{split}.txt"
    if not listing.is_file():
        raise AnnotationError(
            f"{listing} does not exist; is {root} a VOC folder (Annotations, ImageSets, JPEGImages)?"
        )
    ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
    category = {name: i for i, name in enumerate(class_names, start=1)}
    images, annotations = [], []
    for image_id, stem in enumerate(ids, start=1):
        xml_path = root / "Annotations" / f"{stem}.xml"
        tree = _read_xml(xml_path)
        where = str(xml_path)
        file_name = f"{stem}.jpg"
        width, height = _number(tree, "size/width", where), _number(tree, "size/height", where)
        info = ImageInfo(image_id, file_name, int(width), int(height))
        if check_files and not (root / "JPEGImages" / file_name).is_file():
            raise AnnotationError(f"{where}: image JPEGImages/{file_name} is missing from {root}")
        images.append(info)
        for obj in tree.findall("object"):
            name = _text(obj, "name", where)
            if name not in category:
                raise AnnotationError(f"{where}: unknown category {name!r}; known: {list(class_names)}")
            difficult = obj.find("difficult")
            if not keep_difficult and difficult is not None and (difficult.text or "0").strip() == "1":
                continue
            x1, y1, x2, y2 = (_number(obj, f"bndbox/{k}", where) for k in ("xmin", "ymin", "xmax", "ymax"))
            annotations.append(
                BoxAnnotation(image_id, category[name], (x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1))
            )
    categories = {cid: name for name, cid in category.items()}
    try:
        return DetectionDataset(tuple(images), tuple(annotations), categories, root / "JPEGImages")
    except AnnotationError as err:
        raise AnnotationError(f"{listing}: {err}") from None
