"""The SimCLR recipe: batched views, frozen-feature evaluation, the gather flag, and a short run end to end."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import losses
from losses import ConfigError
from recipes.data.views import ViewAugment, colour_jitter, gaussian_blur, resized_crop_and_rotate
from recipes.models import ConvNet
from recipes.simclr import SimCLRTask, first_per_class, fit_linear_probe, knn_predict
from train import train


def digits(n: int = 6) -> torch.Tensor:
    """Normalised-looking images: background -0.4, a bright stroke in the middle."""
    images = torch.full((n, 1, 28, 28), -0.4)
    images[:, :, 8:20, 12:16] = 2.5
    return images


def test_identity_crop_without_rotation_returns_the_images():
    images = torch.randn(4, 3, 28, 28)
    out = resized_crop_and_rotate(images, scale=(1.0, 1.0), ratio=(1.0, 1.0), degrees=0.0)
    torch.testing.assert_close(out, images, atol=1e-4, rtol=1e-5)  # float32 round-off of the sampling grid


def test_crop_zooms_in_and_fills_with_background():
    images = digits()
    out = resized_crop_and_rotate(images, scale=(0.25, 0.25), ratio=(1.0, 1.0), degrees=30.0)
    assert out.shape == images.shape
    assert (out > 2.0).float().mean() > (images > 2.0).float().mean()  # the stroke fills more of a half-size window
    assert out.min() >= -0.4 - 1e-5 and out.max() <= 2.5 + 1e-5  # bilinear: no values outside the input's range


def test_blur_keeps_constant_images_and_the_mean_of_each_image():
    images = torch.randn(3, 1, 28, 28)
    blurred = gaussian_blur(images, torch.tensor([0.5, 1.0, 2.0]))
    torch.testing.assert_close(gaussian_blur(torch.ones(2, 1, 8, 8), torch.tensor([1.0, 2.0])), torch.ones(2, 1, 8, 8))
    assert (blurred.std((1, 2, 3)) < images.std((1, 2, 3))).all()
    torch.testing.assert_close(blurred.mean((1, 2, 3)), images.mean((1, 2, 3)), atol=0.05, rtol=0)


def test_colour_jitter_changes_saturation_only_with_three_channels():
    grey = torch.randn(4, 1, 8, 8)
    assert colour_jitter(grey, 0.4).shape == grey.shape
    colour = torch.randn(4, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    assert not torch.allclose(colour_jitter(colour, 0.4, g), colour)


def test_two_calls_give_two_different_views_of_the_same_size_and_a_generator_repeats_them():
    augment = ViewAugment(jitter=0.4)
    images = digits()
    v1, v2 = augment(images), augment(images)
    assert v1.shape == v2.shape == images.shape and torch.isfinite(v1).all()
    assert not torch.allclose(v1, v2)
    again = [augment(images, generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    torch.testing.assert_close(again[0], again[1])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"crop_scale": [0.0, 1.0]}, "crop_scale must be"),
        ({"degrees": -5}, "degrees must be in"),
        ({"blur_p": 1.5}, "blur_p must be a probability"),
        ({"noise_std": -0.1}, "noise_std must be finite and >= 0"),
        ({"noise_std": float("inf")}, "noise_std must be finite and >= 0"),  # every view would be NaN
        ({"blur_sigma": [0.1, float("inf")]}, "blur_sigma must be finite"),
        ({"crop_ratio": [0.5, float("inf")]}, "crop_ratio must be finite"),
    ],
)
def test_bad_augmentation_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=f"task.augment: {message}"):
        ViewAugment(**kwargs)


def test_knn_votes_by_similarity():
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    scores = knn_predict(torch.tensor([[1.0, 0.05], [0.05, 1.0]]), bank, labels, num_classes=2, k=1, temperature=0.1)
    assert scores.argmax(1).tolist() == [0, 1]
    scores = knn_predict(torch.tensor([[0.6, 0.8]]), bank, labels, num_classes=2, k=3, temperature=1.0)
    s = torch.nn.functional.cosine_similarity(torch.tensor([[0.6, 0.8]]), bank)
    torch.testing.assert_close(scores[0], torch.stack([s[:2].exp().sum(), s[2].exp()]))


def test_first_per_class_keeps_the_first_k_rows_of_each_class():
    labels = torch.tensor([2, 0, 2, 1, 0, 2, 0])
    assert first_per_class(labels, 2).tolist() == [0, 1, 2, 3, 4]
    assert first_per_class(labels, 1).tolist() == [0, 1, 3]


def test_the_random_encoder_is_a_fresh_draw_and_leaves_the_trained_one_alone():
    task = make_task()
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    fresh, again = task.random_encoder(), task.random_encoder()
    for key, value in task.model.state_dict().items():
        torch.testing.assert_close(value, before[key])
    weights = [k for k, v in before.items() if v.dtype.is_floating_point and v.dim() > 1]
    assert any(not torch.equal(fresh.state_dict()[k], before[k]) for k in weights)
    for key in weights:
        torch.testing.assert_close(fresh.state_dict()[key], again.state_dict()[key])  # seeded: the same draw


def test_linear_probe_separates_linearly_separable_features():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (300,), generator=g)
    features = torch.randn(300, 8, generator=g) + 4 * nn.functional.one_hot(labels, 8).float()
    probe = fit_linear_probe(features, labels, num_classes=3, steps=50, weight_decay=1e-4)
    assert (probe(features).argmax(1) == labels).float().mean() > 0.98


class SpyLoss(losses.Loss):
    kind = "views"

    def forward(self, z1, z2, gather=False):
        self.gather_seen = gather
        return (z1 - z2).pow(2).mean()


def make_task(**kwargs) -> SimCLRTask:
    optimizer = torch.optim.SGD
    return SimCLRTask(ConvNet(num_outputs=0, widths=(4, 8)), {"loss": SpyLoss()}, optimizer, **kwargs)


@pytest.mark.parametrize("gather", [True, False])
def test_the_task_passes_its_gather_flag_to_the_loss(gather):
    task = make_task(gather=gather, projection_dim=8)
    loss, features, _ = task.views_loss(digits(4))
    assert task.losses["loss"].gather_seen is gather
    assert features.shape == (4, 8) and loss.requires_grad


def test_a_model_with_a_classifier_head_is_refused():
    with pytest.raises(ConfigError, match="model.num_outputs=0"):
        SimCLRTask(ConvNet(num_outputs=10, widths=(4, 8)), {"loss": SpyLoss()}, torch.optim.SGD)


def test_simclr_refuses_a_loss_of_another_kind(make_config):
    from recipes.run.checks import check_config

    with pytest.raises(ConfigError, match="slot 'loss' of task 'simclr' takes kind 'views'"):
        check_config(make_config("task=simclr", "loss=triplet"))


@pytest.mark.parametrize("loss", ["nt_xent", "info_nce"])
def test_a_short_run_gives_features_that_classify_above_chance(make_config, tmp_path, loss):
    cfg = make_config(
        "task=simclr",
        f"loss={loss}",
        "logger=csv",
        "model.widths=[8,16]",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=8",
        "trainer.limit_val_batches=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "data.batch_size=64",
        "task.eval_train_samples=1000",
        "task.probe_steps=30",
    )
    metrics = train(cfg)
    for key in ("test/knn_acc", "test/probe_acc", "test/online_acc", "test/loss", "val/knn_acc"):
        assert math.isfinite(metrics[key]), key
    assert metrics["test/knn_acc"] > 0.3  # chance is 0.1
    assert metrics["test/probe_acc"] > 0.3
    for baseline in ("", "pixel_", "random_"):  # the reference rows are scored like the trained encoder
        for score in ("knn_acc", "probe_acc", "probe10_acc"):
            assert 0.1 < metrics[f"test/{baseline}{score}"] <= 1.0, baseline + score
    assert metrics["test/pixel_probe_acc"] > metrics["test/pixel_probe10_acc"]  # 1,000 labels beat 100
    assert (tmp_path / "images" / "train_views.png").exists()


def test_the_random_encoder_follows_random_seed_so_seeds_score_different_draws():
    first, second = make_task(random_seed=0).random_encoder(), make_task(random_seed=1).random_encoder()
    again = make_task(random_seed=1).random_encoder()
    weights = [k for k, v in first.state_dict().items() if v.dtype.is_floating_point and v.dim() > 1]
    assert any(not torch.equal(first.state_dict()[k], second.state_dict()[k]) for k in weights)
    assert all(torch.equal(second.state_dict()[k], again.state_dict()[k]) for k in weights)


def test_the_supervised_copy_starts_from_the_encoder_and_learns_only_from_its_own_loss():
    task = make_task(supervised=True, projection_dim=8)
    start = [p.clone() for p in task.supervised[0].parameters()]
    assert all(torch.equal(a, b) for a, b in zip(start, task.model.parameters()))  # the same initial weights
    images, labels = digits(8), torch.arange(8) % 10
    loss = task.training_step((images, labels), 0)
    loss.backward()
    head_grad = task.supervised[1].weight.grad
    assert head_grad is not None and head_grad.abs().sum() > 0  # cross-entropy reaches the supervised copy
    assert task.projector[0].weight.grad is not None


def test_a_supervised_run_reports_the_upper_bound_scored_like_the_encoder(smoke_config):
    from tests.helpers.sizes import TASK_TINY

    metrics = train(smoke_config("task=simclr", *TASK_TINY["simclr"], "task.supervised=true", "task.baselines=false"))
    for score in ("knn_acc", "probe_acc", "probe10_acc"):
        assert 0 <= metrics[f"test/supervised_{score}"] <= 1, score
    assert "test/random_knn_acc" not in metrics
