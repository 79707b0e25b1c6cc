"""The iglovikov18 registration canvas at a config's scale: sizes, key points and region boxes.

Plain arithmetic (NumPy only), so that the networks can be built from a config on a machine
without TensorFlow (benchmarks/train_step.py with KERAS_BACKEND=jax); `preprocessing` re-exports it.
"""
from __future__ import annotations

import math

import numpy as np


def _round(v) -> int:
    return int(math.floor(float(v) + 0.5))


def canvas_scale(config) -> float:
    """Canvas pixels per full-scale canvas pixel: data.image_size / registration.canvas height."""
    return float(config.data.image_size) / float(config.registration.canvas[0])


def canvas_hw(config) -> tuple[int, int]:
    """(height, width) of the canvas at this config's scale."""
    s = canvas_scale(config)
    h, w = config.registration.canvas
    return _round(h * s), _round(w * s)


def canvas_keypoints(config) -> np.ndarray:
    """[3, 2] (x, y) canvas pixels where the three key points land, at this config's scale."""
    return np.asarray(config.registration.keypoints, np.float32) * np.float32(canvas_scale(config))


def region_box(config, region: str) -> tuple[int, int, int, int]:
    """(y0, x0, height, width) of a region on the canvas at this config's scale."""
    if region not in config.regions:
        raise ValueError(f"Unknown region; expected one of {sorted(config.regions)}. Received: region={region!r}")
    s = canvas_scale(config)
    y0, x0, y1, x1 = (_round(v * s) for v in config.regions[region])
    hc, wc = canvas_hw(config)
    if not (0 <= y0 < y1 <= hc and 0 <= x0 < x1 <= wc):
        raise ValueError(f"Region {region} {config.regions[region]} does not fit the canvas {config.registration.canvas}")
    return y0, x0, y1 - y0, x1 - x0
