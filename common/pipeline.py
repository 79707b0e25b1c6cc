"""The one input pipeline: every reproduction reads its data through `make_dataset`.

    TFRecord shards -> parse -> [filter] -> decode -> paper's preprocess (per example, deterministic)
      -> [cache] -> [expand: one example -> N rows, unbatch] -> [shuffle] -> [augment (per example,
      seeded)] -> batch -> [batch_augment (Keras layers)] -> to_model_io -> prefetch(AUTOTUNE)

A reproduction passes only functions (its Task's DataSpec, common/data_spec.py): which examples
to keep, what to do to one example, whether one example becomes several (patches), which random
changes to make in training, and how a batch becomes (model inputs, targets). The reader, the
order of the stages and their parallelism live here once.
"""
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

AUTOTUNE = tf.data.AUTOTUNE
ENCODED_KEYS = ("image", "mask")


def read_split(handle, split: str, shuffle_files: bool = False, seed: int = 0, files=None) -> tf.data.Dataset:
    """Parsed examples of one split with images still PNG-encoded (decoding is our next stage).

    files: (index, count) or None. Read only the files index, index + count, ... of the split
    (one process's share of its TFRecord files, `file_shards`)."""
    if split not in handle.splits:
        from common.datasets.base import DataError
        raise DataError(f"Dataset {handle.name} has no split {split!r}; it has {sorted(handle.splits)}")
    features = handle.builder.info.features
    decoders = {k: tfds.decode.SkipDecoding() for k in ENCODED_KEYS if k in features}
    context = None if files is None else tf.distribute.InputContext(num_input_pipelines=files[1],
                                                                    input_pipeline_id=files[0])
    read_config = tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=4 if shuffle_files else 1,
                                  input_context=context)
    return handle.builder.as_dataset(split=split, shuffle_files=shuffle_files, decoders=decoders,
                                     read_config=read_config)


def decode(example):
    """PNG bytes -> uint8 [H, W, 1] for the image (and the mask, where there is one)."""
    out = dict(example)
    for key in ENCODED_KEYS:
        if key in example:
            out[key] = tf.io.decode_png(example[key], channels=1, dtype=tf.uint8)
    return out


def count_examples(handle, split: str, *, filter=None, limit: int | None = None) -> int:
    """Examples of a split that `make_dataset` reads (the first `limit`, those `filter` keeps).

    Without a filter this is the split's stored size; with one it is a pass over the records
    that parses them but decodes no image (seconds for thousands of radiographs).
    """
    n = handle.splits[split] if split in handle.splits else 0
    if limit:
        n = min(n, limit)
    if filter is None:
        return n
    ds = read_split(handle, split)
    if limit:
        ds = ds.take(limit)
    return int(ds.filter(filter).reduce(np.int64(0), lambda count, _: count + 1))


def file_shards(handle, split: str, count: int, *, filter=None, limit: int | None = None):
    """How `count` processes share a split's reading: the examples of each process's files
    (index, index + count, ... of the split's TFRecord files), or None to share by example.

    By file when the file count is a multiple of `count`: every process reads only its own files, as
    many as each other one (TFDS writes a split's files to within one example of the same size), so
    no process waits for another to finish its epoch. Else by example (tf.data `shard`: every
    process reads every record but parses and decodes only its own), as with `limit` (the first N
    examples are not whole files) and `filter` (which keeps an unknown number of each file's).
    """
    lengths = list(handle.builder.info.splits[split].shard_lengths)
    if count < 2 or limit or filter is not None or not lengths or len(lengths) % count:
        return None
    return [sum(lengths[i::count]) for i in range(count)]


def _leading_dim(element_spec) -> int:
    """The static leading dimension shared by every tensor of an expanded example."""
    dims = {name: spec.shape[0] if spec.shape.rank else None for name, spec in element_spec.items()}
    if len(set(dims.values())) != 1 or None in dims.values():
        raise ValueError("expand must return an example whose tensors all have the same static leading "
                         f"dimension N. Received leading dimensions: {dims}")
    return int(next(iter(dims.values())))


def sample_rows(example, k: int, seed):
    """Keeps `k` of the N rows of an expanded example, chosen at random by a stateless seed."""
    n = _leading_dim({name: tf.TensorSpec.from_tensor(v) for name, v in example.items()})
    if not 0 < k <= n:
        raise ValueError(f"Cannot keep {k} of {n} rows per example; expected 0 < k <= {n}.")
    keep = tf.argsort(tf.random.stateless_uniform([n], seed=seed))[:k]
    return {name: tf.gather(value, keep) for name, value in example.items()}


