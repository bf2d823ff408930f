"""Box regression losses on xyxy boxes: ``forward(pred [N,4], target [N,4])``."""
