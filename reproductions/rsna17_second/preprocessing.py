"""RSNA 2017 second place's own preprocessing: hand crop, square resize, CLAHE, 7 x 7 patches.

Each function works on ONE example, eagerly or inside `tf.data.Dataset.map`. The chain
follows the method as described for the challenge's second-place entry (issue #7, from the
challenge report, Halabi et al. 2019; the entry's code is not public, so every size and
threshold here is reconstructed: config.py names each one):

1. **hand crop** (`hand_box`): an automatic threshold (triangle rule, else Otsu) of a blurred
   copy of the film at 256 px, a morphological opening, then the bounding box of the largest
   connected component (searched again inside it when it is a rectangular collimation field).
   Side markers, rulers and labels are smaller components and fall away. When no component is
   plausible (smaller than `min_area` or larger than `max_area` of the film, e.g. an inverted
   film or a blank image) the whole film is used and a warning names the image;
2. **square resize** (`square_crop`): a square around the box's centre, `margin` wider than the
   box's long side, zero-padded where it leaves the film (the hand keeps its proportions),
   resized to `image_size` x `image_size`;
3. **CLAHE** (OpenCV) of the resized crop;
4. **49 overlapping patches** (`extract_patches`): `patch_size` squares whose top-left corners
   lie on a regular 7 x 7 grid with stride (image_size - patch_size) / 6, so the first and last
   patches touch the borders: at 512 px, 128-px patches every 64 px (each overlaps its
   neighbour by half). Row-major order: patch k sits at row k // 7, column k % 7. The "whole"
   variants (ablation of issue #8) use a 1 x 1 grid with patch_size = image_size: the one
   "patch" is the whole preprocessed hand crop, and everything below yields one row for it.

Steps 1-3 are deterministic and cached as one uint8 image (`make_example_preprocess`); step 4
runs after the cache (`make_example_expand`), so one radiograph is decoded and enhanced once
and yields 49 training examples. Evaluation and prediction take the 49 patches as one stack
(`make_example_test_patches`) so that their predictions can be fused per radiograph.

Example:

    import tensorflow as tf
    from reproductions.rsna17_second import preprocessing as pp
    from reproductions.rsna17_second.config import get_config
    data = get_config().data
    image = tf.io.decode_png(tf.io.read_file("hand.png"), channels=1)
    hand = pp.crop_resize_clahe(image, size=data.image_size, hand_crop=data.hand_crop, clahe=data.clahe)
    patches = pp.extract_patches(hand, data.patch_size, data.patch_grid)   # [49, 128, 128, 1] uint8
"""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import tensorflow as tf

from common import preprocessing as common_pp

UNUSED_KEYS = ("mask", "keypoints")  # phantom annotations; a cropped, resized image no longer matches them
HAND_CROP_KEYS = ("method", "work_size", "blur", "open_kernel", "thresholds", "field_fill", "margin", "min_area",
                  "max_area")


class HandNotFoundWarning(UserWarning):
    """No plausible hand component: the whole film was used instead of a crop."""


# --- 1. hand box -------------------------------------------------------------------------------

def _check_hand_crop(hand_crop) -> dict:
    missing = [k for k in HAND_CROP_KEYS if k not in hand_crop]
    if missing:
        raise ValueError(f"hand_crop needs the keys {list(HAND_CROP_KEYS)}; missing {missing}. "
                         f"Received: hand_crop={dict(hand_crop)}")
    if hand_crop["method"] not in ("threshold_largest_component", "none"):
        raise ValueError("hand_crop.method must be 'threshold_largest_component' or 'none'. "
                         f"Received: method={hand_crop['method']!r}")
    if not 0 <= hand_crop["min_area"] < hand_crop["max_area"] <= 1:
        raise ValueError("Expected 0 <= hand_crop.min_area < hand_crop.max_area <= 1. "
                         f"Received: min_area={hand_crop['min_area']}, max_area={hand_crop['max_area']}")
    return dict(hand_crop)


