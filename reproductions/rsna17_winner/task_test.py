"""Tests for rsna17_winner's per-example functions, eagerly and inside tf.data."""
import numpy as np
import pytest
import tensorflow as tf

from reproductions.rsna17_winner.config import get_config
from reproductions.rsna17_winner.task import batch_augment, preprocess, scale_image, to_model_io


def _example(h=40, w=30, value=None):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 1), dtype=np.uint8) if value is None else np.full((h, w, 1), value, np.uint8)
    return {"id": tf.constant("a"), "image": tf.constant(image), "boneage_months": tf.constant(100.0),
            "male": tf.constant(1, tf.int64), "mask": tf.zeros((h, w, 1), tf.uint8)}


@pytest.mark.parametrize("mode", ["warp", "pad"])
def test_preprocess_resizes_to_the_square_eagerly_and_in_tf_data(mode):
    config = get_config("small")
    config.data.resize_mode = mode
    fn = preprocess(config, training=True)
    eager = fn(_example())
    graph = next(iter(tf.data.Dataset.from_tensors(_example()).map(fn)))
    for out in (eager, graph):
        assert out["image"].shape == (96, 96, 1) and out["image"].dtype == tf.uint8
        assert "mask" not in out  # the phantoms' annotations are not this paper's inputs
    np.testing.assert_array_equal(eager["image"].numpy(), graph["image"].numpy())


def test_scaling_maps_0_255_to_minus_1_1_on_three_channels():
    out = scale_image(tf.constant([[[0], [255]]], tf.uint8), "inception", 3)
    assert out.shape == (1, 2, 3)
    np.testing.assert_allclose(out.numpy()[0, :, 0], [-1.0, 1.0])
    with pytest.raises(ValueError, match="data.scale"):
        scale_image(tf.zeros((1, 1, 1)), "imagenet", 3)


def test_model_io_with_and_without_sex():
    batch = {"image": tf.zeros((2, 96, 96, 1), tf.uint8), "male": tf.constant([0, 1], tf.int64),
             "boneage_months": tf.constant([10.0, 20.0])}
    inputs, targets = to_model_io(get_config("small"))(batch)
    assert inputs["image"].shape == (2, 96, 96, 3) and inputs["male"].shape == (2, 1)
    np.testing.assert_allclose(targets["months"].numpy().ravel(), [10.0, 20.0])
    nosex = get_config("small")
    nosex.model.sex_input = False
    inputs, _ = to_model_io(nosex)(batch)
    assert set(inputs) == {"image"}


def test_augmentation_moves_pixels_but_keeps_shapes_inside_tf_data():
    config = get_config("small")
    ramp = np.tile(np.arange(96, dtype=np.uint8)[None, :, None], (96, 1, 1)) * 2
    batch = {"image": tf.constant(np.stack([ramp] * 8)), "male": tf.zeros((8,), tf.int64),
             "boneage_months": tf.zeros((8,))}
    out = next(iter(tf.data.Dataset.from_tensors(batch).map(batch_augment(config))))
    assert out["image"].shape == (8, 96, 96, 1)
    changed = [not np.allclose(out["image"][i].numpy(), ramp) for i in range(8)]
    assert sum(changed) >= 6, changed  # rotation, shift and zoom are all random, so nearly every image moves


def test_only_the_sex_input_variants_need_the_sex():
    from reproductions.rsna17_winner.task import TASK
    assert TASK.sex_needed(get_config()) and TASK.sex_needed(get_config("thumbs"))
    assert not TASK.sex_needed(get_config("nosex")) and not TASK.sex_needed(get_config("thumbs_nosex"))
