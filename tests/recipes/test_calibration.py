"""Mean confidence and post-hoc temperature scaling in the classification recipe."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from recipes.classification import LOG_TEMPERATURE_BOUND, fit_temperature
from recipes.metrics import MeanConfidence, NegativeLogLikelihood
from train import train

TINY = ("model=mlp", "model.hidden=[32]")


def calibrated_toy(n: int = 4000, classes: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels drawn from softmax(logits): calibrated by construction, so the best T is 1."""
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, classes, generator=generator)
    labels = torch.multinomial(logits.softmax(1), 1, generator=generator).squeeze(1)
    return logits, labels


@pytest.mark.parametrize("scale", [3.0, 0.5])
def test_fit_temperature_undoes_a_known_over_or_under_confidence(scale):
    logits, labels = calibrated_toy()
    fitted = fit_temperature(scale * logits, labels)
    assert fitted == pytest.approx(scale, rel=0.1)


def test_fitted_temperature_lowers_the_nll_of_an_over_confident_toy():
    logits, labels = calibrated_toy(seed=1)
    overconfident = 4 * logits
    t = fit_temperature(overconfident, labels)
    assert t > 1
    before = F.cross_entropy(overconfident, labels)
    after = F.cross_entropy(overconfident / t, labels)
    assert after < before - 0.1
    for nearby in (0.9 * t, 1.1 * t):  # and it is the minimum, not just an improvement
        assert after <= F.cross_entropy(overconfident / nearby, labels)


def test_fit_temperature_works_on_inference_tensors_and_stays_bounded():
    with torch.inference_mode():
        logits, labels = calibrated_toy(n=200)
        separable = 5 * F.one_hot(labels, 10).float()  # no error: the NLL keeps falling as T -> 0
    t = fit_temperature(separable, labels)
    assert math.exp(-LOG_TEMPERATURE_BOUND) <= t < 1  # sharpened, but finite


def test_mean_confidence_is_the_mean_of_the_largest_probability():
    metric = MeanConfidence()
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4]])
    metric.update(probs, torch.tensor([0, 2]))
    metric.update(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([1]))
    assert float(metric.compute()) == pytest.approx((0.7 + 0.5 + 1.0) / 3)


def test_temperature_scaling_reports_scaled_test_metrics(smoke_config):
    metrics = train(smoke_config(*TINY, "task.temperature_scaling=true"))
    for key in ("val/conf", "test/conf", "test/ece_ts", "test/nll_ts", "test/conf_ts", "test/temperature"):
        assert key in metrics and math.isfinite(metrics[key]), key
    bound = math.exp(LOG_TEMPERATURE_BOUND)
    assert 1 / bound <= metrics["test/temperature"] <= bound
    assert 0 < metrics["test/conf"] <= 1 and 0 < metrics["test/conf_ts"] <= 1


def test_without_temperature_scaling_no_scaled_metrics_appear(smoke_config):
    metrics = train(smoke_config(*TINY))
    assert "test/conf" in metrics
    assert not [key for key in metrics if key.endswith("_ts") or key == "test/temperature"]


def test_nll_is_the_mean_over_samples_not_over_batches_of_unequal_size():
    """A batch of 1 and a batch of 3: the mean of the batch means would weigh the lone sample three times."""
    batches = [
        (torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([1])),
        (torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, -1.0], [3.0, 1.0, 0.0]]), torch.tensor([0, 0, 0])),
    ]
    metric = NegativeLogLikelihood()
    per_sample = []
    for logits, target in batches:
        metric.update(logits, target)
        for row, t in zip(logits.tolist(), target.tolist()):
            per_sample.append(math.log(sum(math.exp(z) for z in row)) - row[t])
    assert float(metric.compute()) == pytest.approx(sum(per_sample) / 4, rel=1e-6)
    assert sum(per_sample) / 4 != pytest.approx((per_sample[0] + sum(per_sample[1:]) / 3) / 2, rel=1e-3)
