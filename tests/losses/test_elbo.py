"""The ELBO: nats per image summed over pixels and latents, the closed-form KL, its terms and its guards."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

import losses
from losses import ConfigError


def outputs(n: int = 5, latent: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    recon = torch.randn(n, 1, 28, 28, generator=g, dtype=torch.float64)
    x = (torch.rand(n, 1, 28, 28, generator=g, dtype=torch.float64) > 0.7).double()
    mu, logvar = torch.randn(2, n, latent, generator=g, dtype=torch.float64)
    return recon, x, mu, logvar


def test_uninformative_decoder_and_prior_posterior_cost_784_log_2_nats_per_image():
    recon, x, mu, logvar = outputs()
    value = losses.build("elbo")(torch.zeros_like(recon), x, torch.zeros_like(mu), torch.zeros_like(logvar))
    assert value.item() == pytest.approx(784 * math.log(2))  # summed over pixels, not averaged


def test_kl_term_is_the_closed_form_of_torch_distributions():
    recon, x, mu, logvar = outputs()
    loss = losses.build("elbo")
    loss(recon, x, mu, logvar)
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1).mean()
    torch.testing.assert_close(loss.terms["kl"], expected)


def test_terms_add_up_to_the_loss_and_are_detached():
    recon, x, mu, logvar = outputs()
    mu.requires_grad_(True)
    loss = losses.build("elbo")
    value = loss(recon, x, mu, logvar)
    torch.testing.assert_close(value, loss.terms["reconstruction"] + loss.terms["kl"])
    assert not any(t.requires_grad for t in loss.terms.values())


def test_beta_and_kl_weight_scale_only_the_kl_term():
    recon, x, mu, logvar = outputs()
    plain = losses.build("elbo")
    plain(recon, x, mu, logvar)
    recon_term, kl_term = plain.terms["reconstruction"], plain.terms["kl"]
    torch.testing.assert_close(losses.build("elbo", beta=4.0)(recon, x, mu, logvar), recon_term + 4 * kl_term)
    torch.testing.assert_close(losses.build("elbo", beta=4.0)(recon, x, mu, logvar, kl_weight=0.25), recon_term + kl_term)
    torch.testing.assert_close(plain(recon, x, mu, logvar, kl_weight=0.0), recon_term)


def test_reductions_are_per_sample_values_their_mean_and_their_sum():
    recon, x, mu, logvar = outputs()
    per_sample = losses.build("elbo", reduction="none")(recon, x, mu, logvar)
    assert per_sample.shape == (5,)
    torch.testing.assert_close(losses.build("elbo")(recon, x, mu, logvar), per_sample.mean())
    torch.testing.assert_close(losses.build("elbo", reduction="sum")(recon, x, mu, logvar), per_sample.sum())


def test_gaussian_reconstruction_is_the_negative_log_density_with_fixed_sigma():
    recon, x, mu, logvar = outputs()
    loss = losses.build("elbo", reconstruction="gaussian", sigma=0.1)
    loss(recon, x, mu, logvar)
    expected = -Normal(recon, 0.1).log_prob(x).flatten(1).sum(1).mean()
    torch.testing.assert_close(loss.terms["reconstruction"], expected)
    torch.testing.assert_close(loss.decoder_mean(recon), recon)
    torch.testing.assert_close(losses.build("elbo").decoder_mean(recon), torch.sigmoid(recon))


def test_normalised_images_passed_to_a_bernoulli_likelihood_are_an_error():
    recon, x, mu, logvar = outputs()
    normalised = (x - 0.13) / 0.31
    with pytest.raises(ValueError, match=r"loss 'elbo': x must be data in \[0, 1\] for reconstruction='bernoulli'"):
        losses.build("elbo")(recon, normalised, mu, logvar)


def test_sigmoid_probabilities_passed_as_logits_warn():
    recon, x, mu, logvar = outputs()
    with pytest.warns(UserWarning, match="not sigmoid probabilities"):
        losses.build("elbo")(torch.sigmoid(recon), x, mu, logvar)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda r, x, m, v: (r[:, :, :27], x, m, v), "recon_logits must be x's shape (5, 1, 28, 28)"),
        (lambda r, x, m, v: (r, x, m[:4], v), "mu must be [N, latent] with N = 5"),
        (lambda r, x, m, v: (r, x, m, v[:, :3]), "logvar must be mu's shape (5, 4)"),
        (lambda r, x, m, v: (r, x.long(), m, v), "x must be a floating-point tensor"),
    ],
)
def test_mismatched_inputs_are_errors_that_name_the_argument(change, message):
    with pytest.raises(ValueError) as err:
        losses.build("elbo")(*change(*outputs()))
    assert message in str(err.value)


@pytest.mark.parametrize(
    "hparams,message",
    [
        ({"beta": -1}, "loss 'elbo': beta must be >= 0 (got -1)"),
        ({"reconstruction": "laplace"}, "reconstruction must be one of bernoulli, gaussian (got 'laplace')"),
        ({"sigma": 0}, "sigma must be > 0 (got 0)"),
        ({"reduction": "batchmean"}, "reduction must be one of none, mean, sum"),
    ],
)
def test_bad_hyperparameters_are_config_errors(hparams, message):
    with pytest.raises(ConfigError) as err:
        losses.build("elbo", **hparams)
    assert message in str(err.value)
