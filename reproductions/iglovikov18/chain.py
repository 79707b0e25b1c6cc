"""The trained chain on raw radiographs: U-Net mask -> key points -> registered canvas -> ages.

Used by `predict` (files), `register` (a whole dataset written as canvases for the age stages)
and `refine-masks`. Each step runs the trained network of its run directory on letterboxed
inputs, exactly as in training (`preprocessing.py`), and maps the result back to the
radiograph's own pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from common import preprocessing as common_pp
from common.runs import RecordError, RunDir
from reproductions.iglovikov18 import masks
from reproductions.iglovikov18 import preprocessing as pp
from reproductions.iglovikov18 import task as ig_task


class RunError(ValueError):
    """A run directory that cannot be used: missing, untrained, or of another stage."""


def check_run(run_dir, stage_names):
    """(config, weights path) of a trained run directory of one of `stage_names`; RunError otherwise."""
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    try:
        config = run.config()
    except RecordError as e:
        raise RunError(str(e)) from None
    if config is None:
        raise RunError(f"{run_dir}: no config.json; not a run directory (train it first)")
    if config.get("name") != "iglovikov18" or config.get("stage") not in stage_names:
        raise RunError(f"{run_dir}: a {config.get('name')} {config.get('stage')} run; expected an iglovikov18 "
                       f"run of stage {' or '.join(stage_names)}")
    weights = run.best_weights()
    if weights is None:
        raise RunError(f"{run_dir}: no trained weights in checkpoints/; train it first")
    return config, weights


def load_run(run_dir, stage_names, log=print):
    """(config, model with its best weights) of a trained run directory of one of `stage_names`."""
    config, weights = check_run(run_dir, stage_names)
    model = ig_task.TASKS[config.stage].build_model(config)
    model.load_weights(weights)
    log(f"Loaded {config.stage} run {run_dir} ({weights.name})")
    return config, model


def letterbox_geometry(height: int, width: int, size: int):
    """(side, left, top, scale): the square a letterbox pads to, the image's offset in it, size / side."""
    side = max(height, width)
    return side, (side - width) // 2, (side - height) // 2, size / side


def letterbox_numpy(image, size: int) -> np.ndarray:
    """The training letterbox (common.preprocessing.letterbox) of one [H, W] uint8 image -> [size, size]."""
    out = common_pp.letterbox({"image": tf.constant(np.asarray(image, np.uint8)[..., None])}, size)
    return out["image"].numpy()[..., 0]


def _batches(items, n):
    for i in range(0, len(items), n):
        yield items[i:i + n]


class Chain:
    """Stages 1 and 2 of a trained chain, and the registration they feed."""

    def __init__(self, segment_run, keypoints_run, log=print, batch_size: int = 32):
        self.segment_config, self.segment_model = load_run(segment_run, ("segment",), log)
        self.keypoint_config, self.keypoint_model = load_run(keypoints_run, ("keypoints",), log)
        self.segment_run, self.keypoints_run = str(segment_run), str(keypoints_run)
        self.batch_size = batch_size

    def probabilities(self, images) -> list[np.ndarray]:
        """The U-Net's hand probability of each [H, W] uint8 image, at the image's own size."""
        size = int(self.segment_config.data.image_size)
        out = []
        for chunk in _batches(list(images), self.batch_size):
            x = np.stack([letterbox_numpy(im, size) for im in chunk]).astype(np.float32)[..., None] / 255.0
            logits = np.asarray(self.segment_model.predict_on_batch({"image": x})["logits"])[..., 0]
            for im, lg in zip(chunk, logits):
                h, w = im.shape
                side, left, top, _ = letterbox_geometry(h, w, size)
                prob = 1.0 / (1.0 + np.exp(-lg))
                full = tf.image.resize(prob[None, ..., None], (side, side), method="bilinear").numpy()[0, ..., 0]
                out.append(full[top:top + h, left:left + w])
        return out

    def masks(self, images) -> list[np.ndarray]:
        """0/255 hand masks: the U-Net's probability thresholded, largest piece kept, holes filled."""
        s = self.segment_config.segment
        return [masks.clean_mask(p, threshold=float(s.threshold), largest=bool(s.largest_component))
                for p in self.probabilities(images)]

    def keypoints(self, images, hand_masks) -> np.ndarray:
        """[N, 3, 2] (x, y) pixels of the key points of each masked image, in the image's own pixels."""
        size = int(self.keypoint_config.data.image_size)
        out = []
        pairs = list(zip(images, hand_masks))
        for chunk in _batches(pairs, self.batch_size):
            x = np.stack([letterbox_numpy(np.where(m > 0, im, 0).astype(np.uint8), size) for im, m in chunk])
            x = (x.astype(np.float32)[..., None] - 127.5) / 127.5
            kp = np.asarray(self.keypoint_model.predict_on_batch({"image": x})["keypoints"])
            for (im, _), k in zip(chunk, kp):
                h, w = im.shape
                side, left, top, _ = letterbox_geometry(h, w, size)
                out.append(k * side - np.array([left, top], np.float32))
        return np.asarray(out, np.float32).reshape(-1, 3, 2)

    def register(self, images, age_config, hand_masks=None, keypoints=None):
        """(canvases [N, h, w] uint8, masks, key points) at `age_config`'s canvas size."""
        images = [np.asarray(im, np.uint8) for im in images]
        hand_masks = self.masks(images) if hand_masks is None else hand_masks
        keypoints = self.keypoints(images, hand_masks) if keypoints is None else keypoints
        hw, points = pp.canvas_hw(age_config), pp.canvas_keypoints(age_config)
        canvases = []
        for im, m, kp in zip(images, hand_masks, keypoints):
            try:
                canvases.append(pp.register_numpy(np.where(m > 0, im, 0).astype(np.uint8), kp,
                                                  canvas_size=hw, canvas_points=points))
            except (tf.errors.InvalidArgumentError, ValueError):  # collinear key points: no affine map
                canvases.append(np.zeros(hw, np.uint8))
        return np.stack(canvases), hand_masks, keypoints


def age_inputs(age_config, canvases, males) -> dict:
    """The age network's inputs for canvases [N, h, w] uint8 and sex (1 = male)."""
    crops = [pp.crop_region(age_config, tf.constant(c[..., None])) for c in canvases]
    image = pp.normalize(tf.stack(crops)).numpy()
    return {"image": image, "male": np.asarray(males, np.float32).reshape(-1, 1)}
