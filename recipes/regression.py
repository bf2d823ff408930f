"""Tabular regression: one ``loss`` slot of kind regression; reports MAE, RMSE and interval coverage.

The network's output count follows the head the loss declares (``loss.head``): one number for point losses,
a mean and a variance for ``gaussian_nll``, a log-rate (or a rate) for ``poisson_nll``, one number per ``tau``
for ``quantile``. A ``Head`` turns the raw outputs into what the loss takes, the point prediction that MAE and
RMSE score, and (for ``quantile`` and ``gaussian_nll``) the interval whose empirical coverage is reported.
At test every loss is also scored as a predictive distribution: the Gaussian NLL (nats per row, in the
targets' units as the model sees them) and the coverage of the central 50% and 90% intervals. A Gaussian
head gives its own variance; every other head is read as a homoscedastic Gaussian around its point
prediction, the variance fitted on the validation residuals (the maximum-likelihood value: their mean square).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, MetricCollection

from losses.base import Loss
from losses.errors import ConfigError, check, check_number
from recipes.base import OptimizerFactory, SchedulerFactory, Task, per_stage
from recipes.metrics import IntervalCoverage

CALIBRATION_LEVELS = (0.5, 0.9)  # nominal coverages of the central intervals reported at test
MIN_LOG1P = -15.0  # msle: expm1 of a smaller output rounds to -1 in float32, which msle refuses


class Head:
    """Point losses: one output per row, the prediction itself. Subclasses map outputs for other losses."""

    outputs = 1
    nominal: float | None = None  # the coverage the interval should have; None: no interval
    what = "one prediction"

    def point(self, raw: Tensor) -> Tensor:
        """The point prediction ``[N]`` that MAE and RMSE score."""
        return raw[:, 0]

    def loss(self, loss: nn.Module, raw: Tensor, target: Tensor) -> Tensor:
        return loss(self.point(raw), target)

    def interval(self, raw: Tensor) -> tuple[Tensor, Tensor] | None:
        return None


class Log1pHead(Head):
    """msle: the network outputs ``log(1 + prediction)``, so predictions stay above -1 (and msle is MSE in log space)."""

    what = "log(1 + prediction)"

    def point(self, raw: Tensor) -> Tensor:
        return torch.expm1(raw[:, 0].clamp_min(MIN_LOG1P))


class PoissonHead(Head):
    """poisson_nll: a log-rate with ``log_input`` (the prediction is its exp), else a softplus rate."""

    def __init__(self, log_input: bool) -> None:
        self.log_input = log_input
        self.what = "a log-rate" if log_input else "a rate (softplus)"

    def rate_input(self, raw: Tensor) -> Tensor:
        return raw[:, 0] if self.log_input else F.softplus(raw[:, 0])

    def point(self, raw: Tensor) -> Tensor:
        return raw[:, 0].exp() if self.log_input else F.softplus(raw[:, 0])

    def loss(self, loss: nn.Module, raw: Tensor, target: Tensor) -> Tensor:
        return loss(self.rate_input(raw), target)


class GaussianHead(Head):
    """gaussian_nll: a mean and a variance (softplus of the second output); the interval is mean ± z sd."""

    outputs = 2
    what = "a mean and a variance"

    def __init__(self, level: float) -> None:
        self.nominal = level
        self.z = float(torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor((1 + level) / 2)))

    def variance(self, raw: Tensor) -> Tensor:
        return F.softplus(raw[:, 1])

    def loss(self, loss: nn.Module, raw: Tensor, target: Tensor) -> Tensor:
        return loss(self.point(raw), target, self.variance(raw))

    def interval(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        half = self.z * self.variance(raw).sqrt()
        return self.point(raw) - half, self.point(raw) + half


class HomoscedasticGaussianHead(GaussianHead):
    """gaussian_nll with one variance for every row (``task.homoscedastic``): the network gives the mean only,
    the variance is the softplus of one learned number, the baseline that a heteroscedastic head must beat."""

    outputs = 1
    what = "a mean (the variance is one learned number)"

    def __init__(self, level: float, raw_variance: nn.Parameter) -> None:
        super().__init__(level)
        self.raw_variance = raw_variance

    def variance(self, raw: Tensor) -> Tensor:
        return F.softplus(self.raw_variance).expand(len(raw)).to(raw.dtype)


class QuantileHead(Head):
    """quantile: one output per tau. Outputs are sorted before use (quantiles cannot cross; Chernozhukov et al.

    2010), the point prediction is the quantile nearest the median, and the interval spans the lowest to the
    highest tau (nominal coverage ``tau_max - tau_min``); with one tau it is ``(-inf, q_tau]`` (nominal ``tau``).
    """

    def __init__(self, taus: list[float], multi: bool) -> None:
        self.multi, self.taus = multi, sorted(taus)
        self.outputs = len(taus)
        self.nominal = self.taus[-1] - self.taus[0] if len(taus) > 1 else self.taus[0]
        self.middle = min(range(len(taus)), key=lambda i: abs(self.taus[i] - 0.5))
        self.what = f"one quantile per tau {taus}"

    def sorted_quantiles(self, raw: Tensor) -> Tensor:
        return raw.sort(dim=1).values

    def point(self, raw: Tensor) -> Tensor:
        return self.sorted_quantiles(raw)[:, self.middle]

    def loss(self, loss: nn.Module, raw: Tensor, target: Tensor) -> Tensor:
        return loss(raw if self.multi else raw[:, 0], target)

    def interval(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        q = self.sorted_quantiles(raw)
        if q.shape[1] == 1:
            return torch.full_like(q[:, 0], float("-inf")), q[:, 0]
        return q[:, 0], q[:, -1]


# the head for each value a loss may declare as ``loss.head``, built from the loss and the task's ``interval``
HEADS: dict[str, Callable[[Loss, float], Head]] = {
    "point": lambda loss, interval: Head(),
    "log1p": lambda loss, interval: Log1pHead(),
    "log_rate": lambda loss, interval: PoissonHead(log_input=True),
    "rate": lambda loss, interval: PoissonHead(log_input=False),
    "mean_variance": lambda loss, interval: GaussianHead(interval),
    "quantiles": lambda loss, interval: QuantileHead(list(loss.taus.tolist()), loss.multi),
}


def head_for(loss: Loss, interval: float = 0.9) -> Head:
    """The head ``loss.head`` declares; ``head_for(loss).outputs`` is the number of outputs the model gets."""
    if loss.head not in HEADS:
        raise ConfigError(f"loss '{loss.name}': declares head {loss.head!r}; the regression task has {', '.join(HEADS)}")
    return HEADS[loss.head](loss, interval)


def fit_head(model: nn.Module, loss: nn.Module, head: Head) -> nn.Module:
    """Give a model built with ``num_outputs=0`` (no head) a linear head with as many outputs as ``loss`` needs.

    A model that already has a linear head must have that many outputs; anything else is a ConfigError.
    """
    current = getattr(model, "head", None)
    if isinstance(current, nn.Identity) and isinstance(getattr(model, "feature_dim", None), int):
        model.head = nn.Linear(model.feature_dim, head.outputs)
        return model
    got = getattr(current, "out_features", None)
    if got is not None and got != head.outputs:
        raise ConfigError(
            f"model.num_outputs: loss '{loss.name}' needs {head.outputs} output(s) per row ({head.what}), "
            f"but the model has {got}; set model.num_outputs=0 and the task sizes the head from the loss"
        )
    return model


class RegressionTask(Task):
    """Fit a tabular regressor with any regression loss; MAE and RMSE of the point prediction, and coverage.

    ``interval`` is the central interval of ``gaussian_nll`` whose coverage is reported (0.9: mean ± 1.645 sd);
    ``homoscedastic``: gaussian_nll with one learned variance for all rows instead of a variance per row.
    """

    slots: ClassVar[dict[str, tuple[str, ...]]] = {"loss": ("regression",)}
    batch = "rows+targets"
    model_outputs = {"model": "row outputs"}
    val_metrics = ("loss", "mae", "rmse")

    @classmethod
    def validation_metrics(cls, cfg: Any, losses: Mapping[str, nn.Module]) -> list[str]:
        """Also the interval's coverage for a loss whose head has one, and its width where both ends are finite."""
        head = head_for(losses["loss"])
        interval = [] if head.nominal is None else ["val/coverage"]
        if interval and not (isinstance(head, QuantileHead) and len(head.taus) == 1):  # one tau: (-inf, q]
            interval.append("val/interval_width")
        return [*super().validation_metrics(cfg, losses), *interval]

    def __init__(
        self,
        model: nn.Module,
        losses: dict[str, nn.Module],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        interval: float = 0.9,
        homoscedastic: bool = False,
    ) -> None:
        owner = self.owner()
        check_number(owner, "interval", interval, low=0, high=1, low_open=True, high_open=True)
        head = head_for(losses["loss"], interval)
        check(owner, not homoscedastic or isinstance(head, GaussianHead), "homoscedastic needs loss=gaussian_nll", homoscedastic)
        if homoscedastic:
            raw_variance = nn.Parameter(torch.zeros(1))
            head = HomoscedasticGaussianHead(interval, raw_variance)
        super().__init__(fit_head(model, losses["loss"], head), losses, optimizer, scheduler)
        if homoscedastic:
            self.raw_variance = raw_variance  # a parameter of the task: optimised and saved with the model
        self.head = head
        self.residual_variance = 1.0  # point heads at test: the validation residuals' mean square
        self.test_nll = MeanMetric()
        self.test_calibration = nn.ModuleDict({f"coverage{round(100 * p)}": IntervalCoverage() for p in CALIBRATION_LEVELS})

        def metrics(stage: str) -> MetricCollection:
            return MetricCollection({"mae": MeanAbsoluteError(), "rmse": MeanSquaredError(squared=False)}, prefix=f"{stage}/")

        self.metrics = per_stage(metrics)
        self.coverage, self.width = per_stage(lambda stage: IntervalCoverage()), per_stage(lambda stage: MeanMetric())

    def setup(self, stage: str) -> None:
        """Refuse data whose targets the loss cannot take (``loss.target_need``, e.g. msle's > -1), with the fix."""
        trainer = self.attached_trainer()
        dm = trainer.datamodule if trainer is not None else None
        name, target_need = self.losses["loss"].name, self.losses["loss"].target_need
        if target_need is None or not getattr(dm, "splits", None):
            return
        target = dm.splits["train"][1]
        if not bool(target_need.holds(target).all()):
            raise ConfigError(
                f"loss={name}: needs targets {target_need.need}, but data '{getattr(dm, 'dataset', '?')}' has targets down to "
                f"{float(target.min()):.3g} (target_scaling={getattr(dm, 'target_scaling', '?')}); "
                "use data.target_scaling=scale or none, or data=counts"
            )

    def forward(self, features: Tensor) -> Tensor:
        """Raw outputs ``[N, head.outputs]``; ``self.head`` says what they mean."""
        return self.model(features)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        features, target = batch
        loss = self.head.loss(self.losses["loss"], self(features), target)
        self.log_loss("train", "loss", loss, batch_size=len(target))
        return loss

    def evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        """Loss, MAE and RMSE of the point prediction, and coverage and width of the interval, per epoch."""
        features, target = batch
        raw = self(features)
        self.log_loss(stage, "loss", self.head.loss(self.losses["loss"], raw, target), batch_size=len(target))
        metrics = self.metrics[stage]
        metrics.update(self.head.point(raw).float(), target.float())
        self.log_dict(metrics, on_epoch=True, prog_bar=stage == "val")
        bounds = self.head.interval(raw.float())
        if bounds is not None:
            coverage, width = self.coverage[stage], self.width[stage]
            coverage.update(*bounds, target.float())
            self.log(f"{stage}/coverage", coverage, on_epoch=True)
            if bool(torch.isfinite(bounds[0]).all()):
                width.update(bounds[1] - bounds[0])
                self.log(f"{stage}/interval_width", width, on_epoch=True)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.evaluate(batch, "test")
        features, target = batch
        mean, variance = self.predictive(self(features).float())
        target = target.float()
        nll = 0.5 * (variance.log() + (target - mean).square() / variance + math.log(2 * math.pi))
        self.test_nll.update(nll)
        self.log("test/nll", self.test_nll, on_epoch=True)
        normal = torch.distributions.Normal(0.0, 1.0)
        for level, (name, coverage) in zip(CALIBRATION_LEVELS, self.test_calibration.items()):
            half = float(normal.icdf(torch.tensor((1 + level) / 2))) * variance.sqrt()
            coverage.update(mean - half, mean + half, target)
            self.log(f"test/{name}", coverage, on_epoch=True)

    # ----- the predictive distribution at test: NLL and calibration ---------------------------
    def predictive(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance per row: a Gaussian head's own, else the point prediction and the validation variance."""
        mean = self.head.point(raw)
        if isinstance(self.head, GaussianHead):
            return mean, self.head.variance(raw).clamp_min(getattr(self.losses["loss"], "eps", 1e-6))
        return mean, torch.full_like(mean, self.residual_variance)

    def on_test_start(self) -> None:
        """Fit the homoscedastic variance of a point head on the validation residuals (no test data is looked at)."""
        dm = self.trainer.datamodule
        if isinstance(self.head, GaussianHead) or dm is None:
            return
        squares, count = 0.0, 0
        with torch.no_grad():
            for batch in dm.val_dataloader():
                features, target = dm.on_after_batch_transfer(tuple(t.to(self.device) for t in batch), 0)
                squares += float((target.float() - self.head.point(self(features).float())).square().sum())
                count += len(target)
        self.residual_variance = max(squares / max(count, 1), 1e-12)
