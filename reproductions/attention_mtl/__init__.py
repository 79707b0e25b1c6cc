"""Attention pooling, multi-task heads and calibrated intervals on EfficientNet-Lite0: this kit's method, not a paper."""
