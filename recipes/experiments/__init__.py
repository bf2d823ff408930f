"""Experiments that are not training runs (simulations), called through a config's ``run`` node."""
