"""Larson18's own preprocessing: square resize, three CLAHE channels, crops, scaling.

Each function works on ONE example, eagerly or inside `tf.data.Dataset.map`. The chain follows
the authors' public inference code (radinformatics/bone-age; file paths and commits in
config.py):

1. the grey radiograph is resized to `load_size` x `load_size` (256) -- warped by default, as
   the authors do; `resize_mode="pad"` keeps the aspect ratio instead;
2. CLAHE (OpenCV) at three clip limits (1, 3, 5; 8 x 8 tiles) gives the three channels
   (`boneage/predict_image.py`, `clahe_augment`);
3. a `crop_size` (224) crop is taken: random (and randomly mirrored) when training
   (reconstructed), the centre otherwise; `test_time_crops` gives the authors' ten fixed crops
   (four corners and the centre, of the image and of its left-right mirror; `boneage/resnet.py`,
   `fixed_crops`);
4. each crop, as float on the 0-255 scale, has its own scalar mean subtracted
   (`fixed_crops`: "Per crop mean subtraction"). That keeps the zero-centred, unscaled 0-255
   range that keras.applications.ResNet50's ImageNet weights (Caffe-converted, "caffe" mode:
   BGR channel means subtracted, no division) were trained with, so those weights fit either
   way; `normalization="caffe"` applies the keras mode itself instead. The channels here are
   CLAHE levels, not colours, so the caffe channel reversal only decides which first-layer
   filters see which level.

Steps 1-2 are deterministic (`larson_load`: cache its uint8 output); 3-4 are
`crop_and_normalize`. For the common pipeline (`common.pipeline.make_dataset`) use
`make_example_preprocess`, `make_example_augment` and `make_example_test_time_crops`.

A trap with small images: OpenCV turns the clip limit into an integer count per histogram bin,
max(1, int(clip_limit * tile_area / 256)). With 256-px images and 8 x 8 tiles (32 px) the
counts are 4, 12 and 20; with 72-px images and 8 x 8 tiles (9 px) all three become 1 and the
three channels are identical. Keep tiles near 32 px when shrinking (`opencv_clip_counts`).

Example:

    import tensorflow as tf
    from reproductions.larson18 import preprocessing as pp
    clahe = [{"clip_limit": c, "tile_grid": 8} for c in (1.0, 3.0, 5.0)]
    image = tf.io.decode_png(tf.io.read_file("hand.png"), channels=1)
    x = pp.larson_preprocess(image, load_size=256, crop_size=224, clahe=clahe, training=True)
    crops = pp.test_time_crops(pp.larson_load(image, load_size=256, clahe=clahe), 224)

Reference: Larson DB et al. Radiology 2018;287(1):313-322, doi:10.1148/radiol.2017170236.
"""
from __future__ import annotations

import math
import warnings

import tensorflow as tf

from common import preprocessing as common_pp

RESIZE_MODES = ("warp", "pad")
NORMALIZATIONS = ("crop_mean", "caffe")
TEST_TIME_SCHEMES = ("ten_crop", "center")
# keras.applications.imagenet_utils "caffe" mode: channel means in BGR order, 0-255 scale.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
UNUSED_KEYS = ("mask", "keypoints")  # phantom annotations; a warped, cropped image no longer matches them


# --- 1. grey uint8 image, square resize ------------------------------------------------------

def to_gray_uint8(image) -> tf.Tensor:
    """Returns `image` as a [H, W, 1] uint8 tensor ([H, W], [H, W, 1] or [H, W, 3] accepted)."""
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 2:
        image = image[..., tf.newaxis]
    if image.shape.rank != 3:
        raise ValueError(f"Expected one image of shape [H, W], [H, W, 1] or [H, W, 3]. "
                         f"Received: shape={image.shape}")
    if image.dtype != tf.uint8:
        raise ValueError(f"Expected a uint8 image (0-255 grey levels). Received: dtype={image.dtype}")
    if image.shape[-1] == 3:
        image = tf.image.rgb_to_grayscale(image)
    elif image.shape[-1] is not None and image.shape[-1] != 1:
        raise ValueError(f"Expected 1 or 3 channels. Received: shape={image.shape}")
    return image


