"""A COCO-format folder as detection data: boxes follow the resize, bad boxes are clear errors, it trains."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torchvision.io import write_png

from losses import ConfigError
from recipes.data.coco import COCOFolderDataModule
from tests.helpers.sizes import DETECTOR_TINY
from train import train

CATEGORIES = [{"id": 3, "name": "square"}, {"id": 7, "name": "bar"}]


def write_folder(root, boxes_per_image, width=64, height=48):
    """Images with a white rectangle per box ([x, y, w, h], category id), and train/val json files."""
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, annotations = [], []
    for i, boxes in enumerate(boxes_per_image):
        pixels = torch.zeros(1, height, width, dtype=torch.uint8)
        for x, y, w, h, _ in boxes:
            pixels[:, max(y, 0) : y + h, max(x, 0) : x + w] = 255
        write_png(pixels, str(root / "images" / f"{i}.png"))
        images.append({"id": 100 + i, "file_name": f"{i}.png", "width": width, "height": height})
        for x, y, w, h, cat in boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": 100 + i, "bbox": [x, y, w, h], "category_id": cat,
                                "area": w * h, "iscrowd": 0})
    coco = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    for split in ("train", "val"):
        (root / "annotations" / f"{split}.json").write_text(json.dumps(coco))


def shapes(count=12):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        x, y = (int(v) for v in torch.randint(2, 30, (2,), generator=g))
        out.append([(x, y, 12, 12, 3), (min(x + 16, 50), 4, 6, 20, 7)] if x < 20 else [(x, y, 12, 12, 3)])
    return out


def test_boxes_are_read_as_xyxy_and_scaled_with_the_image(tmp_path):
    write_folder(tmp_path, [[(8, 12, 16, 24, 7)], [(0, 0, 64, 48, 3), (4, 4, 2, 2, 7)]])
    dm = COCOFolderDataModule(root=str(tmp_path), image_size=32, num_classes=2)
    dm.setup()
    images, boxes, labels = dm.splits["train"]
    assert images.shape == (2, 1, 32, 32)
    torch.testing.assert_close(boxes[0, 0], torch.tensor([4.0, 8.0, 12.0, 24.0]))  # x / 2, y * 2/3
    assert labels.tolist() == [[1, -1], [0, 1]]  # category ids 3, 7 -> classes 0, 1; -1 pads
    torch.testing.assert_close(boxes[1, 0], torch.tensor([0.0, 0.0, 32.0, 32.0]))


@pytest.mark.parametrize("bad", [(60, 10, 8, 8, 3), (-2, 3, 5, 5, 3), (10, 40, 5, 9, 3), (5, 5, 0, 4, 3)])
def test_a_box_outside_its_image_is_a_clear_error(tmp_path, bad):
    write_folder(tmp_path, [[(1, 1, 5, 5, 3)], [bad]])
    dm = COCOFolderDataModule(root=str(tmp_path), num_classes=2)
    with pytest.raises(ConfigError, match=r"annotation 2 in train.json has bbox .* outside its image 1.png \(64x48\)"):
        dm.setup()


def test_the_wrong_number_of_classes_says_the_right_one(tmp_path):
    write_folder(tmp_path, [[(1, 1, 5, 5, 3)]])
    with pytest.raises(ConfigError, match="has 2 categories but data.num_classes is 10; set data.num_classes=2"):
        COCOFolderDataModule(root=str(tmp_path)).setup()
    with pytest.raises(ConfigError, match="set data.root=FOLDER"):
        COCOFolderDataModule()


def test_detection_trains_on_a_coco_folder(smoke_config, tmp_path):
    root = tmp_path / "coco"
    write_folder(root, shapes())
    cfg = smoke_config(
        "task=detection", "data=coco_folder", f"data.root={root}", "data.num_classes=2", "data.image_size=32",
        "data.batch_size=4", *DETECTOR_TINY,
    )
    metrics = train(cfg)
    assert all(math.isfinite(metrics[k]) for k in ("test/map", "test/map_50", "train/loss_epoch", "train/box_loss_epoch"))
    assert (tmp_path / "images" / "test_detections.png").exists()
