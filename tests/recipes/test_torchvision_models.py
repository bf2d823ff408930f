"""torchvision networks as models: classifiers of any name, detectors trained through the slots, segmenters with aux.

Every run here is CPU-tiny: 28x28 digits or 64x64 canvases, a few steps, the smallest variants, no weights.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

import losses
from losses import ConfigError
from recipes.models import TorchvisionClassifier, TorchvisionDetector, TorchvisionSegmenter
from recipes.models.adapters import adapt_first_conv
from recipes.regression import fit_head, head_for
from train import train

CANVAS = (
    "data.size=64",
    "data.max_scale=1.0",
    "data.train_size=64",
    "data.val_size=32",
    "data.test_size=32",
    "data.batch_size=16",
)


def checkpoints_load_with_weights_only(folder: Path) -> int:
    found = list((folder / "checkpoints").glob("*.ckpt"))
    for path in found:
        torch.load(path, weights_only=True)  # raises on any pickled class
    return len(found)


# ----- classification networks ------------------------------------------------------------------
def test_resnet18_trains_on_28px_grey_digits_and_its_checkpoints_load_with_weights_only(smoke_config, tmp_path):
    metrics = train(smoke_config("model=torchvision", "model.name=resnet18"))
    assert math.isfinite(metrics["test/acc"]) and math.isfinite(metrics["train/loss_epoch"])
    assert checkpoints_load_with_weights_only(tmp_path) >= 1


def test_mobilenet_v3_small_compiled_in_bf16_mixed_runs_a_cpu_step(smoke_config, tmp_path, monkeypatch):
    """torch.compile's graph capture (dynamo) of the adapter, with the aot_eager backend: inductor's C++ code generation
    takes a quarter of an hour on two shared cores (it passed so, once, when this test was written)."""
    compile_module = nn.Module.compile
    monkeypatch.setattr(nn.Module, "compile", lambda self, **kw: compile_module(self, backend="aot_eager", **kw))
    cfg = smoke_config(
        "model=torchvision",
        "model.name=mobilenet_v3_small",
        "compile=true",
        "trainer.precision=bf16-mixed",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "data.batch_size=4",
        "data.eval_batch_size=4",
    )
    metrics = train(cfg)
    assert math.isfinite(metrics["train/loss_epoch"])
    assert checkpoints_load_with_weights_only(tmp_path) >= 1
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # the model went through dynamo


@pytest.mark.parametrize("name,width", [("resnet18", 512), ("mobilenet_v3_small", 1024), ("efficientnet_b0", 1280)])
def test_the_head_is_sized_to_the_task_or_left_to_it(name, width):
    model = TorchvisionClassifier(name, num_outputs=7, in_channels=1, image_size=28)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 7)
    encoder = TorchvisionClassifier(name, num_outputs=0, in_channels=1, image_size=28)
    assert isinstance(encoder.head, nn.Identity) and encoder.feature_dim == width
    assert encoder(torch.randn(2, 1, 28, 28)).shape == (2, width)
    regressor = fit_head(encoder, losses.build("gaussian_nll"), head_for(losses.build("gaussian_nll")))
    assert regressor.head.in_features == width and regressor.head.out_features == 2  # mean and variance


def test_simclr_sizes_its_projector_from_the_feature_dim():
    from recipes.simclr import SimCLRTask

    task = SimCLRTask(TorchvisionClassifier("resnet18", 0, 1), {"loss": losses.build("nt_xent")}, torch.optim.SGD)
    assert task.projector[0].in_features == 512
    with pytest.raises(ConfigError, match="no output head"):
        SimCLRTask(TorchvisionClassifier("resnet18", 10, 1), {"loss": losses.build("nt_xent")}, torch.optim.SGD)


def test_a_grey_image_through_the_adapted_first_conv_gives_what_rgb_gives_on_the_repeated_image():
    rgb = torchvision.models.resnet18().eval()
    grey = torchvision.models.resnet18().eval()
    grey.load_state_dict(rgb.state_dict())
    adapt_first_conv(grey, 1)
    assert grey.conv1.in_channels == 1
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(grey(x), rgb(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)


def test_an_unknown_name_lists_close_matches():
    with pytest.raises(
        ConfigError,
        match=r"model: name must be a torchvision classification model \(got 'resnet181'\); "
        r"close matches: resnet18, .*list_models\(module=torchvision.models\)",
    ):
        TorchvisionClassifier("resnet181")


def test_an_input_too_small_for_the_network_is_refused_with_its_size():
    with pytest.raises(ConfigError, match=r"model: alexnet does not take 1x16x16 images \(image_size=16\)"):
        TorchvisionClassifier("alexnet", in_channels=1, image_size=16)


def test_a_vision_transformer_is_built_for_the_data_size():
    model = TorchvisionClassifier("vit_b_16", num_outputs=3, in_channels=1, image_size=32)
    assert model.features.image_size == 32 and model(torch.randn(1, 1, 32, 32)).shape == (1, 3)


# ----- pretrained weights come from the torch hub cache only ------------------------------------
def test_absent_weights_name_the_file_and_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    with pytest.raises(ConfigError, match=rf"place resnet18-f37072fd.pth in {folder} .*https://download.pytorch.org"):
        TorchvisionClassifier("resnet18", weights="IMAGENET1K_V1")
    with pytest.raises(ConfigError, match=r"weights_backbone=IMAGENET1K_V1 of resnet18 is not in the torch hub cache"):
        TorchvisionSegmenter("fcn", "resnet18", weights_backbone="IMAGENET1K_V1")
    with pytest.raises(ConfigError, match=r"weights must be one of IMAGENET1K_V1, DEFAULT for resnet18 \(got 'IMAGENET'\)"):
        TorchvisionClassifier("resnet18", weights="IMAGENET")


@pytest.mark.parametrize("weights", ["IMAGENET1K_V1", "DEFAULT"])
def test_present_weights_are_loaded_from_the_cache(tmp_path, monkeypatch, weights):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    saved = torchvision.models.resnet18().state_dict()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(saved, tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    model = TorchvisionClassifier("resnet18", num_outputs=10, in_channels=3, weights=weights)
    assert torch.equal(model.features.layer3[1].conv2.weight, saved["layer3.1.conv2.weight"])
    grey = TorchvisionClassifier("resnet18", num_outputs=10, in_channels=1, weights=weights)
    assert torch.equal(grey.features.conv1.weight, saved["conv1.weight"].sum(1, keepdim=True))


# ----- detection: torchvision's matching, the slots' losses --------------------------------------
def spy(monkeypatch, names: list[str]) -> Counter:
    """Count calls of torchvision's built-in detection losses, wherever torchvision looks them up, and of ``names``."""
    calls: Counter = Counter()
    places = [
        torchvision.ops,
        torchvision.models.detection.fcos,
        torchvision.models.detection.retinanet,
        torchvision.models.detection._utils,
    ]
    builtins = ("sigmoid_focal_loss", "generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss", "_box_loss")
    for builtin in builtins:
        for module in places:
            if hasattr(module, builtin):
                original = getattr(module, builtin)

                def counted(*args, _original=original, _name=builtin, **kwargs):
                    calls[_name] += 1
                    return _original(*args, **kwargs)

                monkeypatch.setattr(module, builtin, counted)
    for name in names:
        cls = losses.spec(name).cls

        def forward(self, *args, _original=cls.forward, _name=name, **kwargs):
            calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "forward", forward)
    return calls


