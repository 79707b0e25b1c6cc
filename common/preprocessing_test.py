"""Each op eagerly and inside tf.data: the two must agree."""
import numpy as np
import pytest
import tensorflow as tf

from common import preprocessing as P


def example(h=40, w=20):
    image = np.zeros((h, w, 1), np.uint8)
    image[5:15, 5:10] = 200
    mask = (image > 0).astype(np.uint8) * 255
    keypoints = np.array([[0.25, 0.125], [0.5, 0.5], [0.75, 0.875]], np.float32)  # (x, y) / size
    return {"image": tf.constant(image), "mask": tf.constant(mask), "keypoints": tf.constant(keypoints)}


def in_tf_data(fn, ex):
    return next(iter(tf.data.Dataset.from_tensors(ex).map(fn)))


@pytest.mark.parametrize("run", [lambda fn, ex: fn(ex), in_tf_data], ids=["eager", "tf.data"])
def test_letterbox_keeps_aspect_and_moves_keypoints(run):
    out = run(lambda e: P.letterbox(e, 32), example())
    assert out["image"].shape == (32, 32, 1) and out["image"].dtype == tf.uint8
    assert out["mask"].shape == (32, 32, 1)
    # 40x20 padded to 40x40 (10 px each side), then scaled by 32/40.
    kp = out["keypoints"].numpy()
    np.testing.assert_allclose(kp[:, 0], (np.array([0.25, 0.5, 0.75]) * 20 + 10) / 40, atol=1e-6)
    np.testing.assert_allclose(kp[:, 1], [0.125, 0.5, 0.875], atol=1e-6)
    img = out["image"].numpy()[..., 0]
    assert img[:, :7].max() == 0 and img[:, -7:].max() == 0  # the padding is black


@pytest.mark.parametrize("run", [lambda fn, ex: fn(ex), in_tf_data], ids=["eager", "tf.data"])
def test_clahe_channels_differ_and_raise_local_contrast(run):
    rng = np.random.default_rng(0)
    low_contrast = (100 + rng.integers(0, 12, (64, 64, 1))).astype(np.uint8)
    out = run(lambda e: {"image": P.clahe_channels(e["image"], [(0, 8), (2.0, 8), (8.0, 8)])},
              {"image": tf.constant(low_contrast)})["image"].numpy()
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    stds = [out[..., c].std() for c in range(3)]
    assert stds[0] < stds[1] < stds[2]
    np.testing.assert_array_equal(out[..., 0], low_contrast[..., 0])


def test_crops_are_seeded():
    ex = {"image": tf.reshape(tf.range(64 * 64, dtype=tf.int32), (64, 64, 1))}
    a = P.random_crop(ex, 32, tf.constant([1, 2], tf.int64))["image"]
    b = P.random_crop(ex, 32, tf.constant([1, 2], tf.int64))["image"]
    c = P.random_crop(ex, 32, tf.constant([3, 4], tf.int64))["image"]
    assert a.shape == (32, 32, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    centre = P.center_crop(ex, 32)["image"].numpy()
    assert centre[0, 0, 0] == 16 * 64 + 16
    unit = P.to_unit_float({"image": tf.constant([[[255]]], tf.uint8)})["image"]
    assert unit.dtype == tf.float32 and float(unit.numpy().squeeze()) == 1.0