def make_dataset(handle, split: str, *, preprocess, to_model_io, batch_size: int, training: bool,
                 augment=None, batch_augment=None, cache=False, shuffle_buffer: int = 2048,
                 seed: int = 0, limit: int | None = None, drop_remainder: bool | None = None,
                 keys=None, filter=None, expand=None, expand_sample: int | None = None, shard=None):
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
        filter: callable(example) -> scalar bool tensor, or None. Keeps only the examples it
            accepts (e.g. one sex, for a sex-specific model). It sees the parsed example before
            decoding (the image is still PNG bytes), so a dropped radiograph is never decoded.
            Applied after `limit`: "the first N" are the first N of the split, then filtered.
        expand: callable(example) -> example, or None. Turns one preprocessed example into N
            rows: every tensor it returns has the same static leading dimension N (e.g. the 49
            patches of a radiograph, with its label and id repeated). It runs after the cache,
            so the cache holds one example, not N, and each image is decoded and preprocessed
            once per epoch at most; then `unbatch` makes the rows separate examples. In
            training the examples are shuffled before expanding and the rows again after
            (`shuffle_buffer` each: the rows of one radiograph would otherwise arrive together).
        expand_sample: int or None. Training only: keep `expand_sample` of the N rows of each
            expanded example, a fresh random choice for every example and epoch (stateless
            seeds), to shorten epochs.
        shard: (index, count) or None. Training on `count` processes: this one's part of every
            batch, `batch_size // count` rows of each global batch of `batch_size`, read from its
            own files or examples (`file_shards` says which), with its own random order and
            augmentation. Every process gets the same number of batches an epoch (a process with
            fewer would leave the others waiting): as many as the process with the fewest rows fills.

    The dataset's cardinality (batches per epoch) is known whenever the stored split sizes
    determine it; with a `filter` it is counted once (`count_examples`) and asserted.
    """
    by_file = None
    if shard is not None:
        index, count = shard
        if batch_size % count:
            raise ValueError(f"The batch size must divide by the process count. Received: batch_size={batch_size}, "
                             f"shard={shard}")
        by_file = file_shards(handle, split, count, filter=filter, limit=limit)
        batch_size //= count
        seed += 7919 * index  # each process its own shuffle and augmentation (7919: a prime, far from seed + 1)
    # With --limit, read in stored order so that "the first N" is the same N every epoch.
    ds = read_split(handle, split, shuffle_files=training and not limit, seed=seed,
                    files=shard if by_file else None)
    if limit:
        ds = ds.take(limit)
    if filter is not None:
        ds = ds.filter(filter)
    if shard is not None and not by_file:
        ds = ds.shard(count, index)  # before decoding: a process decodes only its own examples
    if keys is not None:
        keep = tuple(keys)
        ds = ds.map(lambda e: {k: v for k, v in e.items() if k in keep}, num_parallel_calls=AUTOTUNE,
                    deterministic=not training)
    ds = ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=not training)
    ds = ds.map(preprocess, num_parallel_calls=AUTOTUNE, deterministic=not training)
    if cache:
        ds = ds.cache("" if cache is True else cache)
    rows_per_example = 1
    if expand is not None:
        if training:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(expand, num_parallel_calls=AUTOTUNE, deterministic=not training)
        rows_per_example = _leading_dim(ds.element_spec)
        if training and expand_sample:
            if not 0 < expand_sample <= rows_per_example:
                raise ValueError(f"expand_sample must be in 1..{rows_per_example} (the rows expand makes). "
                                 f"Received: expand_sample={expand_sample}")
            seeds = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(2)
            ds = tf.data.Dataset.zip((ds, seeds)).map(lambda e, s: sample_rows(e, expand_sample, s),
                                                      num_parallel_calls=AUTOTUNE, deterministic=False)
            rows_per_example = expand_sample
        ds = ds.unbatch()
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if augment is not None:
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
            ds = tf.data.Dataset.zip((ds, seeds)).map(augment, num_parallel_calls=AUTOTUNE, deterministic=False)
    drop = training if drop_remainder is None else drop_remainder
    ds = ds.batch(batch_size, drop_remainder=drop, num_parallel_calls=AUTOTUNE, deterministic=not training)
    if shard is not None:
        # The fewest examples any process has: by file, its files' sizes; by example, a split of n has
        # n // count in the processes with the fewest.
        fewest = min(by_file) if by_file else count_examples(handle, split, filter=filter, limit=limit) // count
        rows = fewest * rows_per_example
        steps = rows // batch_size if drop else -(-rows // batch_size)
        ds = ds.take(steps).apply(tf.data.experimental.assert_cardinality(steps))
    elif filter is not None or expand is not None:
        # filter and unbatch hide the size from tf.data; Keras needs it for epochs and schedules.
        rows = count_examples(handle, split, filter=filter, limit=limit) * rows_per_example
        ds = ds.apply(tf.data.experimental.assert_cardinality(rows // batch_size if drop else -(-rows // batch_size)))
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
