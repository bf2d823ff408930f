"""Metric-learning losses on pairs (``forward(emb1, emb2, y)``) and triplets (``forward(anchor, positive, negative)``)."""
