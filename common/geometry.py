"""Affine registration by three point pairs, in TensorFlow (inside tf.data) and NumPy (prediction).

Coordinates are (x, y) in pixels with the pixel-centre convention: (0, 0) is the centre of the
top-left pixel, which is what `tf.raw_ops.ImageProjectiveTransformV3` samples and what the
phantoms' key points use (`common/phantoms.py`, `_Canvas.px`).

Three point pairs fix an affine map exactly (six unknowns, six equations). Registering a hand
onto a canvas needs the map from canvas pixels back to image pixels (every canvas pixel looks up
where it comes from), so `warp_affine` takes that inverse map; `affine_from_points(canvas, image)`
gives it directly, without inverting anything.

Example:

    import numpy as np
    from common import geometry
    src = np.array([[10., 5.], [30., 20.], [12., 40.]])   # three points in the image
    dst = np.array([[50., 6.], [76., 42.], [50., 78.]])   # where they must land on the canvas
    canvas_to_image = geometry.affine_from_points(dst, src)
    canvas = geometry.warp_affine(image_hw1, canvas_to_image, (104, 80))
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

INTERPOLATIONS = ("bilinear", "nearest")


def _check_points(points, name):
    shape = getattr(points, "shape", None)
    if shape is not None and len(shape) == 2 and shape[0] is not None and tuple(shape) != (3, 2):
        raise ValueError(f"{name} must be three (x, y) points, shape [3, 2]. Received: shape={tuple(shape)}")


def affine_from_points(src, dst):
    """The 2 x 3 affine matrix A with A @ [x, y, 1] = dst for each of three src points.

    Args:
        src: [3, 2] (x, y) points (NumPy array or tf tensor).
        dst: [3, 2] (x, y) points, in the same order.

    Returns:
        [2, 3] float32, NumPy for NumPy inputs and a tf tensor for tf tensors. Raises ValueError
        (NumPy) when the three src points are (nearly) collinear, which leaves the map undefined;
        inside a graph the result is then non-finite and `warp_affine` yields a blank image.
    """
    _check_points(src, "src")
    _check_points(dst, "dst")
    if isinstance(src, tf.Tensor) or isinstance(dst, tf.Tensor):
        src = tf.cast(src, tf.float32)
        dst = tf.cast(dst, tf.float32)
        m = tf.concat([src, tf.ones([3, 1], tf.float32)], axis=1)      # [3, 3]
        solution = tf.linalg.solve(tf.cast(m, tf.float64), tf.cast(dst, tf.float64))  # [3, 2]
        return tf.cast(tf.transpose(solution), tf.float32)
    src = np.asarray(src, np.float64).reshape(3, 2)
    dst = np.asarray(dst, np.float64).reshape(3, 2)
    m = np.concatenate([src, np.ones((3, 1))], axis=1)
    area = abs(np.linalg.det(m)) / 2.0
    span = max(np.ptp(src, axis=0).max(), 1e-12)
    if area < 1e-6 * span * span:
        raise ValueError(f"The three points are (nearly) collinear, so no affine map is defined. Received: src={src.tolist()}")
    return np.linalg.solve(m, dst).T.astype(np.float32)


def apply_affine(matrix, points):
    """Maps (x, y) points [..., 2] through a [2, 3] affine matrix (NumPy)."""
    matrix = np.asarray(matrix, np.float64)
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix):
    """The inverse of a [2, 3] affine matrix (NumPy)."""
    full = np.vstack([np.asarray(matrix, np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2].astype(np.float32)


def compose_affine(outer, inner):
    """The [2, 3] matrix of `outer(inner(p))` (tf tensors or NumPy arrays)."""
    if isinstance(outer, tf.Tensor) or isinstance(inner, tf.Tensor):
        outer, inner = tf.cast(outer, tf.float32), tf.cast(inner, tf.float32)
        row = tf.constant([[0.0, 0.0, 1.0]])
        return tf.matmul(tf.concat([outer, row], 0), tf.concat([inner, row], 0))[:2]
    row = np.array([[0.0, 0.0, 1.0]])
    return (np.vstack([outer, row]) @ np.vstack([inner, row]))[:2].astype(np.float32)


def warp_affine(image, output_to_input, output_hw, interpolation: str = "bilinear", fill_value: float = 0.0):
    """Resamples `image` onto an output grid of `output_hw` = (height, width) pixels.

    Args:
        image: [H, W, C] tensor (any numeric dtype; returned in the same dtype, rounded for ints).
        output_to_input: [2, 3] affine matrix mapping output (x, y) to input (x, y).
        output_hw: (height, width) of the output, Python ints.
        interpolation: "bilinear" or "nearest" (nearest for masks).
        fill_value: value outside the input image.

    Returns:
        [height, width, C] tensor. Works eagerly and inside tf.data (one TensorFlow op).
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"Unknown interpolation; expected one of {INTERPOLATIONS}. Received: {interpolation!r}")
    height, width = int(output_hw[0]), int(output_hw[1])
    if height < 1 or width < 1:
        raise ValueError(f"output_hw must be positive. Received: output_hw={output_hw}")
    image = tf.convert_to_tensor(image)
    if image.shape.rank != 3:
        raise ValueError(f"Expected one image [H, W, C]. Received: shape={image.shape}")
    dtype = image.dtype
    m = tf.reshape(tf.cast(output_to_input, tf.float32), [6])
    transform = tf.concat([m, tf.zeros([2], tf.float32)], axis=0)[tf.newaxis]   # [1, 8]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(image, tf.float32)[tf.newaxis], transforms=transform,
        output_shape=tf.constant([height, width], tf.int32), fill_value=tf.constant(fill_value, tf.float32),
        interpolation=interpolation.upper(), fill_mode="CONSTANT")[0]
    if dtype.is_integer:
        out = tf.clip_by_value(tf.round(out), dtype.min, dtype.max)
    out = tf.cast(out, dtype)
    out.set_shape([height, width, image.shape[-1]])
    return out


def random_similarity(seed, output_hw, *, shift: float, scale: float, rotate_deg: float):
    """A random similarity transform about the centre of an output grid, as [2, 3] output -> input.

    Like albumentations' ShiftScaleRotate: shift uniform in +-shift of the side, scale uniform in
    1 +- scale, rotation uniform in +-rotate_deg degrees. `seed` is a stateless [2] int seed.
    """
    u = tf.random.stateless_uniform([4], seed=seed, minval=-1.0, maxval=1.0)
    height, width = float(output_hw[0]), float(output_hw[1])
    angle = u[0] * (rotate_deg * np.pi / 180.0)
    s = 1.0 + u[1] * scale
    dx, dy = u[2] * shift * width, u[3] * shift * height
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    cos, sin = tf.cos(angle) / s, tf.sin(angle) / s
    # output -> input: undo the shift, rotate by -angle and scale by 1/s about the centre
    x0, y0 = cx + dx, cy + dy
    return tf.stack([tf.stack([cos, sin, cx - cos * x0 - sin * y0]),
                     tf.stack([-sin, cos, cy + sin * x0 - cos * y0])])
