"""Small preprocessing ops shared by the reproductions, for one example inside tf.data.

Each op takes and returns an example dict (`image` uint8 or float [H, W, C]; phantoms also
carry `mask` [H, W, 1] and `keypoints` [K, 2] as (x, y) / size) and keeps mask and key points
aligned with the image. Each is tested eagerly and inside `tf.data.Dataset.map`: the two
differ more often than one would think (static shapes, numpy_function).
"""
import cv2
import numpy as np
import tensorflow as tf

cv2.setNumThreads(1)  # tf.data already runs maps in parallel; nested thread pools only contend


def _has(example, key):
    return key in example


def letterbox(example, size: int):
    """Pads to a square (image centred, black borders) and resizes to size x size.

    Padding instead of squashing keeps the hand's proportions, which carry age information
    (finger length against palm width); key points follow the same transform.
    """
    image = example["image"]
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    side = tf.maximum(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    out = dict(example)

    def square(x, method):
        x = tf.image.pad_to_bounding_box(x, top, left, side, side)
        return tf.cast(tf.image.resize(x, (size, size), method=method, antialias=True), x.dtype) \
            if method != "nearest" else tf.image.resize(x, (size, size), method="nearest")

    out["image"] = tf.cast(tf.clip_by_value(tf.round(square(tf.cast(image, tf.float32), "area")), 0, 255), image.dtype)
    if _has(example, "mask"):
        out["mask"] = square(example["mask"], "nearest")
    if _has(example, "keypoints"):
        scale = tf.cast(tf.stack([w, h]), tf.float32)
        offset = tf.cast(tf.stack([left, top]), tf.float32)
        out["keypoints"] = (example["keypoints"] * scale + offset) / tf.cast(side, tf.float32)
    out["image"].set_shape([size, size, image.shape[-1]])
    return out


def clahe_array(image: np.ndarray, clip_limit: float, tile_grid: int) -> np.ndarray:
    """CLAHE (contrast-limited adaptive histogram equalisation) of a uint8 [H, W] or [H, W, 1]."""
    squeeze = image.ndim == 3
    plane = image[..., 0] if squeeze else image
    out = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(int(tile_grid), int(tile_grid))).apply(
        np.ascontiguousarray(plane))
    return out[..., None] if squeeze else out


def clahe(image: tf.Tensor, clip_limit: float, tile_grid: int = 8) -> tf.Tensor:
    """CLAHE of a uint8 [H, W, 1] tensor (OpenCV's, called through tf.numpy_function)."""
    out = tf.numpy_function(lambda x: clahe_array(x, clip_limit, tile_grid), [image], tf.uint8, stateful=False)
    out.set_shape(image.shape)
    return out


def clahe_channels(image: tf.Tensor, settings) -> tf.Tensor:
    """Stacks one CLAHE-enhanced copy per (clip_limit, tile_grid) in `settings` as channels.

    A clip limit of 0 (or None) keeps the original plane. One numpy_function call makes every
    channel: each call out of the graph costs a hand-off, and this runs per example.
    """
    settings = [(clip, grid) for clip, grid in settings]

    def planes(x):
        return np.concatenate([x if not clip else clahe_array(x, clip, grid) for clip, grid in settings], axis=-1)
    out = tf.numpy_function(planes, [image], tf.uint8, stateful=False)
    out.set_shape(image.shape[:-1].concatenate([len(settings)]))
    return out


def center_crop(example, size: int):
    out = dict(example)
    out["image"] = tf.image.resize_with_crop_or_pad(example["image"], size, size)
    return out


def random_crop(example, size: int, seed):
    """A size x size crop at a random place (stateless: the same seed gives the same crop)."""
    out = dict(example)
    channels = example["image"].shape[-1]
    out["image"] = tf.image.stateless_random_crop(example["image"], (size, size, channels), seed=seed)
    return out


def to_unit_float(example):
    """uint8 0-255 -> float32 0-1."""
    out = dict(example)
    out["image"] = tf.cast(example["image"], tf.float32) / 255.0
    return out


def affine_batch_augment(settings, seed: int, name: str = "affine_augmentation"):
    """fn(batch) -> batch with random rotation, shift, zoom (and optionally horizontal flip) of the
    batch's images, as seeded Keras preprocessing layers on the batch (cheaper than per example).

    settings: rotation_degrees, shift_fraction, zoom_fraction, horizontal_flip, fill_mode.
    """
    import keras
    layers = [keras.layers.RandomRotation(settings.rotation_degrees / 360.0, fill_mode=settings.fill_mode, seed=seed),
              keras.layers.RandomTranslation(settings.shift_fraction, settings.shift_fraction,
                                             fill_mode=settings.fill_mode, seed=seed + 1),
              keras.layers.RandomZoom(settings.zoom_fraction, fill_mode=settings.fill_mode, seed=seed + 2)]
    if settings.horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 3))
    augmentation = keras.Sequential(layers, name=name)

    def fn(batch):
        out = dict(batch)
        out["image"] = augmentation(tf.cast(batch["image"], tf.float32), training=True)
        return out
    return fn
