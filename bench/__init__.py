"""Benchmarks: the framework against plain PyTorch, measured in the same process."""
