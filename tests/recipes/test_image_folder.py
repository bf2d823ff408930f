"""Your own images in the ImageFolder layout: real digits written as PNG and JPEG files, read back, trained on."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.io import write_jpeg, write_png

from losses import ConfigError
from recipes.data.image_folder import ImageFolderDataModule, ImageFolderTuplesDataModule, folder_channels, folder_classes
from tests.helpers.folders import CLASS_NAMES as NAMES
from tests.helpers.folders import first_digits
from tests.helpers.folders import write_image_folder as write_folder
from train import train


@pytest.fixture(scope="module")
def digits() -> dict[int, torch.Tensor]:
    """The first 24 real mnist5k digits of each class 0-3."""
    return first_digits()


def test_grey_pngs_are_read_back_exactly_with_labels_from_the_sorted_class_folders(tmp_path, digits):
    write_folder(tmp_path, digits, splits=("train", "val", "test"))
    dm = ImageFolderDataModule(root=str(tmp_path), image_size=28)
    dm.setup()
    assert dm.classes == sorted(NAMES) and dm.num_classes == 4 and dm.channels == 1
    images, labels = dm.splits["val"]
    assert images.shape == (48, 1, 28, 28) and images.dtype == torch.uint8
    one = sorted(NAMES).index("one")  # classes are indexed in sorted order, as torchvision's ImageFolder
    assert torch.equal(images[labels == one][0], digits[1][12])  # val/one/0.png: lossless PNG, no resize
    assert {k: len(v[1]) for k, v in dm.splits.items()} == {"train": 48, "val": 48, "test": 48}


def test_absent_val_and_test_are_split_off_train_stratified_and_seeded(tmp_path, digits):
    write_folder(tmp_path, digits, per_class=20)
    dm = ImageFolderDataModule(root=str(tmp_path), image_size=28, val_fraction=0.1, test_fraction=0.2)
    dm.setup()
    counts = {split: torch.bincount(labels, minlength=4).tolist() for split, (_, labels) in dm.splits.items()}
    assert counts == {"train": [14] * 4, "val": [2] * 4, "test": [4] * 4}
    again = ImageFolderDataModule(root=str(tmp_path), image_size=28, val_fraction=0.1, test_fraction=0.2)
    other = ImageFolderDataModule(root=str(tmp_path), image_size=28, val_fraction=0.1, test_fraction=0.2, split_seed=1)
    again.setup(), other.setup()
    assert torch.equal(dm.splits["test"][0], again.splits["test"][0])
    assert not torch.equal(dm.splits["test"][0], other.splits["test"][0])


def test_every_mode_is_decoded_to_uint8_and_channels_follow_the_data(tmp_path, digits):
    """Grey PNG, 16-bit PNG, grey+alpha stay 1 channel; one RGB JPEG or RGBA PNG makes the folder 3 channels."""
    grey = write_folder(tmp_path / "grey", digits, per_class=3)
    digit = digits[0][0, 0].numpy()
    Image.fromarray(digit.astype(np.uint16) * 257).save(grey / "train" / "zero" / "deep.png")  # 16-bit
    Image.fromarray(np.stack([digit, np.full_like(digit, 128)], -1), "LA").save(grey / "train" / "one" / "alpha.png")
    assert folder_channels(str(grey)) == 1 and folder_classes(str(grey)) == 4
    dm = ImageFolderDataModule(root=str(grey), image_size=28, val_fraction=0.25, test_fraction=0.25)
    dm.setup()
    images = torch.cat([dm.splits[s][0] for s in ("train", "val", "test")])
    assert images.shape[1] == 1 and images.dtype == torch.uint8
    assert any(torch.equal(image[0], digits[0][0, 0]) for image in images)  # 16 bits scaled back to the 8-bit digit

    colour = write_folder(tmp_path / "colour", digits, per_class=3)
    rgba = np.stack([digit, digit // 2, digit // 4, np.full_like(digit, 255)], -1)
    Image.fromarray(rgba, "RGBA").save(colour / "train" / "two" / "rgba.png")
    assert folder_channels(str(colour)) == 3
    dm = ImageFolderDataModule(root=str(colour), image_size=28, val_fraction=0.25, test_fraction=0.25)
    dm.setup()
    images = torch.cat([dm.splits[s][0] for s in ("train", "val", "test")])
    rgb = torch.from_numpy(rgba[..., :3]).permute(2, 0, 1)
    assert images.shape[1] == 3 and any(torch.equal(image, rgb) for image in images)  # alpha dropped
    grey_as_rgb = ImageFolderDataModule(root=str(grey), image_size=28, channels=3, val_fraction=0.25, test_fraction=0.25)
    grey_as_rgb.setup()
    x = grey_as_rgb.splits["train"][0]
    assert x.shape[1] == 3 and torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])


def test_jpeg_rgb_images_of_any_size_are_resized_and_statistics_come_from_train(tmp_path, digits):
    root = write_folder(tmp_path, digits, per_class=6, colour=True, fmt="jpg")
    d = digits[3][0]
    big = torch.cat([d, d // 2, d // 4])  # tinted like the rest, 56 x 84
    write_jpeg(
        torch.nn.functional.interpolate(big[None].float(), size=(56, 84))[0].byte(), str(root / "train" / "three" / "x.jpg")
    )
    dm = ImageFolderDataModule(root=str(root), image_size=16, val_fraction=0.2, test_fraction=0.2)
    dm.setup()
    train_images = dm.splits["train"][0]
    assert train_images.shape[1:] == (3, 16, 16)
    mean = train_images.float().div(255).mean([0, 2, 3])
    torch.testing.assert_close(dm.mean.flatten(), mean)
    red, green = mean[0].item(), mean[1].item()
    assert red == pytest.approx(2 * green, rel=0.1)  # the tint survives JPEG: green is about half the red
    given = ImageFolderDataModule(root=str(root), image_size=16, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    given.setup()
    assert given.mean.flatten().tolist() == [0.5] * 3 and given.std.flatten().tolist() == [0.25] * 3


def test_training_augmentation_crops_and_flips_shift_moves_and_none_or_shift_zero_keep(tmp_path, digits):
    root = write_folder(tmp_path, digits, per_class=4)
    x = torch.randn(16, 1, 28, 28)

    def augmented(**kwargs):
        torch.manual_seed(0)
        return ImageFolderDataModule(root=str(root), image_size=28, **kwargs).augment(x)

    assert torch.equal(augmented(augment="none"), x) and torch.equal(augmented(shift=0), x)
    flipped = augmented(crop_scale=[1.0, 1.0], crop_ratio=[1.0, 1.0])  # the full image: only the flips remain
    same = [torch.allclose(a, b, atol=1e-5) for a, b in zip(flipped, x)]
    mirrored = [torch.allclose(a, b.flip(-1), atol=1e-5) for a, b in zip(flipped, x)]
    assert all(s or m for s, m in zip(same, mirrored)) and 0 < sum(mirrored) < 16
    cropped = augmented(hflip=False)
    assert cropped.shape == x.shape and not torch.allclose(cropped, x, atol=1e-3)
    shifted = augmented(augment="shift", shift=2, hflip=False)
    assert shifted.shape == x.shape and shifted.abs().sum() < x.abs().sum()  # zero-filled borders


def test_imbalance_and_label_noise_change_the_training_split_only(tmp_path, digits):
    root = write_folder(tmp_path, digits, per_class=20)
    clean = ImageFolderDataModule(root=str(root), image_size=28)
    tail = ImageFolderDataModule(root=str(root), image_size=28, imbalance=4)
    noisy = ImageFolderDataModule(root=str(root), image_size=28, label_noise=0.25)
    for dm in (clean, tail, noisy):
        dm.setup()
    assert torch.bincount(tail.splits["train"][1]).tolist() == [16, 10, 6, 4]  # 16 * 4^(-c/3)
    assert torch.equal(tail.splits["test"][1], clean.splits["test"][1])
    changed = noisy.splits["train"][1] != clean.splits["train"][1]
    assert changed.sum().item() == round(0.25 * 64)
    assert torch.equal(noisy.splits["val"][1], clean.splits["val"][1])


def test_pairs_hold_out_whole_class_folders_in_the_open_set(tmp_path, digits):
    root = write_folder(tmp_path, digits, per_class=10, splits=("train", "val"))
    dm = ImageFolderTuplesDataModule(root=str(root), image_size=28, open_set=True, unseen_classes=["zero", "two"], eval_pairs=20)
    dm.setup()
    unseen = {sorted(NAMES).index(n) for n in ("zero", "two")}
    assert set(dm.splits["train"][1].unique().tolist()) == set(range(4)) - unseen
    assert set(dm.splits["val"][1].unique().tolist()) == set(range(4)) - unseen  # selection on the seen classes
    assert set(dm.splits["test"][1].unique().tolist()) == unseen
    assert len(dm.splits["train"][1]) + len(dm.splits["val"][1]) == 40  # the seen classes of train/ and val/, split again
    default = ImageFolderTuplesDataModule(root=str(root), image_size=28, open_set=True, eval_pairs=20)
    assert default.unseen_classes == (2, 3)  # the last 40% of the classes, at least 2
    with pytest.raises(ConfigError, match=r"unseen_classes must be class folders of train/ \(one, three, two, zero\)"):
        ImageFolderTuplesDataModule(root=str(root), unseen_classes=["four", "two"], open_set=True)


# ----- malformed folders: one message naming the path and showing the layout -------------------------------------
LAYOUT = r"expected DIR/train/<class>/<image>"


def malformed(root: Path, digits, case: str) -> tuple[Path, str]:
    """A folder broken in one way, and the message that must name it."""
    if case == "no root":
        return root / "missing", rf"root {root / 'missing'} does not exist; {LAYOUT}"
    if case == "a file as root":
        (root / "f.png").write_bytes(b"")
        return root / "f.png", r"f.png is a file, not a folder"
    if case == "no images":
        (root / "train").mkdir()
        return root, rf"{root / 'train'} holds no class folders; {LAYOUT}"
    if case == "classes without train/":
        (root / "cat").mkdir(parents=True)
        write_png(digits[0][0], str(root / "cat" / "0.png"))
        return root, rf"has no train/ folder \(it holds cat/; if those are classes, move them into {root / 'train'}/\)"
    write_folder(root, digits, per_class=2)
    if case == "an empty class folder":
        (root / "train" / "four").mkdir()
        return root, rf"the class folder {root / 'train' / 'four'} holds no images; {LAYOUT}"
    if case == "a file at the class level":
        write_png(digits[0][0], str(root / "train" / "stray.png"))
        return root, rf"{root / 'train' / 'stray.png'} is a file where class folders belong"
    if case == "a non-image file":
        (root / "train" / "one" / "notes.txt").write_text("hi")
        return root, r"notes.txt is not an image torchvision.io reads"
    if case == "a misspelt split":
        (root / "validation" / "one").mkdir(parents=True)
        return root, r"holds validation/, but only train/, val/ and test/ are read"
    if case == "a class only in val":
        write_png(digits[0][0], str((root / "val" / "nine").mkdir(parents=True) or root / "val" / "nine" / "0.png"))
        return root, rf"{root / 'val' / 'nine'} is a class that {root / 'train'} lacks"
    raise AssertionError(case)


CASES = [
    "no root",
    "a file as root",
    "no images",
    "classes without train/",
    "an empty class folder",
    "a file at the class level",
    "a non-image file",
    "a misspelt split",
    "a class only in val",
]


@pytest.mark.parametrize("case", CASES)
def test_a_malformed_folder_is_refused_with_its_path_and_the_layout(tmp_path, digits, case):
    root, message = malformed(tmp_path, digits, case)
    with pytest.raises(ConfigError, match=message) as refused:
        ImageFolderDataModule(root=str(root))
    assert LAYOUT.replace("\\", "") in str(refused.value) and str(refused.value).startswith("data 'image_folder': ")
    with pytest.raises(ConfigError, match=message):
        folder_classes(str(root))  # the same message at compose time


def test_root_unset_and_a_wrong_num_classes_say_the_fix(tmp_path, digits):
    with pytest.raises(ConfigError, match=rf"root is not set; give the folder with data.root=DIR; {LAYOUT}"):
        ImageFolderDataModule()
    write_folder(tmp_path, digits, per_class=2)
    with pytest.raises(ConfigError, match=r"num_classes is 10 but .*train has 4 class folders; leave data.num_classes unset"):
        ImageFolderDataModule(root=str(tmp_path), num_classes=10)


def test_an_unreadable_image_is_named(tmp_path, digits):
    root = write_folder(tmp_path, digits, per_class=2)
    broken = root / "train" / "two" / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(ConfigError, match=rf"cannot read the image {broken} .*; fix or remove it"):
        folder_channels(str(root))
    dm = ImageFolderDataModule(root=str(root), channels=1)  # the header check skipped: decoding names it
    with pytest.raises(ConfigError, match=rf"cannot decode the image {broken} .*; fix or remove it"):
        dm.setup()


# ----- every image task trains on a folder -----------------------------------------------------------------------
TINY = ("data.image_size=16", "data.batch_size=8", "data.eval_batch_size=16")


@pytest.fixture
def folder(tmp_path, digits) -> Path:
    return write_folder(tmp_path / "digits", digits, per_class=12, splits=("train", "val"))


def test_classification_trains_on_a_folder_with_the_classes_and_channels_read_from_it(smoke_config, folder):
    cfg = smoke_config("data=image_folder", f"data.root={folder}", *TINY, "model.widths=[8,16]")
    assert cfg.model.num_outputs == 4 and cfg.model.in_channels == 1  # resolved from the folder at compose time
    metrics = train(cfg)
    assert math.isfinite(metrics["test/acc"]) and 0 <= metrics["test/acc"] <= 1


def test_classification_with_imbalance_weights_from_the_folder(smoke_config, folder):
    cfg = smoke_config(
        "data=image_folder",
        f"data.root={folder}",
        *TINY,
        "model.widths=[8,16]",
        "data.imbalance=2",
        "loss.weight='${inverse_frequency:${data.imbalance},${data.num_classes}}'",
    )
    assert len(cfg.loss.weight) == 4
    assert math.isfinite(train(cfg)["test/acc"])


@pytest.mark.parametrize(
    "overrides",
    [
        ("task=vae", "model.hidden=[32]", "model.latent_dim=2"),
        ("task=simclr", "model.widths=[8,16]", "task.probe_steps=5", "task.eval_train_samples=32"),
        ("task=distillation", "task.teacher_model.widths=[8,16]", "model.hidden=[16]", "task.baseline=false"),
    ],
    ids=["vae", "simclr", "distillation"],
)
def test_image_tasks_train_on_a_folder(smoke_config, folder, overrides):
    metrics = train(smoke_config(*overrides, "data=image_folder", f"data.root={folder}", *TINY))
    assert metrics and all(math.isfinite(v) for v in metrics.values())


def test_siamese_verification_trains_on_class_folders_as_identities(smoke_config, folder):
    cfg = smoke_config(
        "task=siamese", "data=image_folder_pairs", f"data.root={folder}", *TINY, "model.widths=[8,16]", "data.eval_pairs=32"
    )
    assert cfg.data.open_set is True
    metrics = train(cfg)
    assert 0 <= metrics["test/roc_auc"] <= 1


def test_a_run_without_a_root_ends_with_the_layout_message_and_status_2(make_config, capsys):
    from train import run

    cfg = make_config("data=image_folder")  # composes: the resolvers run when the config is read
    with pytest.raises(SystemExit) as stopped:
        run(cfg)
    assert stopped.value.code == 2
    assert "error: data 'image_folder': root is not set; give the folder with data.root=DIR" in capsys.readouterr().err
