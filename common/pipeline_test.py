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


def _males(tiny_phantoms, split):
    return [int(e["male"]) for e in pipeline.read_split(tiny_phantoms, split)]


def test_filter_keeps_only_the_examples_it_accepts_and_knows_the_size(tiny_phantoms):
    def boys(e):
        return tf.equal(e["male"], 1)
    n_boys = sum(_males(tiny_phantoms, "validation"))
    assert 0 < n_boys < 16
    assert pipeline.count_examples(tiny_phantoms, "validation", filter=boys) == n_boys
    assert pipeline.count_examples(tiny_phantoms, "validation", filter=boys, limit=4) == sum(
        _males(tiny_phantoms, "validation")[:4])
    ds = pipeline.make_dataset(tiny_phantoms, "validation", preprocess=preprocess, to_model_io=lambda b: b,
                               batch_size=3, training=False, filter=boys)
    batches = list(ds)
    assert int(ds.cardinality()) == len(batches) == -(-n_boys // 3)
    assert all(int(m) == 1 for b in batches for m in b["male"].numpy())


def _expand3(e):
    """One example -> 3 rows: the image and two shifted copies, labels repeated, a row index."""
    images = tf.stack([e["image"], tf.roll(e["image"], 1, axis=0), tf.roll(e["image"], 2, axis=0)])
    rows = {k: tf.repeat(v[tf.newaxis], 3, axis=0) for k, v in e.items() if k != "image"}
    return dict(rows, image=images, row=tf.range(3))


def test_expand_makes_n_rows_per_example_after_the_cache(tiny_phantoms):
    kwargs = dict(preprocess=preprocess, to_model_io=lambda b: b, keys=("id", "image", "boneage_months", "male"))
    ds = pipeline.make_dataset(tiny_phantoms, "validation", batch_size=5, training=False, cache=True,
                               expand=_expand3, **kwargs)
    rows = [(i, r) for b in ds for i, r in zip(b["id"].numpy(), b["row"].numpy())]
    assert int(ds.cardinality()) == -(-16 * 3 // 5)
    assert len(rows) == 48 and [r for _, r in rows] == [0, 1, 2] * 16  # stored order, rows together
    assert all(rows[3 * k][0] == rows[3 * k + 2][0] for k in range(16))
    train = pipeline.make_dataset(tiny_phantoms, "train", batch_size=8, training=True, expand=_expand3, **kwargs)
    assert int(train.cardinality()) == 48 * 3 // 8 == len(list(train))


def test_expand_sample_keeps_a_fresh_random_subset_each_epoch(tiny_phantoms):
    ds = pipeline.make_dataset(tiny_phantoms, "train", preprocess=preprocess, to_model_io=lambda b: b,
                               batch_size=48, training=True, expand=_expand3, expand_sample=1, seed=0)
    assert int(ds.cardinality()) == 1
    epochs = [next(iter(ds)) for _ in range(2)]
    for b in epochs:
        assert sorted(b["id"].numpy()) == sorted(set(b["id"].numpy()))  # one row per example
    picks = [dict(zip(b["id"].numpy(), b["row"].numpy())) for b in epochs]
    assert picks[0] != picks[1]
    with pytest.raises(ValueError, match="expand_sample must be in 1..3"):
        pipeline.make_dataset(tiny_phantoms, "train", preprocess=preprocess, to_model_io=lambda b: b,
                              batch_size=4, training=True, expand=_expand3, expand_sample=4)


def test_expand_must_give_every_tensor_the_same_leading_dimension(tiny_phantoms):
    def bad(e):
        return {"image": tf.stack([e["image"]] * 2), "male": e["male"]}
    with pytest.raises(ValueError, match="same static leading dimension"):
        pipeline.make_dataset(tiny_phantoms, "test", preprocess=preprocess, to_model_io=lambda b: b,
                              batch_size=4, training=False, expand=bad)


def test_processes_read_their_own_files_or_examples_and_get_as_many_batches(tiny_phantoms, tmp_path):
    """Several processes (train --num-processes): each gets batch_size / count rows of each batch, from
    examples no other process reads, and every process the same number of batches an epoch."""
    import types

    import tensorflow_datasets as tfds

    from common.datasets import Phantoms, PhantomsConfig

    def ids(ds):
        return [i.decode() for b in ds for i in b["id"].numpy()]

    def io(b):
        return b

    def shares(handle, count, **kwargs):
        return [list(pipeline.make_dataset(handle, "train", preprocess=preprocess, to_model_io=io, batch_size=6,
                                           training=True, shard=(i, count), **kwargs)) for i in range(count)]

    # One file of 48 examples: by example, 24 each, in 8 batches of 3 (a global batch of 6).
    assert pipeline.file_shards(tiny_phantoms, "train", 2) is None
    parts = shares(tiny_phantoms, 2)
    assert [len(p) for p in parts] == [8, 8] and all(len(b["id"]) == 3 for p in parts for b in p)
    seen = [ids(p) for p in parts]
    assert not set(seen[0]) & set(seen[1]) and len(set(seen[0] + seen[1])) == 48  # all of the split, once
    parts = shares(tiny_phantoms, 3, limit=20)  # 20 // 3 = 6 examples at least: 3 batches of 2 each
    assert [len(p) for p in parts] == [3, 3, 3]
    with pytest.raises(ValueError, match="divide by the process count"):
        shares(tiny_phantoms, 4)

    # Two files: two processes read one each (by file); three processes share by example.
    builder = Phantoms(config=PhantomsConfig(name="two-files", size=64, n_train=20, n_validation=4, n_test=4, seed=2),
                       data_dir=tmp_path)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(num_shards=2))
    handle = types.SimpleNamespace(builder=builder, splits={"train": 20, "validation": 4, "test": 4}, name="two-files")
    assert pipeline.file_shards(handle, "train", 2) == [10, 10] and pipeline.file_shards(handle, "train", 3) is None
    parts = shares(handle, 2)  # 10 each, 3 batches of 3
    seen = [ids(p) for p in parts]
    assert [len(p) for p in parts] == [3, 3] and not set(seen[0]) & set(seen[1])
    assert pipeline.file_shards(handle, "train", 2, limit=8) is None  # the first 8 examples are not whole files
