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
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": 100 + i,
                    "bbox": [x, y, w, h],
                    "category_id": cat,
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
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
    with pytest.raises(ConfigError, match=r"annotation 2 in \S*train.json has bbox .* outside its image 1.png \(64x48\)"):
        dm.setup()


def test_the_wrong_number_of_classes_says_the_right_one(tmp_path):
    write_folder(tmp_path, [[(1, 1, 5, 5, 3)]])
    with pytest.raises(ConfigError, match="has 2 categories but data.num_classes is 10; set data.num_classes=2"):
        COCOFolderDataModule(root=str(tmp_path)).setup()
    with pytest.raises(ConfigError, match="set data.root=FOLDER"):
        COCOFolderDataModule()


def test_detection_trains_on_a_coco_folder(smoke_config, tmp_path):
    root = tmp_path / "dätä ü" / "coco"  # spaces and non-ASCII letters: Hydra's override parser takes them quoted
    write_folder(root, shapes())
    cfg = smoke_config(
        "task=detection",
        "data=coco_folder",
        f"data.root='{root}'",
        "data.num_classes=2",
        "data.image_size=32",
        "data.batch_size=4",
        *DETECTOR_TINY,
    )
    metrics = train(cfg)
    assert all(math.isfinite(metrics[k]) for k in ("test/map", "test/map_50", "train/loss_epoch", "train/box_loss_epoch"))
    assert (tmp_path / "images" / "test_detections.png").exists()


# ----- damaged folders: each is one message naming the file (and the annotation or image) and what it must hold
def damage_json(root, edit):
    """Apply ``edit`` to the parsed train.json of a two-image folder and write it back (NaN as JSON's NaN)."""
    path = root / "annotations" / "train.json"
    coco = json.loads(path.read_text())
    edit(coco)
    path.write_text(json.dumps(coco))


def set_bbox(bbox):
    return lambda coco: coco["annotations"][0].update(bbox=bbox)


FOUR = "a COCO bbox is [x, y, width, height], four finite numbers"
DAMAGED = [
    # (what is wrong, the edit, what the message says after "<train.json path>")
    ("a NaN in a box", set_bbox([1, float("nan"), 5, 5]), " has bbox [1, nan, 5, 5]; " + FOUR),
    ("an infinite box", set_bbox([1, 1, float("inf"), 5]), " has bbox [1, 1, inf, 5]; " + FOUR),
    ("a 3-number box", set_bbox([1, 1, 5]), " has bbox [1, 1, 5]; " + FOUR),
    ("a box of strings", set_bbox(["1", "1", "5", "5"]), " has bbox ['1', '1', '5', '5']; " + FOUR),
    ("no box", lambda coco: coco["annotations"][0].pop("bbox"), " has bbox None; " + FOUR),
    (
        "an unknown image_id",
        lambda coco: coco["annotations"][0].update(image_id=999),
        " has image_id 999, which no entry of images has (ids [100, 101])",
    ),
    (
        "an unknown category",
        lambda coco: coco["annotations"][0].update(category_id=5),
        " has category_id 5, not among the categories [3, 7]",
    ),
]


@pytest.mark.parametrize("edit,message", [d[1:] for d in DAMAGED], ids=[d[0] for d in DAMAGED])
def test_a_bad_annotation_names_the_file_the_annotation_and_what_it_must_hold(tmp_path, edit, message):
    write_folder(tmp_path, [[(1, 1, 5, 5, 3)], [(2, 2, 4, 4, 7)]])
    damage_json(tmp_path, edit)
    with pytest.raises(ConfigError) as err:
        COCOFolderDataModule(root=str(tmp_path), num_classes=2).setup()
    assert str(err.value) == f"data 'coco_folder': annotation 1 in {tmp_path / 'annotations' / 'train.json'}{message}"


