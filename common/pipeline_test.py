"""The shared pipeline on a tiny phantom set: shapes, dtypes, order, augmentation, cache."""
import numpy as np
import pytest
import tensorflow as tf

from common import pipeline, preprocessing
from common.datasets import DataError


def preprocess(e):
    return preprocessing.to_unit_float(preprocessing.letterbox(e, 48))


def to_model_io(b):
    return {"image": b["image"], "male": tf.cast(b["male"], tf.float32)[:, None]}, b["boneage_months"]


def augment(e, seed):
    return preprocessing.random_crop(e, 40, seed)


def test_training_batches_shapes_and_dtypes(tiny_phantoms):
    ds = pipeline.make_dataset(tiny_phantoms, "train", preprocess=preprocess, to_model_io=to_model_io,
                               augment=augment, batch_size=16, training=True, seed=3)
    batches = list(ds)
    assert len(batches) == 3  # 48 / 16, last partial batch dropped in training
    x, y = batches[0]
    assert x["image"].shape == (16, 40, 40, 1) and x["image"].dtype == tf.float32
    assert x["male"].shape == (16, 1) and y.shape == (16,) and y.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(x["image"])) and float(tf.reduce_max(x["image"])) <= 1.0


def test_evaluation_order_is_stable_and_complete(tiny_phantoms):
    def ids(ds):
        return [i.decode() for b in ds for i in b["id"].numpy()]

    def io(b):
        return b
    kwargs = dict(preprocess=preprocess, to_model_io=io, batch_size=5, training=False)
    first = ids(pipeline.make_dataset(tiny_phantoms, "validation", **kwargs))
    assert first == ids(pipeline.make_dataset(tiny_phantoms, "validation", **kwargs))
    assert len(first) == 16 and len(set(first)) == 16  # nothing dropped or repeated


def test_training_order_and_crops_change_between_epochs(tiny_phantoms):
    ds = pipeline.make_dataset(tiny_phantoms, "train", preprocess=preprocess, to_model_io=lambda b: b,
                               augment=augment, batch_size=48, training=True, seed=0)
    e1, e2 = next(iter(ds)), next(iter(ds))
    assert list(e1["id"].numpy()) != list(e2["id"].numpy())


def test_keypoints_and_masks_travel_with_the_image(tiny_phantoms):
    ds = pipeline.make_dataset(tiny_phantoms, "test", preprocess=preprocess, to_model_io=lambda b: b,
                               batch_size=4, training=False, cache=True)
    b = next(iter(ds))
    assert b["mask"].shape == (4, 48, 48, 1) and b["keypoints"].shape == (4, 3, 2)
    kp = b["keypoints"].numpy()
    assert (kp >= 0).all() and (kp <= 1).all()


def test_unknown_split_is_an_error(tiny_phantoms):
    with pytest.raises(DataError, match="no split 'holdout'"):
        pipeline.read_split(tiny_phantoms, "holdout")


def test_keras_augmentation_layers_run_inside_the_pipeline(tiny_phantoms):
    import keras
    flip = keras.layers.RandomFlip("horizontal", seed=0)

    def batch_augment(b):
        return dict(b, image=flip(b["image"], training=True))
    ds = pipeline.make_dataset(tiny_phantoms, "train", preprocess=preprocess, to_model_io=to_model_io,
                               batch_augment=batch_augment, batch_size=8, training=True)
    x, _ = next(iter(ds))
    assert x["image"].shape == (8, 48, 48, 1)
    assert np.isfinite(x["image"].numpy()).all()


def test_keys_drop_features_before_decoding(tiny_phantoms):
    ds = pipeline.make_dataset(tiny_phantoms, "test", preprocess=preprocess, to_model_io=lambda b: b,
                               batch_size=4, training=False, keys=("image", "boneage_months", "male"))
    assert set(next(iter(ds))) == {"image", "boneage_months", "male"}
