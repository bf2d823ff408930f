"""Contrastive losses on two augmented views of a batch: ``forward(z1, z2)``."""
