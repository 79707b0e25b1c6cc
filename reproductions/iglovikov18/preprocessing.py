"""Iglovikov18's per-example preprocessing for the three stages, eagerly or inside tf.data.

Stage 1, segmentation: the radiograph letterboxed to a square of `data.image_size`, with its
mask: the phantoms' own, or (real radiographs) the classical bootstrap mask (`masks.py`), or a
U-Net's own agreeing prediction from `refine-masks`. A bootstrap mask that fails its sanity
check (a film-shaped or tiny piece) gets weight 0.

Stage 2, key points: the masked hand letterboxed to `data.image_size`, with its three key points
as (x, y) / side: the phantoms' own, or (real radiographs) read off the bootstrap mask.

Registration: three key points fix an affine map onto the canvas (`registration.canvas`, at
scale `data.image_size / canvas height`); the masked hand is warped onto it (common.geometry).

Stage 3, age: a region of the canvas (`regions`), scaled to (x - 127.5) / 127.5. In training
the canvas gets a random shift / scale / rotation and gamma first (the recipe's
ShiftScaleRotate + RandomGamma), then the crop.

For common.pipeline.make_dataset: `make_*_preprocess(config, training)` (deterministic,
cacheable), `make_*_augment(config)` (random, seeded), `make_*_io(config)` (batch -> model).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from common import geometry
from common import preprocessing as common_pp
from reproductions.iglovikov18 import masks

NORMALIZATIONS = ("symmetric",)


# --- the canvas (reproductions/iglovikov18/canvas.py, re-exported) ------------------------------

from reproductions.iglovikov18.canvas import _round, canvas_hw, canvas_keypoints, canvas_scale, region_box  # noqa: E402,F401


def normalize(image) -> tf.Tensor:
    """0-255 -> [-1, 1]: (x - 127.5) / 127.5, float32."""
    return (tf.cast(image, tf.float32) - 127.5) / 127.5


def apply_mask(image, mask) -> tf.Tensor:
    """Background (mask < 128) set to 0; image and mask [H, W, 1]."""
    return tf.where(tf.cast(mask, tf.uint8) >= 128, image, tf.zeros_like(image))


def register(image, keypoints_px, *, canvas_size, canvas_points, interpolation: str = "bilinear") -> tf.Tensor:
    """Warps one (masked) image so that its three key points land on `canvas_points`.

    Args:
        image: [H, W, C] tensor.
        keypoints_px: [3, 2] (x, y) pixels of the key points in `image`.
        canvas_size: (height, width) of the canvas.
        canvas_points: [3, 2] (x, y) canvas pixels, same order.

    Returns:
        [height, width, C] tensor of image's dtype; outside the image is 0.
    """
    canvas_to_image = geometry.affine_from_points(tf.constant(np.asarray(canvas_points, np.float32)),
                                                  tf.cast(keypoints_px, tf.float32))
    return geometry.warp_affine(image, canvas_to_image, canvas_size, interpolation=interpolation)


def register_numpy(image, keypoints_px, *, canvas_size, canvas_points) -> np.ndarray:
    """`register` for one [H, W] uint8 NumPy image (prediction); the same TensorFlow op underneath."""
    out = register(tf.constant(np.asarray(image, np.uint8)[..., None]), tf.constant(np.asarray(keypoints_px, np.float32)),
                   canvas_size=canvas_size, canvas_points=canvas_points)
    return out.numpy()[..., 0]


def _gamma(image_float01, seed, low, high):
    g = tf.random.stateless_uniform([], seed=seed, minval=low, maxval=high)
    return tf.pow(tf.clip_by_value(image_float01, 0.0, 1.0), g)


def _random_warp(image, seed, aug, interpolation="bilinear"):
    hw = (int(image.shape[0]), int(image.shape[1]))
    m = geometry.random_similarity(seed, hw, shift=aug.shift, scale=aug.scale, rotate_deg=aug.rotate_deg)
    return geometry.warp_affine(image, m, hw, interpolation=interpolation), m


def _split_seed(seed, n):
    return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), n))


# --- stage 3: age networks -----------------------------------------------------------------------

def _source(config, example) -> str:
    source = config.registration.source
    if source == "auto":
        return "ground_truth" if "keypoints" in example else "registered"
    if source not in ("ground_truth", "registered"):
        raise ValueError(f"registration.source must be auto, ground_truth or registered. Received: {source!r}")
    if source == "ground_truth" and "keypoints" not in example:
        raise ValueError("registration.source='ground_truth' needs a dataset with key points (phantoms); real "
                         "radiographs must be registered first (`python -m reproductions.iglovikov18 register`).")
    return source


def canvas_source(config, example):
    """(source image uint8 [H, W, 1], [2, 3] canvas -> source map) of one example.

    ground_truth: the masked radiograph and the affine map fixed by its three key points;
    registered: a stored canvas (any size; `register` writes them at twice the canvas scale) and
    the scaling from canvas pixels to its pixels (pixel centres aligned).
    """
    image = example["image"]
    shape = tf.shape(image)
    if _source(config, example) == "registered":
        h, w = canvas_hw(config)
        sx = tf.cast(shape[1], tf.float32) / float(w)
        sy = tf.cast(shape[0], tf.float32) / float(h)
        zero = tf.constant(0.0)
        matrix = tf.stack([tf.stack([sx, zero, 0.5 * sx - 0.5]), tf.stack([zero, sy, 0.5 * sy - 0.5])])
        return image, matrix
    if "mask" in example:
        image = apply_mask(image, example["mask"])
    size = tf.cast(tf.stack([shape[1], shape[0]]), tf.float32)      # (W, H)
    keypoints_px = tf.cast(example["keypoints"], tf.float32) * size
    matrix = geometry.affine_from_points(tf.constant(canvas_keypoints(config)), keypoints_px)
    return image, matrix


def warp_canvas(config, image, canvas_to_image, seed=None) -> tf.Tensor:
    """The canvas, float32 0-255 [h, w, 1], in ONE resampling of the source image.

    With a stateless `seed` (training), the random shift / scale / rotation of
    train.augmentation is composed into the same warp and a random gamma follows, so training and
    evaluation images are interpolated alike: a second warp at the canvas' low resolution blurs
    training images only, and batch normalisation then learns statistics that evaluation images
    do not have (measured on phantoms: inference-mode MAE 53 vs 25 with batch statistics).
    """
    hw = canvas_hw(config)
    gamma_seed = None
    if seed is not None:
        aug = config.train.augmentation
        warp_seed, gamma_seed = _split_seed(seed, 2)
        jitter = geometry.random_similarity(warp_seed, hw, shift=aug.shift, scale=aug.scale, rotate_deg=aug.rotate_deg)
        canvas_to_image = geometry.compose_affine(canvas_to_image, jitter)
    canvas = geometry.warp_affine(tf.cast(image, tf.float32), canvas_to_image, hw,
                                  interpolation=config.registration.interpolation)
    if gamma_seed is not None:
        canvas = _gamma(canvas / 255.0, gamma_seed, *config.train.augmentation.gamma) * 255.0
    return canvas


def canvas_of(config, example) -> tf.Tensor:
    """The registered canvas of one example (no augmentation), float32 0-255 [h, w, 1]."""
    return warp_canvas(config, *canvas_source(config, example))


def crop_region(config, canvas, region=None) -> tf.Tensor:
    y0, x0, h, w = region_box(config, region or config.model.region)
    out = tf.image.crop_to_bounding_box(canvas, y0, x0, h, w)
    out.set_shape([h, w, canvas.shape[-1]])
    return out


def make_age_preprocess(config, training: bool):
    """Training: the source image and its canvas map (cacheable; the warp happens in `augment`).
    Evaluation: the canvas, the region crop, normalised."""
    def preprocess(example):
        out = {"id": example["id"], "male": example["male"], "boneage_months": example["boneage_months"]}
        if training:
            out["image"], out["canvas_to_image"] = canvas_source(config, example)
        else:
            out["image"] = normalize(crop_region(config, canvas_of(config, example)))
        return out
    return preprocess


def make_age_augment(config):
    """One warp (registration composed with a random shift / scale / rotation), gamma, crop, normalise."""
    def augment(example, seed):
        out = {k: v for k, v in example.items() if k != "canvas_to_image"}
        out["image"] = normalize(crop_region(config, warp_canvas(config, example["image"], example["canvas_to_image"], seed)))
        return out
    return augment


def make_age_io(config):
    head = config.model.head

    def io(batch):
        inputs = {"image": batch["image"], "male": tf.cast(batch["male"], tf.float32)[:, None]}
        months = tf.cast(batch["boneage_months"], tf.float32)
        return inputs, ({"age": months[:, None]} if head == "regression" else {"probs": months})
    return io


# --- stage 1: segmentation -----------------------------------------------------------------------

def bootstrap_with_weight(image, blur_sigma, close_size):
    """(mask 0/255 [H, W], weight): weight 0 when the mask fails its sanity check."""
    mask = masks.bootstrap_mask(image, blur_sigma=blur_sigma, close_size=close_size)
    share = float((mask > 0).mean())
    ok = 0.03 < share < 0.9 and 0.0 < masks.solidity(mask) < 0.9
    return mask, np.float32(ok)


def _tf_bootstrap(image, config):
    b = config.segment.bootstrap if "segment" in config else {"blur_sigma": 0.01, "close_size": 0.03}

    def fn(x):
        mask, weight = bootstrap_with_weight(x[..., 0], float(b["blur_sigma"]), float(b["close_size"]))
        return mask[..., None], weight
    mask, weight = tf.numpy_function(fn, [image], (tf.uint8, tf.float32), stateful=False)
    mask.set_shape(image.shape)
    weight.set_shape([])
    return mask, weight


class PseudoMasks:
    """Masks written by `refine-masks` (masks.npz: ids, masks [N, S, S] uint8, letterboxed), by id."""

    def __init__(self, path, size):
        data = np.load(path, allow_pickle=False)
        ids, stack = [str(i) for i in data["ids"]], data["masks"]
        if stack.ndim != 3 or stack.shape[1:] != (size, size):
            raise ValueError(f"{path}: masks of shape {stack.shape[1:]} do not match the U-Net input {size}; "
                             "rerun refine-masks with this config.")
        self.size = size
        self.masks = tf.constant(np.concatenate([stack, np.zeros((1, size, size), np.uint8)])[..., None])
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(ids), tf.range(len(ids), dtype=tf.int64)),
            default_value=len(ids))
        self.missing = len(ids)

    def lookup(self, example_id):
        index = self.table.lookup(example_id)
        return tf.gather(self.masks, index), tf.cast(index != self.missing, tf.float32)


def make_segment_preprocess(config, training: bool):
    """Letterboxed image and mask, uint8 [S, S, 1], plus `weight`; evaluation also scales both to [0, 1]."""
    size = int(config.data.image_size)
    pseudo = PseudoMasks(config.segment.pseudo_masks, size) if config.segment.get("pseudo_masks") else None

    def preprocess(example):
        out = {"id": example["id"], "image": example["image"]}
        if "mask" in example:
            out["mask"], weight = example["mask"], tf.constant(1.0)
        else:
            out["mask"], weight = _tf_bootstrap(example["image"], config)
        out = common_pp.letterbox(out, size)
        if pseudo is not None and "mask" not in example:
            out["mask"], weight = pseudo.lookup(example["id"])
        out["weight"] = weight
        if not training:
            out["image"] = tf.cast(out["image"], tf.float32) / 255.0
            out["mask"] = tf.cast(out["mask"] >= 128, tf.float32)
        return out
    return preprocess


def make_segment_augment(config):
    """The same random shift / scale / rotation for image (bilinear) and mask (nearest), then [0, 1]."""
    aug = config.train.augmentation

    def augment(example, seed):
        out = dict(example)
        image, m = _random_warp(tf.cast(example["image"], tf.float32) / 255.0, seed, aug)
        hw = (int(image.shape[0]), int(image.shape[1]))
        out["image"] = image
        out["mask"] = tf.cast(geometry.warp_affine(example["mask"], m, hw, interpolation="nearest") >= 128, tf.float32)
        return out
    return augment


def make_segment_io(config):
    def io(batch):
        return {"image": batch["image"]}, {"logits": batch["mask"]}, batch["weight"]
    return io


# --- stage 2: key points -----------------------------------------------------------------------

def keypoints_with_weight(image, blur_sigma, close_size, capitate_back, thumb_sector_deg):
    """(bootstrap mask [H, W] 0/255, key points [3, 2] (x, y) / (W, H), weight) for a real radiograph."""
    mask, weight = bootstrap_with_weight(image, blur_sigma, close_size)
    kp = masks.keypoints_from_mask(mask, capitate_back=capitate_back, thumb_sector_deg=thumb_sector_deg)
    if kp is None:
        return mask, np.full((3, 2), 0.5, np.float32), np.float32(0.0)
    h, w = mask.shape
    return mask, (kp / np.array([w, h], np.float32)).astype(np.float32), weight


def _tf_heuristic_keypoints(image, config):
    h = config.keypoints.heuristic
    b = {"blur_sigma": 0.01, "close_size": 0.03}

    def fn(x):
        mask, kp, weight = keypoints_with_weight(x[..., 0], b["blur_sigma"], b["close_size"],
                                                 float(h["capitate_back"]), tuple(h["thumb_sector_deg"]))
        return mask[..., None], kp, weight
    mask, kp, weight = tf.numpy_function(fn, [image], (tf.uint8, tf.float32, tf.float32), stateful=False)
    mask.set_shape(image.shape)
    kp.set_shape([3, 2])
    weight.set_shape([])
    return mask, kp, weight


def make_keypoint_preprocess(config, training: bool):
    """The masked hand letterboxed to uint8 [S, S, 1], key points [3, 2] as (x, y) / S, `weight`."""
    size = int(config.data.image_size)

    def preprocess(example):
        if "keypoints" in example:
            mask, kp, weight = example["mask"], tf.cast(example["keypoints"], tf.float32), tf.constant(1.0)
        else:
            mask, kp, weight = _tf_heuristic_keypoints(example["image"], config)
        out = common_pp.letterbox({"image": apply_mask(example["image"], mask), "keypoints": kp}, size)
        out.update({"id": example["id"], "weight": weight})
        if not training:
            out["image"] = normalize(out["image"])
        return out
    return preprocess


def make_keypoint_augment(config):
    """Random shift / scale / rotation of the image; the key points move with it."""
    aug = config.train.augmentation
    size = float(config.data.image_size)

    def augment(example, seed):
        out = dict(example)
        image, m = _random_warp(tf.cast(example["image"], tf.float32), seed, aug)
        full = tf.concat([m, tf.constant([[0.0, 0.0, 1.0]])], axis=0)
        inverse = tf.linalg.inv(full)[:2]                     # input -> output
        kp = example["keypoints"] * size
        kp = tf.matmul(kp, inverse[:, :2], transpose_b=True) + inverse[:, 2]
        out["image"] = normalize(image)
        out["keypoints"] = kp / size
        return out
    return augment


def make_keypoint_io(config):
    def io(batch):
        return {"image": batch["image"]}, {"keypoints": batch["keypoints"]}, batch["weight"]
    return io
