"""The VAE recipe: trains end to end on CPU, its negative ELBO falls, and it writes its image grids."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from recipes.models.vae import VAE, reparameterize
from train import train

TINY = ("model.hidden=[64]", "model.latent_dim=2")


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_smoke_fit_reports_nelbo_as_reconstruction_plus_kl_and_writes_images(smoke_config, tmp_path):
    metrics = train(smoke_config("task=vae", *TINY))
    for key in ("test/nelbo", "test/recon", "test/kl", "val/nelbo"):
        assert math.isfinite(metrics[key]), key
    assert metrics["test/nelbo"] == pytest.approx(metrics["test/recon"] + metrics["test/kl"], rel=1e-5)
    assert metrics["test/nelbo"] == pytest.approx(metrics["test/loss"], rel=1e-5)  # beta = 1: the loss is the bound
    assert metrics["test/kl"] >= 0
    images = tmp_path / "images"
    for name in ("reconstructions", "samples", "latent_traversal"):
        for stage in ("val", "test"):
            assert (images / f"{stage}_{name}.png").stat().st_size > 0, name


def test_no_latent_traversal_unless_the_latent_space_is_two_dimensional(smoke_config, tmp_path):
    train(smoke_config("task=vae", "model.hidden=[64]", "model.latent_dim=3", "trainer.limit_train_batches=1"))
    assert (tmp_path / "images" / "test_samples.png").exists()
    assert not (tmp_path / "images" / "test_latent_traversal.png").exists()


def test_negative_elbo_falls_over_a_short_run(smoke_config, tmp_path):
    metrics = train(smoke_config("task=vae", *TINY, "trainer.max_epochs=3", "trainer.limit_train_batches=10"))
    by_epoch = {int(r["epoch"]): float(r["val/nelbo"]) for r in read_metrics(tmp_path) if r.get("val/nelbo")}
    assert by_epoch[2] < by_epoch[0] < 784 * math.log(2)  # below a decoder that predicts 1/2 for every pixel
    assert metrics["test/nelbo"] < by_epoch[0]


def test_kl_warmup_raises_the_kl_weight_linearly_to_one(smoke_config, tmp_path):
    train(smoke_config("task=vae", *TINY, "trainer.max_epochs=2", "task.kl_warmup_epochs=2"))
    weights = [float(r["train/kl_weight"]) for r in read_metrics(tmp_path) if r.get("train/kl_weight")]
    assert weights[0] == 0.0
    steps = torch.tensor(weights).diff()
    assert torch.allclose(steps, torch.full_like(steps, 1 / 8))  # 4 batches per epoch, 2 epochs of warm-up
    assert max(weights) < 1.0


def test_vae_sees_binarised_pixels_not_normalised_images(smoke_config):
    from hydra.utils import instantiate

    from recipes.run.checks import check_config

    cfg = smoke_config("task=vae", *TINY)
    task = instantiate(cfg.task, model=instantiate(cfg.model), losses=check_config(cfg))
    dm = instantiate(cfg.data)
    dm.setup("fit")
    task.trainer = type("T", (), {"datamodule": dm})()  # pixels() only reads the datamodule
    raw = dm.splits["train"][0][:16]
    x = task.pixels(dm.normalize(raw))
    assert torch.equal(x, (raw.float() / 255 > 0.5).float())


def test_reparameterised_sample_has_the_posterior_moments_and_gradients():
    torch.manual_seed(0)
    mu = torch.tensor([[1.0, -2.0]]).repeat(20000, 1).requires_grad_(True)
    logvar = torch.log(torch.tensor([[0.25, 4.0]])).repeat(20000, 1).requires_grad_(True)
    z = reparameterize(mu, logvar)
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.05, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([0.5, 2.0]), atol=0.05, rtol=0)
    z.sum().backward()
    assert torch.equal(mu.grad, torch.ones_like(mu))
    torch.testing.assert_close(logvar.grad, 0.5 * (z - mu).detach())  # z = mu + exp(logvar / 2) eps


def test_vae_model_shapes():
    model = VAE(in_channels=1, image_size=28, latent_dim=5, hidden=[32, 16])
    recon, mu, logvar = model(torch.rand(3, 1, 28, 28))
    assert recon.shape == (3, 1, 28, 28) and mu.shape == logvar.shape == (3, 5)
    assert model.decode(torch.zeros(4, 5)).shape == (4, 1, 28, 28)


def tiny_vae_and_digits() -> tuple[VAE, torch.Tensor]:
    torch.manual_seed(0)
    model = VAE(image_size=4, latent_dim=2, hidden=[8]).eval()
    x = (torch.rand(5, 1, 4, 4) > 0.5).float()
    return model, x


def test_importance_weighted_bound_with_one_sample_is_the_elbo_estimate_of_that_sample():
    import losses
    from recipes.vae import importance_weighted_bound

    model, x = tiny_vae_and_digits()
    nll = losses.build("elbo").reconstruction_nll
    torch.manual_seed(1)
    with torch.no_grad():
        bound = importance_weighted_bound(model, nll, x, samples=1, chunk=1)
    # by hand: the same z (same seed), log p(x|z) + log N(z; 0, I) - log N(z; mu, sigma^2), over pixels and latents
    torch.manual_seed(1)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        sigma = (0.5 * logvar).exp()
        z = mu + sigma * torch.randn(1, *mu.shape)[0]
        p = torch.sigmoid(model.decode(z))
        log_px = (x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)
        log_prior = (-0.5 * z.square() - 0.5 * math.log(2 * math.pi)).sum(1)
        log_q = (-0.5 * ((z - mu) / sigma).square() - sigma.log() - 0.5 * math.log(2 * math.pi)).sum(1)
    torch.testing.assert_close(bound, log_px + log_prior - log_q, rtol=1e-5, atol=1e-4)


def test_importance_weighted_bound_is_above_the_elbo_on_average_and_chunks_do_not_change_it():
    import losses
    from recipes.vae import importance_weighted_bound, log_importance_weights

    model, x = tiny_vae_and_digits()
    nll = losses.build("elbo").reconstruction_nll
    with torch.no_grad():
        elbo = log_importance_weights(model, nll, x, samples=4000).mean(0)  # the ELBO, estimated closely
        bound = importance_weighted_bound(model, nll, x, samples=1000, chunk=64)
        again = importance_weighted_bound(model, nll, x, samples=1000, chunk=1000)
    assert (bound > elbo).all()  # Burda et al. 2016, Theorem 1: the bound tightens with k
    torch.testing.assert_close(bound, again, rtol=0, atol=0.05)  # other draws, the same bound within noise


def test_test_reports_the_importance_weighted_bound_and_the_train_test_gap(smoke_config):
    metrics = train(smoke_config("task=vae", *TINY, "task.iwae_samples=20", "task.iwae_chunk=7"))
    assert math.isfinite(metrics["test/niwae"])
    assert metrics["test/niwae"] < metrics["test/nelbo"] + 1.0  # a tighter bound, up to the ELBO's sampling noise
    assert metrics["test/nelbo_gap"] == pytest.approx(metrics["test/nelbo"] - metrics["test/train_nelbo"], rel=1e-5)
