"""The evidence lower bound of a VAE: ``forward(recon_logits, x, mu, logvar)``."""