def _largest_component(mask: np.ndarray):
    """(area in px, (x, y, w, h), component mask) of the largest 8-connected foreground component, or None."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n < 2:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return int(stats[k, cv2.CC_STAT_AREA]), tuple(int(v) for v in stats[k, :4]), labels == k


THRESHOLDS = {"otsu": cv2.THRESH_OTSU, "triangle": cv2.THRESH_TRIANGLE}


def _threshold_mask(image: np.ndarray, rule: str, open_kernel: int, within: np.ndarray | None = None) -> np.ndarray:
    """Foreground of `image` by an automatic threshold ("otsu" or "triangle"), computed from the
    pixels of `within` only when given, then opened with an `open_kernel` px square."""
    values = image[within] if within is not None else image.reshape(-1)
    if values.size == 0 or int(values.max()) == int(values.min()):
        return np.zeros_like(image)
    threshold, _ = cv2.threshold(np.ascontiguousarray(values.reshape(1, -1)), 0, 255,
                                 cv2.THRESH_BINARY + THRESHOLDS[rule])
    mask = np.where(image > threshold, 255, 0).astype(np.uint8)
    if within is not None:
        mask[~within] = 0
    if open_kernel > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((open_kernel, open_kernel), np.uint8))
    return mask


def hand_box(gray: np.ndarray, *, work_size: int = 256, blur: int = 5, open_kernel: int = 5,
             thresholds=("triangle", "otsu"), min_area: float = 0.05, max_area: float = 0.95,
             field_fill: float = 0.85, **_) -> tuple[tuple[int, int, int, int], bool]:
    """The hand's bounding box in a grey film: ((y0, x0, y1, x1), found).

    On the film resized to `work_size` px on its long side and blurred (`blur` px Gaussian):
    an automatic threshold, an opening with an `open_kernel` px square (cuts thin bridges to
    markers and rulers), the largest 8-connected component. The thresholds are tried in order
    (`thresholds`): the triangle rule, made for one dominant dark background peak, keeps the
    soft-tissue silhouette where Otsu's often separates bone from soft tissue instead; Otsu
    is the fallback when the triangle rule finds nothing plausible.

    Raw films often show the bright, rectangular collimation field on a dark surround; the
    threshold then finds the field, not the hand. A component that fills more than
    `field_fill` of its bounding box, a box that leaves a surround (at most `max_area` of the
    film), is taken for such a field and the search is repeated inside it with Otsu's threshold
    computed from the field's own pixels (a hand with spread fingers fills about half of its
    box; a hand that fills the whole film is not mistaken for a field).

    Returns the box in the film's own pixels (y1, x1 exclusive) and True; or the whole film
    and False when no rule gives a largest component between `min_area` and `max_area` of the
    film (nothing hand-like).

    Args:
        gray: uint8 [H, W] or [H, W, 1].
    """
    gray = np.asarray(gray)
    if gray.ndim == 3:
        gray = gray[..., 0]
    if gray.ndim != 2 or gray.dtype != np.uint8 or min(gray.shape) < 2:
        raise ValueError(f"Expected one uint8 grey image [H, W] of at least 2 x 2. "
                         f"Received: shape={gray.shape}, dtype={gray.dtype}")
    unknown = [t for t in thresholds if t not in THRESHOLDS]
    if unknown or not thresholds:
        raise ValueError(f"thresholds must be some of {sorted(THRESHOLDS)}. Received: thresholds={list(thresholds)}")
    h, w = gray.shape
    # Always at work_size (thumbnails are enlarged), so blur and opening mean the same at every film size.
    scale = work_size / max(h, w)
    small = gray if scale == 1.0 else cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                 interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if blur > 1:
        small = cv2.GaussianBlur(small, (blur | 1, blur | 1), 0)
    for rule in thresholds:
        found = _largest_component(_threshold_mask(small, rule, open_kernel))
        if found is None or not min_area <= found[0] / small.size <= max_area:
            continue
        area, (x, y, bw, bh), component = found
        if area / float(bw * bh) > field_fill and bw * bh <= max_area * small.size:  # a field, with a surround
            inner = _largest_component(_threshold_mask(small, "otsu", open_kernel, within=component))
            if (inner is not None and inner[0] >= min_area * area
                    and inner[0] / float(inner[1][2] * inner[1][3]) <= field_fill):
                area, (x, y, bw, bh), _ = inner
        sy, sx = h / small.shape[0], w / small.shape[1]
        y0, x0 = int(np.floor(y * sy)), int(np.floor(x * sx))
        y1, x1 = min(h, int(np.ceil((y + bh) * sy))), min(w, int(np.ceil((x + bw) * sx)))
        return (y0, x0, y1, x1), True
    return (0, 0, h, w), False


# --- 2. square crop and resize ------------------------------------------------------------------

def square_box(box, margin: float) -> tuple[int, int, int]:
    """(top, left, side) of the square centred on `box` whose side is (1 + 2 margin) x its long side."""
    y0, x0, y1, x1 = box
    side = max(1, int(round(max(y1 - y0, x1 - x0) * (1.0 + 2.0 * margin))))
    cy, cx = (y0 + y1) / 2.0, (x0 + x1) / 2.0
    return int(round(cy - side / 2.0)), int(round(cx - side / 2.0)), side


def square_crop(gray: np.ndarray, box, margin: float) -> np.ndarray:
    """The square `square_box(box, margin)` cut from `gray` [H, W], zero-padded outside the film."""
    top, left, side = square_box(box, margin)
    h, w = gray.shape
    out = np.zeros((side, side), gray.dtype)
    sy0, sx0, sy1, sx1 = max(0, top), max(0, left), min(h, top + side), min(w, left + side)
    out[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = gray[sy0:sy1, sx0:sx1]
    return out


def crop_resize_clahe_array(gray: np.ndarray, *, size: int, hand_crop, clahe, name: str = "") -> np.ndarray:
    """Steps 1-3 on a NumPy film: uint8 [H, W(, 1)] -> uint8 [size, size] (hand crop, resize, CLAHE)."""
    gray = np.asarray(gray)
    if gray.ndim == 3:
        gray = gray[..., 0]
    hand_crop = _check_hand_crop(hand_crop)
    if hand_crop["method"] == "none":
        box = (0, 0) + gray.shape
    else:
        box, found = hand_box(gray, **hand_crop)
        if not found:
            warnings.warn(f"rsna17_second: no hand found in {name or 'an image'} ({gray.shape[1]} x {gray.shape[0]} px): "
                          "using the whole film instead of a hand crop.", HandNotFoundWarning, stacklevel=2)
    square = square_crop(gray, box, hand_crop["margin"])
    interpolation = cv2.INTER_AREA if square.shape[0] > size else cv2.INTER_LINEAR
    resized = cv2.resize(square, (size, size), interpolation=interpolation)
    return common_pp.clahe_array(resized, clahe["clip_limit"], clahe["tile_grid"])


def crop_resize_clahe(image_hw1, *, size: int, hand_crop, clahe, example_id=None) -> tf.Tensor:
    """Steps 1-3 on a tensor: uint8 [H, W, 1] -> uint8 [size, size, 1] (OpenCV via tf.numpy_function).

    Args:
        image_hw1: uint8 tensor [H, W, 1] (or [H, W]) of any size.
        size: int. Side of the square the hand crop is resized to.
        hand_crop: dict with the keys of `HAND_CROP_KEYS` (see `hand_box`, `square_box`).
        clahe: dict with `clip_limit` (float) and `tile_grid` (int, n x n tiles).
        example_id: optional string tensor, named in the warning when no hand is found.
    """
    hand_crop = _check_hand_crop(hand_crop)  # validate here, not inside a tf.data worker
    if "clip_limit" not in clahe or "tile_grid" not in clahe:
        raise ValueError(f"clahe needs clip_limit and tile_grid. Received: clahe={dict(clahe)}")
    image = tf.convert_to_tensor(image_hw1)
    if image.dtype != tf.uint8:
        raise ValueError(f"Expected a uint8 image (0-255 grey levels). Received: dtype={image.dtype}")
    if image.shape.rank == 2:
        image = image[..., tf.newaxis]
    if image.shape.rank != 3 or (image.shape[-1] is not None and image.shape[-1] != 1):
        raise ValueError(f"Expected one grey image [H, W, 1]. Received: shape={image.shape}")
    name = tf.constant("") if example_id is None else tf.convert_to_tensor(example_id)
    if name.dtype != tf.string:
        name = tf.strings.as_string(name)

    def run(pixels, label):
        label = label.decode() if isinstance(label, bytes) else str(label)
        return crop_resize_clahe_array(pixels, size=size, hand_crop=hand_crop, clahe=clahe, name=label)[..., None]
    out = tf.numpy_function(run, [image, name], tf.uint8, stateful=False)
    out.set_shape([size, size, 1])
    return out


# --- 4. patches --------------------------------------------------------------------------------

def patch_stride(image_size: int, patch_size: int, grid: int = 7) -> int:
    """The grid's stride; the grid must fit exactly: image_size = (grid - 1) * stride + patch_size.

    A 1 x 1 grid is the whole image as one patch (the "whole" variants): patch_size must then
    equal image_size, and the stride, which no second patch uses, is reported as patch_size.
    """
    if not (isinstance(grid, int) and grid >= 1 and 0 < patch_size <= image_size):
        raise ValueError(f"Expected grid >= 1 and 0 < patch_size <= image_size. Received: grid={grid}, "
                         f"patch_size={patch_size}, image_size={image_size}")
    if grid == 1:
        if patch_size != image_size:
            raise ValueError(f"A 1 x 1 grid is the whole image as one patch: patch_size must equal image_size. "
                             f"Received: patch_size={patch_size}, image_size={image_size}")
        return patch_size
    if (image_size - patch_size) % (grid - 1):
        raise ValueError(f"A {grid} x {grid} grid of {patch_size}-px patches does not fit a {image_size}-px image "
                         f"exactly: (image_size - patch_size) must be a multiple of {grid - 1}. Received: "
                         f"image_size={image_size}, patch_size={patch_size}")
    stride = (image_size - patch_size) // (grid - 1)
    if stride == 0:
        raise ValueError(f"patch_size {patch_size} = image_size {image_size}: all patches would be the same")
    return stride


def patch_origins(image_size: int, patch_size: int, grid: int = 7) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of the grid's patches, row-major (patch k: row k // grid, column k % grid)."""
    stride = patch_stride(image_size, patch_size, grid)
    return [(i * stride, j * stride) for i in range(grid) for j in range(grid)]


