"""Regression losses: ``forward(pred, target)`` (plus the head outputs a loss asks for, e.g. a variance)."""
