"""The targets and losses of two auxiliary signals: the key-point heatmaps and the outside-mask penalty.

Key points as heatmaps (`model.aux.keypoint_weight`). The phantoms carry three key points
(common.phantoms.KEYPOINT_NAMES: middle-finger tip, thumb tip, capitate centre; (x, y) / side
after the letterbox). Each becomes a Gaussian of peak 255 drawn at the input's own resolution
(`keypoint_heatmaps`, uint8 [s, s, 3], cached with the image), so that the rotation, shift and
zoom of the training augmentation move it with the image as they move the hand mask; the batch
then area-resizes it to the mask head's resolution. The head predicts one logit map per key point
at that resolution; its loss (`keypoint_loss`) is the cross-entropy between each target map,
normalised to sum to 1, and the softmax of the predicted map over its pixels:

    loss = mean over key points of  - sum_pixels t(p) log softmax(logits)(p)

Why a softmax cross-entropy and not the mean squared error against the Gaussians: each map holds
exactly one point, and the softmax says so (the prediction is a distribution over where it is);
the MSE of a 16 x 16 map whose target is ~0 on all but a few pixels is smallest early on for a
flat zero map, and its gradient shrinks with the map's size, which a loss weight would have to
undo per resolution. The cross-entropy's size does not depend on the map's scale, is ~log(m^2)
nats for a flat prediction, and is smallest (the target's own entropy) when the predicted map
equals the target. A key point the augmentation moved off the image leaves an empty target map;
that map is left out of its example's mean (`VALID_MASS`).

Attention outside the hand mask (`model.aux.outside_mask_weight`; attention pooling only). The
attention map [B, h, w] (mean over heads, summing to 1 over the grid) and the hand mask at the mask
head's resolution [B, m, m] (area-resized, so a pixel holds the share of hand in it) give

    penalty = sum over grid cells of attention(cell) * (1 - share of the cell inside the mask)

the attention mass that falls outside the hand: 0 when every cell the attention touches lies in
the mask, at most 1. The mask is averaged over each cell's m/h x m/w pixels (m must be a multiple
of the grid's side: the model refuses the penalty otherwise). It is a share, so a weight of w costs
at most w months next to the CRPS.

keras.ops only (every backend); `keypoint_heatmaps` is TensorFlow (it runs inside tf.data).
"""
import numpy as np
import tensorflow as tf
from keras import ops

VALID_MASS = 1e-3  # a target map whose (area-resized, [0, 1]) pixels sum to less than this holds no key point


# --- key points -----------------------------------------------------------------------------------

def keypoint_heatmaps(keypoints, size: int, sigma_px: float):
    """[K, 2] key points, (x, y) / size (the letterboxed square's fractions) -> uint8 [size, size, K]:
    one Gaussian of standard deviation `sigma_px` pixels and peak 255 per key point (pixel (i, j) at
    its centre (j + 0.5, i + 0.5))."""
    if sigma_px <= 0:
        raise ValueError(f"sigma_px must be > 0. Received: sigma_px={sigma_px!r}")
    points = tf.cast(keypoints, tf.float32) * float(size)  # [K, 2] in pixels
    centres = tf.range(size, dtype=tf.float32) + 0.5
    gx = tf.exp(-tf.square(centres[None, :] - points[:, :1]) / (2.0 * sigma_px ** 2))  # [K, size] along x
    gy = tf.exp(-tf.square(centres[None, :] - points[:, 1:2]) / (2.0 * sigma_px ** 2))  # [K, size] along y
    maps = gy[:, :, None] * gx[:, None, :]  # [K, y, x]
    return tf.cast(tf.round(tf.transpose(maps, (1, 2, 0)) * 255.0), tf.uint8)


def keypoint_loss(target, logits):
    """Per example: the mean over key points (those with a target) of the cross-entropy between the
    target map, normalised to sum to 1, and the softmax of the logits over the map's pixels.

    target: [B, m, m, K] >= 0 (the Gaussians, any scale). logits: [B, m, m, K]."""
    logits = ops.cast(logits, "float32")
    target = ops.cast(target, "float32")
    k = logits.shape[-1]
    logits = ops.reshape(logits, (-1, logits.shape[1] * logits.shape[2], k))
    target = ops.reshape(target, (-1, logits.shape[1], k))
    mass = ops.sum(target, axis=1)  # [B, K]
    valid = ops.cast(mass > VALID_MASS, "float32")
    target = target / ops.maximum(mass, VALID_MASS)[:, None, :]
    cross_entropy = -ops.sum(target * ops.log_softmax(logits, axis=1), axis=1)  # [B, K]
    return ops.sum(cross_entropy * valid, axis=-1) / ops.maximum(ops.sum(valid, axis=-1), 1.0)


def heatmap_peaks(maps) -> np.ndarray:
    """[B, m, m, K] maps (logits or targets) -> [B, K, 2] (x, y) of each map's largest pixel, as
    fractions of the side (pixel centres: (j + 0.5) / m)."""
    maps = np.asarray(maps)
    b, m, _, k = maps.shape
    flat = maps.transpose(0, 3, 1, 2).reshape(b, k, m * m).argmax(axis=-1)
    rows, cols = np.divmod(flat, m)
    return np.stack([(cols + 0.5) / m, (rows + 0.5) / m], axis=-1)


# --- attention outside the hand mask --------------------------------------------------------------

def cell_mask_share(mask, grid: tuple):
    """[B, m, m(, 1)] mask in [0, 1] -> [B, h, w]: the mean of the mask over each grid cell's pixels
    (m a multiple of h and of w)."""
    h, w = int(grid[0]), int(grid[1])
    mask = ops.cast(mask, "float32")
    m_h, m_w = mask.shape[1], mask.shape[2]
    if m_h % h or m_w % w:
        raise ValueError(f"the mask's side must be a multiple of the attention grid's. Received: mask "
                         f"{m_h} x {m_w}, grid {h} x {w}")
    mask = ops.reshape(mask, (-1, h, m_h // h, w, m_w // w))
    return ops.mean(mask, axis=(2, 4))


def has_mask(mask):
    """[B] 1.0 where a mask [B, m, m(, 1)] has any hand pixel, else 0.0: a radiograph always holds a hand, so
    an empty mask means none was found (the iglovikov18 chain's rejects) and its losses are left out."""
    mask = ops.cast(mask, "float32")
    return ops.cast(ops.max(ops.reshape(mask, (ops.shape(mask)[0], -1)), axis=-1) > 0, "float32")


def outside_mask_mass(mask, attention):
    """Per example: the attention mass [B, h, w] on grid cells outside the hand mask [B, m, m(, 1)],
    each cell counted by its share outside the mask. In [0, 1] for an attention map summing to 1; 0 for an
    empty mask (no hand found: nothing to keep the attention in)."""
    attention = ops.cast(attention, "float32")
    grid = attention.shape[1:3]
    inside = cell_mask_share(mask, grid)
    outside = attention * (1.0 - inside)
    return ops.sum(ops.reshape(outside, (-1, grid[0] * grid[1])), axis=-1) * has_mask(mask)