def patch_centres(image_size: int, patch_size: int, grid: int = 7) -> np.ndarray:
    """Centres (x, y) of the patches in pixels of the resized image, row-major: [grid * grid, 2]."""
    return np.array([(x + patch_size / 2.0, y + patch_size / 2.0)
                     for y, x in patch_origins(image_size, patch_size, grid)])


def extract_patches(image, patch_size: int, grid: int = 7) -> tf.Tensor:
    """The grid x grid overlapping patches of one square image: [S, S, C] -> [grid * grid, P, P, C].

    Same dtype as the input; patch k is image[y:y + P, x:x + P] with (y, x) = patch_origins()[k].
    With grid 1 (and P = S) it is the image itself, [1, S, S, C].
    """
    image = tf.convert_to_tensor(image)
    if image.shape.rank != 3 or image.shape[0] is None or image.shape[0] != image.shape[1]:
        raise ValueError(f"Expected one square image [S, S, C] with a static size. Received: shape={image.shape}")
    size, channels = int(image.shape[0]), image.shape[-1]
    stride = patch_stride(size, patch_size, grid)
    if grid == 1:  # the whole image is the one patch (patch_stride checked patch_size == size)
        return image[tf.newaxis]
    patches = tf.image.extract_patches(image[tf.newaxis], sizes=[1, patch_size, patch_size, 1],
                                       strides=[1, stride, stride, 1], rates=[1, 1, 1, 1], padding="VALID")
    patches = tf.reshape(patches, [grid * grid, patch_size, patch_size, channels])
    patches.set_shape([grid * grid, patch_size, patch_size, channels])
    return patches


