"""Variational autoencoder: one ``loss`` slot of kind elbo; reports the negative ELBO in nats per image.

The model is any module with ``encode(x) -> (mu, logvar)``, ``decode(z) -> recon_logits`` and
``latent_dim`` (``recipes.models.vae.VAE``). It sees pixels in [0, 1] (binarised by default), not the
normalised images the classifiers see, because the Bernoulli likelihood is defined on them. At test it also
reports the importance-weighted bound of Burda et al. 2016 (``iwae_samples`` k; k = 1 is the ELBO, and it
tightens towards log p(x) as k grows) and the negative ELBO of the training split, whose gap to the test's
says how much the model overfits.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torchvision
from torch import Tensor, nn
from torchmetrics import MeanMetric

from losses.errors import check, check_integer, check_number
from recipes.base import OptimizerFactory, SchedulerFactory, Task
from recipes.models.vae import reparameterize

STAGES = ("val", "test")
REPORTED = ("nelbo", "recon", "kl")


def log_importance_weights(model: nn.Module, nll: Any, x: Tensor, samples: int) -> Tensor:
    """``log p(x|z) + log p(z) - log q(z|x)`` for ``samples`` draws z ~ q(z|x) per image: ``[samples, N]``."""
    mu, logvar = model.encode(x)
    mu, std = mu.float(), (0.5 * logvar.float()).exp()
    z = mu + std * torch.randn(samples, *mu.shape, device=mu.device, dtype=mu.dtype)
    normal = torch.distributions.Normal
    log_q = normal(mu, std).log_prob(z).sum(-1)
    log_prior = normal(torch.zeros_like(mu), torch.ones_like(std)).log_prob(z).sum(-1)
    recon = model.decode(z.flatten(0, 1))
    log_px = -nll(recon, x.repeat(samples, *([1] * (x.ndim - 1)))).view(samples, -1)
    return log_px + log_prior - log_q


def importance_weighted_bound(model: nn.Module, nll: Any, x: Tensor, samples: int, chunk: int) -> Tensor:
    """``log (1/k) sum_k w_k`` per image (Burda et al. 2016), the k samples drawn ``chunk`` at a time to bound memory."""
    total = torch.full((len(x),), -math.inf, device=x.device)
    for start in range(0, samples, chunk):
        weights = log_importance_weights(model, nll, x, min(chunk, samples - start))
        total = torch.logaddexp(total, weights.logsumexp(0))
    return total - math.log(samples)


class VAETask(Task):
    """Fit a VAE by its ELBO (any elbo-kind loss); log reconstructions, prior samples and a 2-D traversal."""

    slots: ClassVar[dict[str, tuple[str, ...]]] = {"loss": ("elbo",)}
    batch = "images+labels"
    model_outputs = {"model": "encode/decode"}
    val_metrics = ("loss", "loss_reconstruction", "loss_kl", "nelbo", "recon", "kl")

    def __init__(
        self,
        model: nn.Module,
        losses: dict[str, nn.Module],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        kl_warmup_epochs: float = 0.0,
        binarize: bool = True,
        grid_size: int = 8,
        traversal_steps: int = 15,
        iwae_samples: int = 0,
        iwae_chunk: int = 100,
    ) -> None:
        super().__init__(model, losses, optimizer, scheduler)
        owner = self.owner()
        check_number(owner, "kl_warmup_epochs", kl_warmup_epochs, low=0)
        check_integer(owner, "grid_size", grid_size, low=2)
        check_integer(owner, "traversal_steps", traversal_steps, low=2)
        self.iwae_samples = check_integer(owner, "iwae_samples", iwae_samples, low=0)
        self.iwae_chunk = check_integer(owner, "iwae_chunk", iwae_chunk, low=1)
        codes = all(callable(getattr(model, method, None)) for method in ("encode", "decode"))
        check(owner, codes, "model must have encode() and decode(), e.g. model=vae", type(model).__name__)
        self.kl_warmup_epochs, self.binarize = float(kl_warmup_epochs), bool(binarize)
        self.grid_size, self.traversal_steps = int(grid_size), int(traversal_steps)
        # nats per image, averaged over every image of the epoch (weighted by batch size)
        self.metrics = nn.ModuleDict({f"{stage}_{name}": MeanMetric() for stage in STAGES for name in REPORTED})
        self.test_niwae, self.train_nelbo = MeanMetric(), MeanMetric()

    # ----- the recipe -------------------------------------------------------------------------
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.model(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x = self.pixels(batch[0])
        mu, logvar = self.model.encode(x)
        recon_logits = self.model.decode(reparameterize(mu, logvar))
        kl_weight = self.kl_weight(batch_idx)
        loss = self.losses["loss"](recon_logits, x, mu, logvar, kl_weight=kl_weight)
        self.log_loss("train", "loss", loss, batch_size=len(x))
        if self.step_logs_due():  # a per-step log call costs Lightning time even for a constant
            self.log_step({"train/kl_weight": kl_weight})
        return loss

    def evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        """The negative ELBO (one posterior sample per image, full KL weight) and its two terms."""
        x = self.pixels(batch[0])
        recon_logits, mu, logvar = self(x)
        elbo = self.losses["loss"]
        self.log_loss(stage, "loss", elbo(recon_logits, x, mu, logvar), batch_size=len(x))
        recon, kl = elbo.terms["reconstruction"], elbo.terms["kl"]
        for name, value in (("nelbo", recon + kl), ("recon", recon), ("kl", kl)):
            metric = self.metrics[f"{stage}_{name}"]
            metric.update(value, len(x))
            self.log(f"{stage}/{name}", metric, on_epoch=True, prog_bar=stage == "val" and name == "nelbo")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.evaluate(batch, "test")
        if self.iwae_samples:
            x = self.pixels(batch[0])
            nll = self.losses["loss"].reconstruction_nll
            bound = importance_weighted_bound(self.model, nll, x, self.iwae_samples, self.iwae_chunk)
            self.test_niwae.update(-bound, len(x))
            self.log("test/niwae", self.test_niwae, on_epoch=True)

    def on_test_epoch_start(self) -> None:
        """The negative ELBO of the training split (no augmentation, weights under test): the train side of the gap."""
        dm = self.trainer.datamodule
        if dm is None:
            return
        elbo = self.losses["loss"]
        with torch.no_grad():
            for batch in dm.train_dataloader():
                images = dm.on_after_batch_transfer(tuple(t.to(self.device) for t in batch), 0)[0]
                x = self.pixels(images)
                recon_logits, mu, logvar = self(x)
                elbo(recon_logits, x, mu, logvar)
                self.train_nelbo.update(elbo.terms["reconstruction"] + elbo.terms["kl"], len(x))

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.log_images("val")

    def on_test_epoch_end(self) -> None:
        """Also the training split's negative ELBO and the gap test - train (nats per image; > 0: overfitting)."""
        if self.train_nelbo.update_count:
            train_nelbo = self.train_nelbo.compute()
            self.log("test/train_nelbo", train_nelbo)
            self.log("test/nelbo_gap", self.metrics["test_nelbo"].compute() - train_nelbo)
            self.train_nelbo.reset()
        self.log_images("test")

    # ----- helpers ----------------------------------------------------------------------------
    def pixels(self, images: Tensor) -> Tensor:
        """Undo the datamodule's mean/std normalisation: pixels in [0, 1], binarised at 0.5 when asked."""
        trainer = self.attached_trainer()
        dm = trainer.datamodule if trainer is not None else None
        mean, std = getattr(dm, "mean", None), getattr(dm, "std", None)
        if mean is not None and std is not None:
            images = images * std.to(images) + mean.to(images)
        x = images.clamp(0, 1)
        return (x > 0.5).to(x.dtype) if self.binarize else x

    def kl_weight(self, batch_idx: int) -> float:
        """KL warm-up: the weight rises linearly from 0 to 1 over ``kl_warmup_epochs``, step by step."""
        if self.kl_warmup_epochs <= 0:
            return 1.0
        progress = self.current_epoch + batch_idx / max(self.trainer.num_training_batches, 1)
        return min(1.0, progress / self.kl_warmup_epochs)

    def decoder_mean(self, recon_logits: Tensor) -> Tensor:
        mean = getattr(self.losses["loss"], "decoder_mean", torch.sigmoid)
        return mean(recon_logits).clamp(0, 1)

    @torch.no_grad()
    def log_images(self, stage: str) -> None:
        """Data above reconstructions, samples from the prior, and (latent_dim 2) the decoded latent plane."""
        n = self.grid_size
        x = self.pixels(self.examples(stage, n * (n // 2))[0])
        recon = self.decoder_mean(self.model.decode(self.model.encode(x)[0]))
        rows = [part for i in range(0, len(x), n) for part in (x[i : i + n], recon[i : i + n])]
        self.log_image(
            f"{stage}/reconstructions",
            torchvision.utils.make_grid(torch.cat(rows), nrow=n, pad_value=1.0),
            caption="odd rows: test images; even rows: their reconstructions (decoder mean at z = mu)",
        )
        latent_dim = self.model.latent_dim
        z = torch.randn(n * n, latent_dim, generator=torch.Generator().manual_seed(0)).to(self.device)
        samples = self.decoder_mean(self.model.decode(z))
        self.log_image(
            f"{stage}/samples", torchvision.utils.make_grid(samples, nrow=n, pad_value=1.0), caption="decoder mean at z ~ N(0, I)"
        )
        if latent_dim == 2:
            self.log_image(
                f"{stage}/latent_traversal",
                torchvision.utils.make_grid(self.traversal(), nrow=self.traversal_steps, pad_value=1.0),
                caption="decoder mean over the 2-D latent plane, at the 5%..95% quantiles of N(0, 1) on each axis",
            )

    def traversal(self) -> Tensor:
        """Decoded images on a grid of latent points spaced by the prior's quantiles (Kingma & Welling 2014, Fig. 4)."""
        steps = self.traversal_steps
        values = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, steps))
        z2, z1 = torch.meshgrid(values.flip(0), values, indexing="ij")  # z2 grows upward, z1 rightward
        z = torch.stack([z1.flatten(), z2.flatten()], dim=1).to(self.device)
        return self.decoder_mean(self.model.decode(z))
