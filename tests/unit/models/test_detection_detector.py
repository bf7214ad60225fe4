"""The detector: it overfits one canvas, prototypes leave base scores unchanged, training resumes exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from metadl.apps.detect.experiment import tfa_finetune
from metadl.data.detection.tensors import DetectionTensors
from metadl.models.detection import (
    CenterNetDetector,
    DetectorSpec,
    DetectorTrainer,
    FitSettings,
    PrototypeDetector,
)
from metadl.models.detection.boxes import box_iou
from metadl.models.detection.detector import STRIDE
from metadl.models.detection.fit import FrozenMaps, fit_head
from metadl.models.detection.heads import CosineHead
from metadl.models.detection.loss import detection_loss, heatmap_targets

pytestmark = pytest.mark.usefixtures("one_thread")


def canvas() -> DetectionTensors:
    """A 64x64 canvas with a filled square (class 0) and a ring (class 1)."""
    image = Image.new("L", (64, 64))
    pen = ImageDraw.Draw(image)
    pen.rectangle([6, 8, 25, 27], fill=255)
    pen.ellipse([36, 30, 59, 53], outline=255, width=3)
    boxes = torch.tensor([[6.0, 8.0, 26.0, 28.0], [36.0, 30.0, 60.0, 54.0]])
    pixels = torch.from_numpy(np.asarray(image).copy())[None, None]
    return DetectionTensors(pixels, [boxes], [torch.tensor([0, 1])], [1])


def test_heatmap_targets_peak_at_the_centre_cell_of_each_box():
    data = canvas()
    target = heatmap_targets(data.boxes[0], data.labels[0], 2, (8, 8))
    assert target[0, 2, 2] == 1 and target[1, 5, 6] == 1  # centres (16, 18) and (48, 42) over stride 8
    assert int((target == 1).sum()) == 2 and target.max() <= 1


def test_the_detector_overfits_one_canvas():
    torch.manual_seed(0)
    data = canvas()
    detector = CenterNetDetector(DetectorSpec(n_classes=2, hidden=8, dim=16))
    trainer = DetectorTrainer(detector, data, FitSettings(steps=80, batch_size=1, lr=1e-2))
    first = trainer.step()
    trainer.run()
    out = detector(data.float_images())
    last = float(detection_loss(out.logits, out.regression, data.boxes, data.labels).total.detach())
    assert last < 0.2 * first
    found = detector.detect(data.float_images(), score_threshold=0.3)[0]
    assert sorted(found.labels.tolist()) == [0, 1]
    for label in (0, 1):
        iou = box_iou(found.boxes[found.labels == label], data.boxes[0][data.labels[0] == label])
        assert float(iou.max()) > 0.7


def test_adding_prototypes_leaves_base_class_scores_unchanged():
    torch.manual_seed(1)
    data = canvas()
    base = CenterNetDetector(DetectorSpec(n_classes=3, hidden=8, dim=16))
    DetectorTrainer(base, data, FitSettings(steps=3, batch_size=1)).run()
    images = torch.rand(4, 1, 64, 64)
    before = base(images)
    support = [torch.tensor([[4.0, 4.0, 30.0, 30.0]]), torch.tensor([[20.0, 20.0, 50.0, 44.0]])]
    adapted = PrototypeDetector(base).adapt(
        torch.rand(2, 1, 64, 64), support, [torch.tensor([0]), torch.tensor([1])]
    )
    after = adapted(images)
    assert after.logits.shape[1] == 5
    # equal up to the rounding of a matrix product with more columns (the base rows are not touched)
    assert torch.allclose(after.logits[:, :3], before.logits, rtol=0, atol=1e-5)
    assert torch.equal(after.regression, before.regression) and torch.equal(
        after.embeddings, before.embeddings
    )
    assert torch.equal(adapted.head.weight[:3], base.head.weight)
    assert torch.equal(base(images).logits, before.logits)  # the trained detector itself is unchanged


def test_a_prototype_is_the_mean_unit_embedding_at_the_box_centres():
    base = CenterNetDetector(DetectorSpec(n_classes=1, hidden=4, dim=8)).eval()
    images = torch.rand(2, 1, 32, 32)
    boxes = [torch.tensor([[0.0, 0.0, 16.0, 16.0]]), torch.tensor([[8.0, 8.0, 24.0, 24.0]])]
    adapted = PrototypeDetector(base).adapt(images, boxes, [torch.tensor([0]), torch.tensor([0])])
    emb = torch.nn.functional.normalize(base.embed(images), dim=1)
    expected = (emb[0, :, 8 // STRIDE, 8 // STRIDE] + emb[1, :, 16 // STRIDE, 16 // STRIDE]) / 2
    assert torch.allclose(adapted.head.weight[1], expected, atol=1e-6)


def test_the_cosine_head_keeps_old_rows_when_classes_are_added():
    head = CosineHead(n_classes=2, dim=4)
    bigger = head.with_classes(torch.ones(3, 4))
    assert torch.equal(bigger.weight[:2], head.weight) and bigger.n_classes == 5
    assert torch.allclose(bigger.weight[2:], torch.ones(3, 4))


def test_a_resumed_trainer_takes_the_same_steps():
    data = canvas()

    def trainer() -> DetectorTrainer:
        torch.manual_seed(2)
        return DetectorTrainer(
            CenterNetDetector(DetectorSpec(2, hidden=4, dim=8)), data, FitSettings(steps=6, batch_size=1)
        )

    straight = trainer()
    straight.run()
    first = trainer()
    for _ in range(3):
        first.step()
    resumed = trainer()
    resumed.load_state_dict(first.state_dict())
    resumed.run()
    for a, b in zip(
        straight.detector.state_dict().values(), resumed.detector.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_fit_head_on_frozen_maps_learns_and_touches_nothing_else():
    torch.manual_seed(3)
    data = canvas()
    detector = CenterNetDetector(DetectorSpec(2, hidden=8, dim=16))
    DetectorTrainer(detector, data, FitSettings(steps=20, batch_size=1)).run()
    weights = {k: v.clone() for k, v in detector.state_dict().items()}
    maps = FrozenMaps.compute(detector, data)
    head = CosineHead(n_classes=2, dim=16)
    before = float(
        detection_loss(head(maps.embeddings), maps.regression, data.boxes, data.labels).heatmap.detach()
    )
    fit_head(head, maps, data, FitSettings(steps=60, batch_size=1, lr=0.05))
    after = float(
        detection_loss(head(maps.embeddings), maps.regression, data.boxes, data.labels).heatmap.detach()
    )
    assert after < 0.5 * before
    assert all(torch.equal(v, detector.state_dict()[k]) for k, v in weights.items())


def test_imprinted_tfa_starts_from_the_given_novel_rows_and_random_tfa_is_seeded():
    torch.manual_seed(4)
    data = canvas()  # class 0 is base, class 1 the "novel" one
    detector = CenterNetDetector(DetectorSpec(1, hidden=8, dim=16)).eval()
    maps = FrozenMaps.compute(detector, data)
    init = torch.randn(1, 16)
    tiny = FitSettings(steps=1, batch_size=1, lr=1e-12, seed=7)
    imprinted = tfa_finetune(detector.head, maps, data, 1, tiny, init)
    assert imprinted.n_classes == 2
    assert torch.allclose(imprinted.weight[1], init[0], atol=1e-6)
    assert torch.allclose(imprinted.weight[0], detector.head.weight[0], atol=1e-6)
    first, again = (tfa_finetune(detector.head, maps, data, 1, tiny) for _ in range(2))
    assert torch.equal(first.weight, again.weight)
    assert not torch.allclose(first.weight[1], init[0], atol=1e-3)