def test_the_spy_sees_torchvisions_own_losses_when_its_own_head_computes_them(monkeypatch):
    """The control: the stock FCOS head calls the built-ins the adapter must not call."""
    calls = spy(monkeypatch, [])
    detector = TorchvisionDetector("fcos", "resnet18_fpn", num_classes=3)
    stock = torchvision.models.detection.FCOS(detector.net.backbone, 3, min_size=64, max_size=64)
    stock.train()([torch.rand(3, 64, 64)], [{"boxes": torch.tensor([[4.0, 4.0, 40.0, 40.0]]), "labels": torch.tensor([1])}])
    assert calls["sigmoid_focal_loss"] == 1 and calls["generalized_box_iou_loss"] == 1


@pytest.mark.parametrize(
    "name,loss,box_loss",
    [("fcos", "focal", "ciou"), ("fcos", "ce", "l1"), ("retinanet", "focal", "giou"), ("retinanet", "ce", "diou")],
)
def test_torchvision_detectors_train_through_the_slot_losses_only(smoke_config, tmp_path, monkeypatch, name, loss, box_loss):
    calls = spy(monkeypatch, [loss, box_loss])
    choices = (f"model={name}", "model.backbone=resnet18_fpn", f"loss={loss}", f"box_loss={box_loss}")
    cfg = smoke_config("task=detection", *choices, *CANVAS)
    metrics = train(cfg)
    for key in ("test/map", "test/map_50", "val/map", "train/loss_epoch", "train/box_loss_epoch"):
        assert key in metrics and math.isfinite(metrics[key]), key
    assert ("train/centerness_epoch" in metrics) == (name == "fcos")
    total = metrics["train/loss_epoch"] + metrics["train/box_loss_epoch"] + metrics.get("train/centerness_epoch", 0.0)
    assert metrics["train/total_epoch"] == pytest.approx(total, rel=1e-5)
    assert calls[loss] >= 4 and calls[box_loss] >= 4  # 4 training steps, then validation and test
    builtins = {k: v for k, v in calls.items() if k not in (loss, box_loss)}
    assert not any(builtins.values()), builtins
    assert checkpoints_load_with_weights_only(tmp_path) >= 1


