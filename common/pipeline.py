"""The one input pipeline: every reproduction reads its data through `make_dataset`.

    TFRecord shards -> parse -> decode -> paper's preprocess (per example, deterministic)
      -> [cache] -> [shuffle] -> [augment (per example, seeded)] -> batch
      -> [batch_augment (Keras layers)] -> to_model_io -> prefetch(AUTOTUNE)

A reproduction passes only functions: what to do to one example, which random changes to
make in training, and how a batch becomes (model inputs, targets). The reader, the order of
the stages and their parallelism live here once.
"""
import tensorflow as tf
import tensorflow_datasets as tfds

AUTOTUNE = tf.data.AUTOTUNE
ENCODED_KEYS = ("image", "mask")


def read_split(handle, split: str, shuffle_files: bool = False, seed: int = 0) -> tf.data.Dataset:
    """Parsed examples of one split with images still PNG-encoded (decoding is our next stage)."""
    if split not in handle.splits:
        from common.datasets.base import DataError
        raise DataError(f"Dataset {handle.name} has no split {split!r}; it has {sorted(handle.splits)}")
    features = handle.builder.info.features
    decoders = {k: tfds.decode.SkipDecoding() for k in ENCODED_KEYS if k in features}
    read_config = tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=4 if shuffle_files else 1)
    return handle.builder.as_dataset(split=split, shuffle_files=shuffle_files, decoders=decoders,
                                     read_config=read_config)


def decode(example):
    """PNG bytes -> uint8 [H, W, 1] for the image (and the mask, where there is one)."""
    out = dict(example)
    for key in ENCODED_KEYS:
        if key in example:
            out[key] = tf.io.decode_png(example[key], channels=1, dtype=tf.uint8)
    return out


def make_dataset(handle, split: str, *, preprocess, to_model_io, batch_size: int, training: bool,
                 augment=None, batch_augment=None, cache=False, shuffle_buffer: int = 2048,
                 seed: int = 0, limit: int | None = None, drop_remainder: bool | None = None,
                 keys=None):
    """Builds the tf.data pipeline for one split.

    Args:
        handle: common.data.DataHandle. The dataset.
        split: str. "train", "validation" or "test".
        preprocess: callable(example) -> example. Deterministic per-example preprocessing.
        to_model_io: callable(batch) -> (inputs, targets). Maps a batch to what the model eats.
        batch_size: int.
        training: bool. Shuffles, augments and drops the last partial batch; evaluation order
            is the stored order, the same on every run.
        augment: callable(example, seed) -> example, or None. Per-example random changes in
            training; `seed` is a stateless [2] int64 seed, new for every example and epoch.
        batch_augment: callable(batch) -> batch, or None. Batched random changes in training
            (e.g. Keras augmentation layers applied to batch["image"]).
        cache: bool or str. Cache after preprocessing, in memory (True) or in a file prefix.
        limit: int or None. Use only the first `limit` examples (smoke runs).
        keys: iterable of str or None. Keep only these features (e.g. drop the phantoms' masks
            before they are decoded, for a model that never looks at them); None keeps all.
    """
    # With --limit, read in stored order so that "the first N" is the same N every epoch.
    ds = read_split(handle, split, shuffle_files=training and not limit, seed=seed)
    if limit:
        ds = ds.take(limit)
    if keys is not None:
        keep = tuple(keys)
        ds = ds.map(lambda e: {k: v for k, v in e.items() if k in keep}, num_parallel_calls=AUTOTUNE,
                    deterministic=not training)
    ds = ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=not training)
    ds = ds.map(preprocess, num_parallel_calls=AUTOTUNE, deterministic=not training)
    if cache:
        ds = ds.cache("" if cache is True else cache)
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if augment is not None:
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
            ds = tf.data.Dataset.zip((ds, seeds)).map(augment, num_parallel_calls=AUTOTUNE, deterministic=False)
    ds = ds.batch(batch_size, drop_remainder=training if drop_remainder is None else drop_remainder,
                  num_parallel_calls=AUTOTUNE, deterministic=not training)
    if training and batch_augment is not None:
        ds = ds.map(batch_augment, num_parallel_calls=AUTOTUNE, deterministic=False)
    ds = ds.map(to_model_io, num_parallel_calls=AUTOTUNE, deterministic=not training)
    return ds.prefetch(AUTOTUNE)


def from_arrays(records, *, preprocess, to_model_io, batch_size: int):
    """The same stages after decoding, for radiographs read from files at prediction time.

    records: list of (id, uint8 [H, W] pixels, male 0/1). Images differ in size, so they
    enter one at a time through a generator; everything after that is the pipeline above.
    """
    def generate():
        for example_id, pixels, male in records:
            yield {"id": str(example_id), "image": pixels[..., None], "male": int(male),
                   "boneage_months": float("nan")}

    signature = {"id": tf.TensorSpec((), tf.string), "image": tf.TensorSpec((None, None, 1), tf.uint8),
                 "male": tf.TensorSpec((), tf.int64), "boneage_months": tf.TensorSpec((), tf.float32)}
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    ds = ds.map(preprocess, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size).map(to_model_io, num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.prefetch(AUTOTUNE)
