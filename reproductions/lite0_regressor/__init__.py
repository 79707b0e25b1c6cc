"""EfficientNet-Lite0 bone-age regressor with a sex input: this kit's transfer-learning baseline (not a paper)."""