# --- adapters for common.pipeline.make_dataset (example dicts) ---------------------------------

def _load(example, config):
    data = config.data
    return crop_resize_clahe(example["image"], size=data.image_size, hand_crop=data.hand_crop, clahe=data.clahe,
                             example_id=example.get("id"))


def make_example_preprocess(config):
    """`preprocess(example) -> example` for make_dataset: the cacheable uint8 [S, S, 1] hand image."""
    patch_stride(config.data.image_size, config.data.patch_size, config.data.patch_grid)  # fail early

    def preprocess(example):
        out = {k: v for k, v in example.items() if k not in UNUSED_KEYS}
        out["image"] = _load(example, config)
        return out
    return preprocess


def expand_to_patches(example, patch_size: int, grid: int = 7):
    """One example -> grid * grid rows: `image` becomes its patches, every other feature is repeated,
    and `patch` (int32) says which grid position each row came from."""
    patches = extract_patches(example["image"], patch_size, grid)
    n = grid * grid
    out = {k: tf.repeat(tf.convert_to_tensor(v)[tf.newaxis], n, axis=0)
           for k, v in example.items() if k != "image"}
    out["image"] = patches
    out["patch"] = tf.range(n, dtype=tf.int32)
    return out


def make_example_expand(config):
    """`expand(example) -> example` for make_dataset: one cached hand image -> its 49 patch rows
    (patch_grid ** 2 rows; one row, the whole image, with a 1 x 1 grid)."""
    data = config.data

    def expand(example):
        return expand_to_patches(example, data.patch_size, data.patch_grid)
    return expand


def make_example_test_patches(config):
    """`preprocess(example) -> example` for evaluate/predict: `image` is the [49, P, P, 1] stack
    ([1, S, S, 1], the whole image, with a 1 x 1 grid)."""
    data = config.data
    preprocess = make_example_preprocess(config)

    def patches(example):
        out = preprocess(example)
        out["image"] = extract_patches(out["image"], data.patch_size, data.patch_grid)
        return out
    return patches
