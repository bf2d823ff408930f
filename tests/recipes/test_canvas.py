"""The digit canvases: exact boxes and masks, no overlap, seeded, disjoint sources, noise and clutter."""

from __future__ import annotations

import pytest
import torch

from losses import ConfigError
from recipes.data.canvas import CanvasDataModule, CanvasSpec, generate
from recipes.data.sources import load_mnist5k


@pytest.fixture(scope="module")
def digits(data_dir):
    images, labels = load_mnist5k(data_dir)
    return images[:600], labels[:600]


def make(digits, count=60, seed=0, **spec):
    images, labels = digits
    return generate(images, labels, torch.arange(len(labels)) + 1000, count, CanvasSpec(**spec), seed)


def objects(data, n):
    keep = data["labels"][n] >= 0
    return data["boxes"][n][keep].long(), data["labels"][n][keep]


def test_boxes_enclose_exactly_the_ink_and_nothing_lies_outside_them(digits):
    data = make(digits)
    for n in range(len(data["images"])):
        image = data["images"][n, 0]
        inside = torch.zeros_like(image, dtype=torch.bool)
        for (x1, y1, x2, y2), _ in zip(*objects(data, n)):
            ink = image[y1:y2, x1:x2] > 0
            assert ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any()  # touches all four sides
            inside[y1:y2, x1:x2] = True
        assert not (image[~inside] > 0).any()


def test_masks_are_the_ink_labelled_by_the_digit_of_its_box(digits):
    data = make(digits)
    assert torch.equal(data["masks"] > 0, data["images"][:, 0] > 0)
    for n in range(len(data["images"])):
        for (x1, y1, x2, y2), label in zip(*objects(data, n)):
            region = data["masks"][n, y1:y2, x1:x2]
            assert set(region.unique().tolist()) == {0, int(label) + 1}


def test_boxes_never_overlap_and_keep_the_gap(digits):
    gap = 2
    data = make(digits, gap=gap, size=64, max_objects=6)  # a crowded canvas
    for n in range(len(data["images"])):
        boxes, _ = objects(data, n)
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                apart = a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]
                assert apart, (n, a.tolist(), b.tolist())


def test_object_counts_and_labels_follow_the_sources(digits):
    images, labels = digits
    data = make(digits, count=200, min_objects=1, max_objects=5)
    counts = (data["labels"] >= 0).sum(1)
    assert counts.min() >= 1 and counts.max() <= 5 and 2.5 < counts.float().mean() < 3.5
    placed = data["labels"] >= 0
    assert torch.equal(labels[data["sources"][placed] - 1000], data["labels"][placed])
    assert ((data["sources"] >= 0) == placed).all()


def test_the_same_seed_gives_the_same_canvases_and_another_seed_others(digits):
    a, b, c = make(digits, seed=3), make(digits, seed=3), make(digits, seed=4)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a["images"], c["images"])


def test_rescaling_changes_digit_sizes(digits):
    small, large = make(digits, min_scale=0.6, max_scale=0.6), make(digits, min_scale=1.5, max_scale=1.5)

    def mean_height(data):
        keep = data["labels"] >= 0
        return (data["boxes"][..., 3] - data["boxes"][..., 1])[keep].float().mean()

    assert mean_height(large) > 2 * mean_height(small)


def test_noise_keeps_boxes_and_masks_but_changes_the_background(digits):
    clean, noisy = make(digits), make(digits, noise=0.2)
    assert torch.equal(clean["boxes"], noisy["boxes"]) and torch.equal(clean["masks"], noisy["masks"])
    background = clean["masks"] == 0
    assert (noisy["images"][:, 0][background] > 0).float().mean() > 0.3


def test_clutter_adds_ink_outside_every_box_and_mask(digits):
    clean, cluttered = make(digits), make(digits, clutter=3)
    outside = cluttered["masks"] == 0
    assert (cluttered["images"][:, 0][outside] > 0).sum() > 100
    assert not (clean["images"][:, 0][clean["masks"] == 0] > 0).any()
    for n in range(len(cluttered["images"])):  # masks stay inside their boxes
        inside = torch.zeros(cluttered["masks"].shape[1:], dtype=torch.bool)
        for (x1, y1, x2, y2), _ in zip(*objects(cluttered, n)):
            inside[y1:y2, x1:x2] = True
        assert not (cluttered["masks"][n][~inside] > 0).any()


def test_splits_draw_their_digits_from_disjoint_source_images(data_dir):
    dm = CanvasDataModule(data_dir=str(data_dir), train_size=300, val_size=100, test_size=100)
    dm.setup()
    sources = {s: set(d[d >= 0].tolist()) for s, d in dm.sources.items()}
    assert sources["train"] and sources["val"] and sources["test"]
    assert not sources["train"] & sources["val"] and not sources["train"] & sources["test"]
    assert not sources["val"] & sources["test"]
    allowed = dm.source_splits()
    for split, used in sources.items():
        assert used <= set(allowed[split].tolist())
    assert dm.field("train", "images").shape == (300, 1, 96, 96)


def test_foreground_masks_have_two_classes_and_a_wrong_count_is_refused(data_dir):
    dm = CanvasDataModule(data_dir=str(data_dir), masks="foreground", mask_classes=2, train_size=20, val_size=10, test_size=10)
    dm.setup()
    assert set(dm.field("val", "masks").unique().tolist()) == {0, 1}
    with pytest.raises(ConfigError, match=r"masks=foreground has 2 classes, so mask_classes must be 2;.* \(got 11\)"):
        CanvasDataModule(data_dir=str(data_dir), masks="foreground")


def test_cached_canvases_are_reloaded_unchanged(data_dir):
    first = CanvasDataModule(data_dir=str(data_dir), cache=True, train_size=30, val_size=10, test_size=10)
    first.setup()
    path = first.cache_path("train")
    assert path.exists()
    second = CanvasDataModule(data_dir=str(data_dir), cache=True, train_size=30, val_size=10, test_size=10)
    assert torch.equal(second.generate_split("train")["boxes"], first.field("train", "boxes"))
    assert CanvasDataModule(data_dir=str(data_dir), cache=True, train_size=30, noise=0.1).cache_path("train") != path


def test_impossible_settings_are_refused_before_generating():
    with pytest.raises(ConfigError, match="min_objects <= max_objects"):
        CanvasDataModule(min_objects=3, max_objects=2)
    with pytest.raises(ConfigError, match="max_scale <= size / 28"):
        CanvasDataModule(size=32, max_scale=2.0)
