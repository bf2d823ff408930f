"""A Pascal VOC folder as detection data: boxes as written, difficult and crowd objects ignored, bad layouts refused."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torchmetrics.detection import MeanAveragePrecision

from losses import ConfigError
from recipes.data.coco import COCOFolderDataModule
from recipes.data.layout import ignored_label
from recipes.data.voc import VOCFolderDataModule, class_names
from recipes.detection import truths
from tests.helpers.folders import NAMES, voc_xml, write_voc_folder
from tests.helpers.sizes import DETECTOR_TINY
from tests.recipes.test_coco import write_folder
from train import train

LAYOUT = r"Expected layout:\n    DIR/Annotations/<id>.xml"


@pytest.fixture
def voc(tmp_path, data_dir):
    class_names.cache_clear()
    root = tmp_path / "voc"
    return root, write_voc_folder(root, data_dir, {"train": 16, "val": 6}, difficult_every=4)


def test_boxes_labels_and_difficult_objects_are_read_as_written(voc):
    root, written = voc
    dm = VOCFolderDataModule(root=str(root), image_size=48)
    assert dm.classes == ["one", "two", "zero"] and dm.num_classes == 3  # the XML names, sorted
    dm.setup()
    images, boxes, labels = dm.splits["val"]
    truth = written["val"]
    assert images.shape == (6, 3, 48, 48)
    assert (images.float() - truth["images"].float()).abs().mean() < 3  # JPEG at quality 95
    label_of_digit = torch.tensor([NAMES.index(n) for n in ("one", "two", "zero")]).argsort()  # digit -> class
    k = labels.shape[1]  # padded to the most objects of any image of the split
    assert (truth["labels"][:, k:] < 0).all()
    present = truth["labels"][:, :k] >= 0
    expected = label_of_digit[truth["labels"][:, :k].clamp_min(0)]
    expected = torch.where(truth["difficult"][:, :k], ignored_label(0) - expected, expected)
    assert torch.equal(labels[present], expected[present]) and (labels[~present] == -1).all()
    assert torch.equal(boxes[present], truth["boxes"][:, :k][present])  # exact: the same size
    assert (labels <= -2).any() and (labels >= 0).any()


def test_boxes_are_scaled_with_the_image(voc):
    root, written = voc
    small = VOCFolderDataModule(root=str(root), image_size=24)
    small.setup()
    boxes = small.splits["val"][1]
    present = written["val"]["labels"][:, : boxes.shape[1]] >= 0
    torch.testing.assert_close(boxes[present], written["val"]["boxes"][:, : boxes.shape[1]][present] / 2)


def test_given_class_names_set_the_labels_and_a_missing_val_split_is_split_off_train(tmp_path, data_dir):
    class_names.cache_clear()
    root = tmp_path / "voc"
    write_voc_folder(root, data_dir, {"train": 20})
    dm = VOCFolderDataModule(root=str(root), classes=["zero", "one", "two"], val_fraction=0.2, test_fraction=0.1)
    dm.setup()
    assert {s: len(t[0]) for s, t in dm.splits.items()} == {"train": 14, "val": 4, "test": 2}
    assert set(dm.splits["train"][2].unique().tolist()) <= {-1, 0, 1, 2}
    with pytest.raises(ConfigError, match=rf"train_000.xml: object name '\w+' is not among data.classes \['zero'\]. {LAYOUT}"):
        VOCFolderDataModule(root=str(root), classes=["zero"]).setup()


def replace_annotation(root, text: str) -> None:
    (root / "Annotations" / "val_001.xml").write_text(text)


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<annotation><object><name>one</name></object></annotation>", "val_001.xml: no <size>"),
        (voc_xml("val_001.jpg", 48, 48, []), "val_001.xml: no <object>"),
        (voc_xml("val_001.jpg", 48, 48, [("one", [0, 3, 10, 12], 0)]), r"val_001.xml: object 'one' has a box \(xmin, ymin"),
        (voc_xml("val_001.jpg", 48, 48, [("one", [3, 3, 49, 12], 0)]), r"outside its 48x48 image or empty"),
        (voc_xml("val_001.jpg", 48, 48, [("one", [9, 3, 8, 12], 0)]), r"outside its 48x48 image or empty"),
        (voc_xml("val_001.jpg", 40, 48, [("one", [1, 1, 8, 12], 0)]), r"val_001.xml: <size> is 40x48 but its image is 48x48"),
        (voc_xml("gone.jpg", 48, 48, [("one", [1, 1, 8, 12], 0)]), r"JPEGImages/gone.jpg: image file missing"),
        ("<annotation><size><width>48</width></size>", r"val_001.xml: not valid XML"),
        ("<annotation><size><width>48</width></size></annotation>", r"val_001.xml: <height> missing or not a number"),
    ],
)
def test_every_malformed_annotation_is_refused_with_its_file_and_the_layout(voc, xml, message):
    root, _ = voc
    replace_annotation(root, xml)
    with pytest.raises(ConfigError, match=rf"data 'voc_folder': .*{message}.*{LAYOUT}"):
        VOCFolderDataModule(root=str(root), classes=list(NAMES)).setup()


def test_a_malformed_folder_is_refused_with_the_layout(voc):
    root, _ = voc
    with pytest.raises(ConfigError, match=rf"data 'voc_folder': None: no such folder; set data.root=DIR. {LAYOUT}"):
        VOCFolderDataModule()
    (root / "ImageSets" / "Main" / "val.txt").write_text("val_000\nnope\n")
    listed = r"annotation missing \(its id is listed in ImageSets/Main\)"
    with pytest.raises(ConfigError, match=rf"Annotations/nope.xml: {listed}. {LAYOUT}"):
        VOCFolderDataModule(root=str(root), classes=list(NAMES)).setup()
    (root / "ImageSets" / "Main" / "val.txt").write_text("\n")
    with pytest.raises(ConfigError, match=r"ImageSets/Main/val.txt: lists no ids"):
        VOCFolderDataModule(root=str(root), classes=list(NAMES)).setup()
    for path in (root / "Annotations").iterdir():
        path.unlink()
    (root / "Annotations").rmdir()
    class_names.cache_clear()
    with pytest.raises(ConfigError, match=rf"voc/Annotations: folder missing. {LAYOUT}"):
        VOCFolderDataModule(root=str(root))


def test_difficult_and_crowd_objects_are_ignored_by_map():
    boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 0.0, 0.0]]])
    labels = torch.tensor([[1, ignored_label(1), -1]])  # one plain object, one difficult object, padding
    found = truths(boxes, labels)
    assert found[0]["labels"].tolist() == [1, 1] and found[0]["iscrowd"].tolist() == [0, 1]
    both = [{"boxes": boxes[0, :2], "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([1, 1])}]
    only_plain = [{"boxes": boxes[0, :1], "scores": torch.tensor([0.9]), "labels": torch.tensor([1])}]
    for predictions in (both, only_plain):  # a hit on the difficult box is no false positive, a miss no miss
        metric = MeanAveragePrecision(box_format="xyxy", backend="pycocotools")
        metric.update(predictions, found)
        assert metric.compute()["map"].item() == pytest.approx(1.0)


def test_coco_crowd_annotations_are_kept_as_ignored_objects(tmp_path):
    write_folder(tmp_path, [[(8, 12, 16, 24, 7), (30, 2, 10, 10, 3)]])
    coco = json.loads((tmp_path / "annotations" / "train.json").read_text())
    coco["annotations"][1]["iscrowd"] = 1
    (tmp_path / "annotations" / "train.json").write_text(json.dumps(coco))
    dm = COCOFolderDataModule(root=str(tmp_path), image_size=32, num_classes=2, channels=3)
    dm.setup()
    images, _, labels = dm.splits["train"]
    assert images.shape == (1, 3, 32, 32) and labels.tolist() == [[1, ignored_label(0)]]


def test_detection_trains_on_a_voc_folder(smoke_config, voc, tmp_path):
    root, _ = voc
    cfg = smoke_config(
        "task=detection", "data=voc_folder", f"data.root={root}", "data.image_size=32", "data.batch_size=4", *DETECTOR_TINY
    )
    assert cfg.model.num_classes == 3  # read from the XML names
    metrics = train(cfg)
    assert all(math.isfinite(metrics[k]) for k in ("test/map", "test/map_50", "train/loss_epoch", "train/box_loss_epoch"))
