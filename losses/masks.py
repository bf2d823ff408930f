"""Dense segmentation losses: ``forward(logits [N,C,H,W], target [N,H,W])``."""
