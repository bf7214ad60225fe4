"""Images and boxes of a :class:`DetectionDataset` as tensors a detector trains on.

Images are read as :mod:`metadl.data.image_folder` reads them, as grey (1 channel) or RGB (3), resized to ``image_size``
square (boxes scaled with them) and stored as uint8; boxes become xyxy float tensors and categories
become class indices in the order of ``class_ids`` (boxes of other categories are dropped).

Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from metadl.data.detection.annotations import BoxAnnotation, DetectionDataset, ImageInfo
    >>> root = pathlib.Path(tempfile.mkdtemp()); Image.new("L", (64, 32)).save(root / "a.png")
    >>> ds = DetectionDataset((ImageInfo(1, "a.png", 64, 32),), (BoxAnnotation(1, 5, (8.0, 4.0, 16.0, 8.0)),), {5: "x"}, root)
    >>> batch = load_tensors(ds, [5], image_size=32)
    >>> batch.images.shape, batch.boxes[0].tolist(), batch.labels[0].tolist()
    (torch.Size([1, 1, 32, 32]), [[4.0, 4.0, 12.0, 12.0]], [0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from metadl.data.detection.annotations import AnnotationError, DetectionDataset
from metadl.data.image_folder import _load as load_image  # the one image decoder (modes, bombs, errors)


@dataclass(frozen=True)
class DetectionTensors:
    """``images (N, C, S, S)`` uint8, per image xyxy ``boxes[i] (n_i, 4)`` and class indices ``labels[i]``."""

    images: Tensor
    boxes: list[Tensor]
    labels: list[Tensor]
    image_ids: list[int]

    def __len__(self) -> int:
        return len(self.image_ids)

    def select(self, index: list[int]) -> DetectionTensors:
        """The images at ``index`` (a mini-batch)."""
        return DetectionTensors(
            self.images[index], [self.boxes[i] for i in index], [self.labels[i] for i in index],
            [self.image_ids[i] for i in index],
        )  # fmt: skip

    def float_images(self) -> Tensor:
        """Images as float in [0, 1]."""
        return self.images.float() / 255


def load_tensors(
    ds: DetectionDataset, class_ids: list[int], *, image_size: int = 128, channels: int = 1
) -> DetectionTensors:
    """Every image of ``ds`` with its boxes of the categories ``class_ids`` (index i = ``class_ids[i]``)."""
    if image_size % 16:
        raise AnnotationError(f"image_size = {image_size}: the detector needs a multiple of 16")
    index = {cid: i for i, cid in enumerate(class_ids)}
    images = np.zeros((len(ds.images), channels, image_size, image_size), np.uint8)
    boxes, labels = [], []
    for n, info in enumerate(ds.images):
        try:
            images[n] = load_image(ds.image_path(info), image_size, channels)
        except ValueError as err:
            raise AnnotationError(str(err)) from None
        scale = torch.tensor([image_size / info.width, image_size / info.height] * 2)
        kept = [a for a in ds.boxes_of(info.id) if a.category_id in index]
        xywh = torch.tensor([a.bbox for a in kept], dtype=torch.float32).reshape(-1, 4)
        xyxy = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1) * scale
        boxes.append(xyxy)
        labels.append(torch.tensor([index[a.category_id] for a in kept], dtype=torch.long))
    return DetectionTensors(torch.from_numpy(images), boxes, labels, [i.id for i in ds.images])