FILES = [
    ("empty", "", ' is empty; a COCO file holds {"images": [{"id": 1, "file_name": "a.jpg"}, ...]'),
    ("blank", "\n  \n", " is empty; a COCO file holds"),
    ("truncated", '{"images": [{"id": 1', " is not valid JSON (Expecting "),
    ("an empty object", "{}", " has no list 'images', 'annotations', 'categories'; a COCO file holds"),
    ("a list", "[]", " has no list 'images', 'annotations', 'categories'; a COCO file holds"),
    (
        "no annotations",
        json.dumps({"images": [{"id": 1, "file_name": "0.png"}], "categories": CATEGORIES}),
        " has no list 'annotations'; a COCO file holds",
    ),
    ("no images", json.dumps({"images": [], "annotations": [], "categories": CATEGORIES}), " lists no images; a COCO file holds"),
    (
        "no categories",
        json.dumps({"images": [{"id": 1, "file_name": "0.png"}], "annotations": [], "categories": []}),
        " lists no categories; a COCO file holds",
    ),
    (
        "an image without file_name",
        json.dumps({"images": [{"id": 1}], "annotations": [], "categories": CATEGORIES}),
        " is {'id': 1}; each needs id (int) and file_name (str)",
    ),
    (
        "an image id twice",
        json.dumps({"images": [{"id": 1, "file_name": "0.png"}] * 2, "annotations": [], "categories": CATEGORIES}),
        " lists images ids [1] more than once; ids must be unique",
    ),
]


@pytest.mark.parametrize("text,message", [f[1:] for f in FILES], ids=[f[0] for f in FILES])
def test_an_annotation_file_without_the_coco_lists_says_what_a_coco_file_holds(tmp_path, text, message):
    write_folder(tmp_path, [[(1, 1, 5, 5, 3)]])
    path = tmp_path / "annotations" / "train.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        COCOFolderDataModule(root=str(tmp_path), num_classes=2).setup()
    assert str(err.value).startswith(f"data 'coco_folder': {'an entry of images in ' if 'each needs' in message else ''}{path}")
    assert message in str(err.value)
    assert "num_classes" not in str(err.value)  # not "set data.num_classes=0"


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_corrupt_image_is_named_with_the_file_that_lists_it(tmp_path, damage):
    write_folder(tmp_path, [[(1, 1, 5, 5, 3)], [(2, 2, 4, 4, 7)]])
    image = tmp_path / "images" / "1.png"
    data = image.read_bytes()
    image.write_bytes({"garbage": b"not an image at all", "truncated": data[: len(data) // 2], "empty": b""}[damage])
    with pytest.raises(ConfigError) as err:
        COCOFolderDataModule(root=str(tmp_path), num_classes=2).setup()
    listed = tmp_path / "annotations" / "train.json"
    assert str(err.value).startswith(f"data 'coco_folder': image {image} (listed in {listed}) cannot be decoded (")
    assert "replace it with a readable JPEG, PNG, GIF or WEBP file, or remove it from the annotations" in str(err.value)


def test_a_missing_image_or_annotation_file_or_root_is_named(tmp_path):
    write_folder(tmp_path, [[(1, 1, 5, 5, 3)]])
    (tmp_path / "images" / "0.png").unlink()
    with pytest.raises(ConfigError, match=f"image {tmp_path / 'images' / '0.png'} is listed in .*train.json but missing"):
        COCOFolderDataModule(root=str(tmp_path), num_classes=2).setup()
    with pytest.raises(ConfigError) as err:  # before any data loads
        COCOFolderDataModule(root=str(tmp_path), num_classes=2, val="annotations/nope.json")
    assert str(err.value) == (
        f"data 'coco_folder': val must name a json file under {tmp_path}; set data.val=annotations/FILE.json "
        "(got 'annotations/nope.json')"
    )
    with pytest.raises(ConfigError, match=r"root must be a folder with annotations/ and images/ \(got '.*nope'\)"):
        COCOFolderDataModule(root=str(tmp_path / "nope"), num_classes=2)


def test_a_folder_with_spaces_and_non_ascii_letters_reads(tmp_path):
    root = tmp_path / "dätä ü" / "çoco"
    write_folder(root, [[(8, 12, 16, 24, 7)]])
    dm = COCOFolderDataModule(root=str(root), image_size=32, num_classes=2)
    dm.setup()
    assert dm.splits["train"][2].tolist() == [[1]]
