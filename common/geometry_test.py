"""Tests for common.geometry: three-point affine maps and the warp, eagerly and inside tf.data."""
import numpy as np
import pytest
import tensorflow as tf

from common import geometry

SRC = np.array([[10.0, 5.0], [30.0, 20.0], [12.0, 40.0]], np.float32)
DST = np.array([[40.0, 6.0], [70.0, 30.0], [40.0, 70.0]], np.float32)


def _dots(points, hw, radius=0):
    image = np.zeros(hw + (1,), np.uint8)
    for x, y in np.round(points).astype(int):
        image[y - radius:y + radius + 1, x - radius:x + radius + 1] = 255
    return image


def _centroids(image, points, window=3):
    """Intensity centroid of `image` around each of `points` (x, y)."""
    plane = image[..., 0].astype(np.float64)
    out = []
    for x, y in np.round(points).astype(int):
        ys, xs = np.mgrid[y - window:y + window + 1, x - window:x + window + 1]
        w = plane[ys, xs]
        out.append([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])
    return np.array(out)


def test_three_points_map_exactly_in_numpy_and_tf():
    a = geometry.affine_from_points(SRC, DST)
    np.testing.assert_allclose(geometry.apply_affine(a, SRC), DST, atol=1e-4)
    t = geometry.affine_from_points(tf.constant(SRC), tf.constant(DST)).numpy()
    np.testing.assert_allclose(t, a, atol=1e-4)
    np.testing.assert_allclose(geometry.apply_affine(geometry.invert_affine(a), DST), SRC, atol=1e-3)
    both = geometry.compose_affine(geometry.invert_affine(a), a)
    np.testing.assert_allclose(both, [[1, 0, 0], [0, 1, 0]], atol=1e-5)


def test_collinear_points_are_refused_with_the_points_named():
    with pytest.raises(ValueError, match="collinear"):
        geometry.affine_from_points([[0, 0], [1, 1], [2, 2]], DST)
    with pytest.raises(ValueError, match=r"shape \[3, 2\]"):
        geometry.affine_from_points(np.zeros((4, 2)), np.zeros((4, 2)))


@pytest.mark.parametrize("in_dataset", [False, True])
def test_warp_carries_each_point_to_its_target(in_dataset):
    """A dot at each source point lands on its destination point (to a fraction of a pixel)."""
    image = _dots(SRC, (48, 40), radius=1)
    canvas_to_image = geometry.affine_from_points(DST, SRC)

    def warp(x):
        return geometry.warp_affine(x, canvas_to_image, (80, 80))
    if in_dataset:
        out = next(iter(tf.data.Dataset.from_tensors(tf.constant(image)).map(warp))).numpy()
    else:
        out = warp(tf.constant(image)).numpy()
    assert out.shape == (80, 80, 1) and out.dtype == np.uint8
    np.testing.assert_allclose(_centroids(out, DST), DST, atol=0.5)


def test_nearest_keeps_mask_values_and_outside_is_filled():
    mask = np.full((20, 20, 1), 255, np.uint8)
    shift = np.array([[1.0, 0.0, 10.0], [0.0, 1.0, 0.0]], np.float32)   # output x -> input x + 10
    out = geometry.warp_affine(tf.constant(mask), shift, (20, 20), interpolation="nearest").numpy()
    assert set(np.unique(out)) == {0, 255}
    assert out[:, :10].min() == 255 and out[:, 10:].max() == 0


def test_random_similarity_is_seeded_and_bounded():
    seed = tf.constant([3, 4], tf.int64)
    a = geometry.random_similarity(seed, (80, 60), shift=0.05, scale=0.05, rotate_deg=5.0).numpy()
    b = geometry.random_similarity(seed, (80, 60), shift=0.05, scale=0.05, rotate_deg=5.0).numpy()
    np.testing.assert_array_equal(a, b)
    c = geometry.random_similarity(tf.constant([5, 6], tf.int64), (80, 60), shift=0.05, scale=0.05, rotate_deg=5.0)
    assert not np.allclose(a, c.numpy())
    zero = geometry.random_similarity(seed, (80, 60), shift=0.0, scale=0.0, rotate_deg=0.0).numpy()
    np.testing.assert_allclose(zero, [[1, 0, 0], [0, 1, 0]], atol=1e-6)
    det = np.linalg.det(a[:, :2])
    assert 1 / 1.05 ** 2 - 1e-6 <= det <= 1 / 0.95 ** 2 + 1e-6


def test_bad_arguments_say_what_was_received():
    with pytest.raises(ValueError, match="interpolation"):
        geometry.warp_affine(tf.zeros((4, 4, 1)), np.eye(2, 3), (4, 4), interpolation="cubic")
    with pytest.raises(ValueError, match="one image"):
        geometry.warp_affine(tf.zeros((4, 4)), np.eye(2, 3), (4, 4))