def test_softmax_scores_see_every_anchor_with_background_and_retinanet_leaves_out_the_ignored_ones():
    from recipes.detection import DetectionTask

    seen = []

    class Recording(losses.build("ce").__class__):
        def forward(self, logits, target):
            seen.append((logits.shape, target))
            return super().forward(logits, target)

    model = TorchvisionDetector("retinanet", "resnet18_fpn", num_classes=10, in_channels=1)
    task = DetectionTask(model, {"loss": Recording(), "box_loss": losses.build("giou")}, torch.optim.SGD)
    assert not task.sigmoid
    raw = task(torch.randn(1, 1, 64, 64))
    boxes, labels = torch.tensor([[[8.0, 8.0, 40.0, 40.0]]]), torch.tensor([[4]])
    task.loss_terms(raw, boxes, labels)
    ((shape, target),) = seen
    anchors = raw.head["cls_logits"].shape[1]
    assert shape[1] == 11 and 0 < shape[0] < anchors  # K + 1 scores; anchors between the IoU thresholds left out
    assert set(target.unique().tolist()) == {4, 10}  # the box's class and background


# ----- segmentation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model,backbone,loss",
    [("deeplabv3", "resnet18", "dice"), ("fcn", "resnet18", "ce"), ("lraspp", "mobilenet_v3_small", "tversky")],
)
def test_torchvision_segmenters_train_with_a_mask_or_pixel_loss(smoke_config, tmp_path, model, backbone, loss):
    cfg = smoke_config("task=segmentation", f"model={model}", f"model.backbone={backbone}", f"loss={loss}", *CANVAS)
    metrics = train(cfg)
    assert math.isfinite(metrics["test/dice"]) and math.isfinite(metrics["train/loss_epoch"])
    if model == "lraspp":
        assert "train/aux_loss_epoch" not in metrics
    else:  # the auxiliary head trains through the slot, at half weight
        total = metrics["train/loss_epoch"] + 0.5 * metrics["train/aux_loss_epoch"]
        assert metrics["train/total_epoch"] == pytest.approx(total, rel=1e-5)
    assert checkpoints_load_with_weights_only(tmp_path) >= 1


def test_the_auxiliary_head_runs_in_training_only_and_not_at_all_when_unweighted():
    model = TorchvisionSegmenter("deeplabv3", "mobilenet_v3_small", num_classes=3, in_channels=1)
    logits, aux = model.train().segment(torch.randn(2, 1, 40, 48))
    assert logits.shape == aux.shape == (2, 3, 40, 48)
    assert model.eval().segment(torch.randn(2, 1, 40, 48))[1] is None
    assert TorchvisionSegmenter("fcn", "resnet18", num_classes=3, aux_weight=0).aux_classifier is None
    with pytest.raises(ConfigError, match="aux_weight must be 0 for lraspp"):
        TorchvisionSegmenter("lraspp", "mobilenet_v3_small", aux_weight=0.5)