def resize_square(image, size: int, *, mode: str = "warp", method: str = "bilinear") -> tf.Tensor:
    """Resizes one grey image to [size, size, 1] uint8.

    Args:
        image: uint8 tensor, [H, W] or [H, W, 1] (or [H, W, 3], turned grey).
        size: int. Output side in pixels.
        mode: str. "warp" squeezes the whole film into the square like the authors' demo
            (PIL `resize((256, 256))`, boneage/utils.py); "pad" keeps the aspect ratio and pads
            the short side with black (common.preprocessing.letterbox, "area" resize), so bones
            keep their shape. Larson18 uses "warp" to feed the network what the authors fed theirs.
        method: str. The `tf.image.resize` method for "warp"; antialiased, since films shrink ~8x.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"Unknown resize mode; expected one of {RESIZE_MODES}. Received: mode={mode!r}")
    image = to_gray_uint8(image)
    if mode == "pad":
        return common_pp.letterbox({"image": image}, size)["image"]
    image = tf.image.resize(tf.cast(image, tf.float32), [size, size], method=method, antialias=True)
    image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    image.set_shape([size, size, 1])
    return image


# --- 2. three CLAHE channels -----------------------------------------------------------------

def _clahe_settings(clahe) -> list[tuple[float, int]]:
    """Validated (clip_limit, tile_grid) pairs, the form common.preprocessing.clahe_channels takes."""
    if not clahe:
        raise ValueError(f"Expected a non-empty list of CLAHE settings. Received: clahe={clahe!r}")
    settings = []
    for entry in clahe:
        try:
            clip, grid = float(entry["clip_limit"]), int(entry["tile_grid"])
        except (KeyError, TypeError, ValueError):
            raise ValueError("Each CLAHE setting needs clip_limit (float) and tile_grid (int: an "
                             f"n x n grid of tiles). Received: {entry!r}") from None
        if clip <= 0 or grid < 1:
            raise ValueError(f"CLAHE needs clip_limit > 0 and tile_grid >= 1. Received: {entry!r}")
        settings.append((clip, grid))
    return settings


def opencv_clip_counts(image_size: int, clahe) -> list[int]:
    """The per-bin clip count OpenCV derives for each setting on an image_size^2 image.

    OpenCV (imgproc/src/clahe.cpp) pads the image to a multiple of the tile grid, then uses
    max(1, int(clip_limit * tile_area / 256)). Equal counts mean identical channels.
    """
    return [max(1, int(clip * math.ceil(image_size / grid) ** 2 / 256))
            for clip, grid in _clahe_settings(clahe)]


def apply_clahe(image_hw1, clahe) -> tf.Tensor:
    """The contrast channels of one grey uint8 image: [H, W, 1] -> [H, W, len(clahe)] uint8.

    OpenCV's CLAHE through common.preprocessing.clahe_channels, one channel per setting, in
    order (the authors' clahe_augment: clip 1, 3, 5 on 8 x 8 tiles).
    """
    image = to_gray_uint8(image_hw1)
    settings = _clahe_settings(clahe)  # validate here, not inside a tf.data worker
    height, width = image.shape[0], image.shape[1]
    if height is not None and height == width and len(settings) > 1:
        counts = opencv_clip_counts(int(height), clahe)
        if len(set(counts)) < len(counts):
            warnings.warn(f"CLAHE settings {clahe} give OpenCV clip counts {counts} on a {height}-px "
                          "image: equal counts make identical channels; use fewer, larger tiles.",
                          stacklevel=2)
    return common_pp.clahe_channels(image, settings)


def larson_load(image_uint8_hw1, *, load_size: int, clahe, resize_mode: str = "warp",
                resize_method: str = "bilinear", dtype=tf.float32) -> tf.Tensor:
    """Resize then CLAHE: one radiograph -> [load_size, load_size, 3] on the 0-255 scale.

    The deterministic part of the chain: what a cache should store (as `dtype=tf.uint8`, a
    quarter of the float size) and what `test_time_crops` takes.
    """
    image = resize_square(image_uint8_hw1, load_size, mode=resize_mode, method=resize_method)
    return tf.cast(apply_clahe(image, clahe), dtype)


# --- 3./4. crops and scaling -----------------------------------------------------------------

def normalize(crop, normalization: str = "crop_mean") -> tf.Tensor:
    """Scales one 0-255 crop [h, w, 3] (or a stack [n, h, w, 3]) to float32 for the ResNet-50.

    "crop_mean": subtract each crop's scalar mean, as the authors do (boneage/resnet.py).
    "caffe": keras.applications.resnet50.preprocess_input's mode: reverse channels, subtract the
        ImageNet BGR means; no division.
    """
    crop = tf.cast(crop, tf.float32)
    if normalization == "crop_mean":
        return crop - tf.reduce_mean(crop, axis=[-3, -2, -1], keepdims=True)
    if normalization == "caffe":
        if crop.shape[-1] != 3:
            raise ValueError(f"caffe normalization needs 3 channels. Received: shape={crop.shape}")
        return crop[..., ::-1] - tf.constant(CAFFE_BGR_MEAN, tf.float32)
    raise ValueError(f"Unknown normalization; expected one of {NORMALIZATIONS}. "
                     f"Received: normalization={normalization!r}")


def crop_and_normalize(image, *, crop_size: int, training: bool, normalization: str = "crop_mean",
                       random_crop: bool = True, horizontal_flip: bool = True, seed=None) -> tf.Tensor:
    """One `larson_load` image [L, L, C] -> float32 [crop_size, crop_size, C].

    Args:
        image: [L, L, C] tensor, uint8 or float on the 0-255 scale.
        crop_size: int. At most L.
        training: bool. True: random crop and random left-right flip (as enabled); False: the
            centre crop at offset (L - crop_size) // 2, the authors' int((256 - 224) / 2.0) = 16.
        normalization: "crop_mean" (authors) or "caffe"; see `normalize`.
        random_crop, horizontal_flip: bool. The training augmentations (`train.augmentation`).
        seed: None (stateful random ops) or a stateless [2] int seed, as common.pipeline passes
            to `augment`: the same seed gives the same crop and flip.
    """
    image = tf.convert_to_tensor(image)
    load_size, channels = image.shape[0], image.shape[-1]
    if load_size is None or not 0 < crop_size <= load_size:
        raise ValueError(f"Expected a static image size >= crop_size > 0. Received: crop_size={crop_size}, "
                         f"image shape={image.shape}")
    crop_seed = flip_seed = None
    if seed is not None:
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if training and random_crop:
        size = [crop_size, crop_size, channels]
        crop = (tf.image.random_crop(image, size) if seed is None
                else tf.image.stateless_random_crop(image, size, seed=crop_seed))
    else:
        offset = (load_size - crop_size) // 2
        crop = tf.image.crop_to_bounding_box(image, offset, offset, crop_size, crop_size)
    if training and horizontal_flip:
        crop = (tf.image.random_flip_left_right(crop) if seed is None
                else tf.image.stateless_random_flip_left_right(crop, seed=flip_seed))
    crop = normalize(crop, normalization)
    crop.set_shape([crop_size, crop_size, channels])
    return crop


def larson_preprocess(image_uint8_hw1, *, load_size: int, crop_size: int, clahe, training: bool,
                      resize_mode: str = "warp", resize_method: str = "bilinear",
                      normalization: str = "crop_mean", random_crop: bool = True,
                      horizontal_flip: bool = True, seed=None) -> tf.Tensor:
    """One radiograph -> the network input, float32 [crop_size, crop_size, 3].

    `larson_load` then `crop_and_normalize`; see those for the arguments.

    Args:
        image_uint8_hw1: uint8 tensor [H, W, 1] (or [H, W] / [H, W, 3]) of any size.
        load_size: int. Side of the square the film is resized to (256).
        crop_size: int. Side of the crop the network sees (224); at most `load_size`.
        clahe: list of dicts with `clip_limit` (float) and `tile_grid` (int, n x n tiles), one
            per output channel.
        training: bool. Random crop and flip if True, the centre crop if False (use
            `test_time_crops` for the ten-crop evaluation).
    """
    if not 0 < crop_size <= load_size:
        raise ValueError(f"Expected 0 < crop_size <= load_size. Received: crop_size={crop_size}, "
                         f"load_size={load_size}")
    image = larson_load(image_uint8_hw1, load_size=load_size, clahe=clahe,
                        resize_mode=resize_mode, resize_method=resize_method)
    return crop_and_normalize(image, crop_size=crop_size, training=training,
                              normalization=normalization, random_crop=random_crop,
                              horizontal_flip=horizontal_flip, seed=seed)


def crop_boxes(load_size: int, crop_size: int, scheme: str = "ten_crop") -> list[tuple[str, int, int, bool]]:
    """The fixed test-time crops as (name, y0, x0, flipped), in the authors' order.

    "ten_crop": upper-left, upper-right, lower-left, lower-right, centre of the image, then the
    same five of its left-right mirror (boneage/resnet.py, `fixed_crops`). "center": one crop.
    """
    if scheme not in TEST_TIME_SCHEMES:
        raise ValueError(f"Unknown test-time crop scheme; expected one of {TEST_TIME_SCHEMES}. "
                         f"Received: scheme={scheme!r}")
    if not 0 < crop_size <= load_size:
        raise ValueError(f"Expected 0 < crop_size <= load_size. Received: crop_size={crop_size}, "
                         f"load_size={load_size}")
    far, mid = load_size - crop_size, (load_size - crop_size) // 2
    if scheme == "center":
        return [("center", mid, mid, False)]
    five = [("ul", 0, 0), ("ur", 0, far), ("ll", far, 0), ("lr", far, far), ("center", mid, mid)]
    return ([(n, y, x, False) for n, y, x in five]
            + [("flip_" + n, y, x, True) for n, y, x in five])


def test_time_crops(image, crop_size: int, *, normalization: str = "crop_mean",
                    scheme: str = "ten_crop") -> tf.Tensor:
    """The fixed test-time crops of one `larson_load` image: [n_crops, crop, crop, C] float32.

    Args:
        image: [L, L, C] tensor on the 0-255 scale (the output of `larson_load`).
        crop_size: int. Side of each crop.
        normalization: applied to each crop separately (each crop loses its own mean).
        scheme: "ten_crop" (authors) or "center"; see `crop_boxes`.
    """
    image = tf.cast(tf.convert_to_tensor(image), tf.float32)
    if image.shape.rank != 3 or image.shape[0] is None or image.shape[0] != image.shape[1]:
        raise ValueError(f"Expected one square image [L, L, C] with a static size. "
                         f"Received: shape={image.shape}")
    flipped = tf.image.flip_left_right(image)
    crops = [tf.image.crop_to_bounding_box(flipped if flip else image, y0, x0, crop_size, crop_size)
             for _, y0, x0, flip in crop_boxes(int(image.shape[0]), crop_size, scheme)]
    return normalize(tf.stack(crops), normalization)


# --- adapters for common.pipeline.make_dataset (example dicts) --------------------------------

def _load_kwargs(config):
    data = config.data
    return {"load_size": data.image_size, "clahe": data.clahe, "resize_mode": data.resize_mode,
            "resize_method": data.resize_method}


def _without_unused(example):
    return {k: v for k, v in example.items() if k not in UNUSED_KEYS}


def make_example_preprocess(config, *, training: bool):
    """`preprocess(example) -> example` for make_dataset, from a larson18 config.

    Training: the deterministic, cacheable part only (uint8 [L, L, 3]); `make_example_augment`
    crops, flips and scales afterwards. Evaluation: also the centre crop and scaling.
    """
    crop_size, normalization = config.data.crop_size, config.data.normalization

    def preprocess(example):
        out = _without_unused(example)
        image = larson_load(example["image"], dtype=tf.uint8, **_load_kwargs(config))
        out["image"] = image if training else crop_and_normalize(
            image, crop_size=crop_size, training=False, normalization=normalization)
        return out
    return preprocess


def make_example_augment(config):
    """`augment(example, seed) -> example` for make_dataset: random crop, flip, scaling."""
    data, aug = config.data, config.train.augmentation

    def augment(example, seed):
        out = dict(example)
        out["image"] = crop_and_normalize(example["image"], crop_size=data.crop_size, training=True,
                                          normalization=data.normalization, random_crop=aug.random_crop,
                                          horizontal_flip=aug.horizontal_flip, seed=seed)
        return out
    return augment


def make_example_test_time_crops(config):
    """`preprocess(example) -> example` whose image is the [n_crops, crop, crop, 3] stack."""
    data = config.data

    def crops(example):
        out = _without_unused(example)
        image = larson_load(example["image"], **_load_kwargs(config))
        out["image"] = test_time_crops(image, data.crop_size, normalization=data.normalization,
                                       scheme=config.eval.test_time_crops)
        return out
    return crops
