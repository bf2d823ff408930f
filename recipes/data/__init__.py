"""Datamodules: the embedded mnist5k, torchvision datasets from disk, and generated data."""
