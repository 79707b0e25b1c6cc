"""Iglovikov18 as Tasks for the shared machinery: one Task per stage of the chain.

* AGE_TASK (stages regress / classify): targets are months; `mae` (months) picks the checkpoint,
  so common.train trains, evaluates and predicts it like any age model.
* SEGMENT_TASK (stage segment): U-Net logits against the mask; `dice` (higher is better) picks
  the checkpoint; evaluation is `stages.evaluate_segment` (Dice / IoU), not months.
* KEYPOINT_TASK (stage keypoints): (x, y) / side of the three key points; `px_error` (mean
  distance in input pixels) picks the checkpoint; evaluation is `stages.evaluate_keypoints`.
"""
import keras
import numpy as np
from keras import ops

from common import monthly_classes
from common.task import DataSpec, Task
from reproductions.iglovikov18 import config as ig_config
from reproductions.iglovikov18 import model as ig_model
from reproductions.iglovikov18 import preprocessing as pp

CITATION = ("Iglovikov VI, Rakhlin A, Kalinin AA, Shvets AA. Paediatric Bone Age Assessment Using Deep "
            "Convolutional Neural Networks. DLMIA 2018, LNCS 11045:300-308 (arXiv:1712.05053).")
PAPER = "iglovikov18"


# --- stage 3: age ------------------------------------------------------------------------------

def age_loss(config):
    if config.model.head == "regression":
        return {"age": keras.losses.MeanAbsoluteError(name="l1")}
    return {"probs": monthly_classes.crossentropy_loss(config.model.num_classes)}


def age_metrics(config):
    if config.model.head == "regression":
        return {"age": [keras.metrics.MeanAbsoluteError(name="mae")]}
    return {"probs": [monthly_classes.mae_metric()]}


def age_predict(model, inputs, config):
    """{estimate: months}: "regression", or the classifier's "expected" and "argmax" (primary first)."""
    out = model.predict_on_batch({"image": np.asarray(inputs["image"]), "male": np.asarray(inputs["male"], np.float32)})
    if config.model.head == "regression":
        return {"regression": np.asarray(out["age"]).reshape(-1)}
    return monthly_classes.read_out(np.asarray(out["probs"]), config.eval.primary_estimate)


AGE_TASK = Task(
    paper=PAPER,
    citation=CITATION,
    get_config=ig_config.get_config,
    build_model=ig_model.age_model_from_config,
    data=DataSpec(
        preprocess=lambda config, training: pp.make_age_preprocess(config, training),
        to_model_io=pp.make_age_io,
        augment=pp.make_age_augment,
        example_keys=("id", "image", "boneage_months", "male", "mask", "keypoints"),
    ),
    loss=age_loss,
    metrics=age_metrics,
    predict=age_predict,
    needs_sex=True,
    variants=ig_config.all_variants(ig_config.AGE_STAGES),
)


# --- stage 1: segmentation -----------------------------------------------------------------------

def _per_sample_mean(x):
    return ops.mean(ops.reshape(x, (ops.shape(x)[0], -1)), axis=-1)


def soft_jaccard(mask, logits, eps=1.0):
    """Per-example soft Jaccard index of sigmoid(logits) against the 0/1 mask (smoothed by eps pixels)."""
    p = ops.reshape(ops.sigmoid(ops.cast(logits, "float32")), (ops.shape(logits)[0], -1))
    t = ops.reshape(ops.cast(mask, "float32"), (ops.shape(mask)[0], -1))
    inter = ops.sum(p * t, axis=-1)
    return (inter + eps) / (ops.sum(p, axis=-1) + ops.sum(t, axis=-1) - inter + eps)


def segment_loss(config):
    weight = float(config.train.jaccard_weight)

    def bce_minus_log_jaccard(mask, logits):
        """Iglovikov et al. 2017 (arXiv:1706.06169): BCE - w log J, per example."""
        logits = ops.cast(logits, "float32")
        bce = _per_sample_mean(ops.binary_crossentropy(ops.cast(mask, "float32"), logits, from_logits=True))
        return bce - weight * ops.log(soft_jaccard(mask, logits))
    return {"logits": bce_minus_log_jaccard}


def hard_dice(mask, logits):
    """Per-example Dice of the thresholded prediction (logit > 0, i.e. p > 0.5); 1 when both are empty."""
    p = ops.cast(ops.reshape(ops.cast(logits, "float32"), (ops.shape(logits)[0], -1)) > 0, "float32")
    t = ops.reshape(ops.cast(mask, "float32"), (ops.shape(mask)[0], -1))
    total = ops.sum(p, axis=-1) + ops.sum(t, axis=-1)
    return ops.where(total > 0, 2.0 * ops.sum(p * t, axis=-1) / ops.maximum(total, 1.0), 1.0)


def hard_iou(mask, logits):
    d = hard_dice(mask, logits)
    return d / (2.0 - d)


def segment_metrics(config):
    return {"logits": [keras.metrics.MeanMetricWrapper(hard_dice, name="dice"),
                       keras.metrics.MeanMetricWrapper(hard_iou, name="iou")]}


def segment_predict(model, inputs, config):
    """Hand probability per pixel [B, S, S] (not months: used by the chain, not by common.evaluate)."""
    logits = np.asarray(model.predict_on_batch({"image": np.asarray(inputs["image"])})["logits"])
    return {"probability": 1.0 / (1.0 + np.exp(-logits[..., 0]))}


SEGMENT_TASK = Task(
    paper=PAPER,
    citation=CITATION,
    get_config=ig_config.get_config,
    build_model=ig_model.segment_model_from_config,
    data=DataSpec(
        preprocess=lambda config, training: pp.make_segment_preprocess(config, training),
        to_model_io=pp.make_segment_io,
        augment=pp.make_segment_augment,
        example_keys=("id", "image", "mask"),
    ),
    loss=segment_loss,
    metrics=segment_metrics,
    predict=segment_predict,
    needs_sex=False,
    variants=ig_config.all_variants(("segment",)),
    monitor="dice",
    monitor_mode="max",
)


# --- stage 2: key points -----------------------------------------------------------------------

def keypoint_loss(config):
    def squared_error(true, pred):
        return _per_sample_mean(ops.square(ops.cast(pred, "float32") - ops.cast(true, "float32")))
    return {"keypoints": squared_error}


def keypoint_metrics(config):
    size = float(config.data.image_size)

    def pixel_error(true, pred):
        """Mean Euclidean distance of the key points, in input pixels, per example."""
        d = ops.cast(pred, "float32") - ops.cast(true, "float32")
        return ops.mean(ops.sqrt(ops.sum(ops.square(d), axis=-1) + 1e-12), axis=-1) * size
    return {"keypoints": [keras.metrics.MeanMetricWrapper(pixel_error, name="px_error")]}


def keypoint_predict(model, inputs, config):
    """Key points [B, 3, 2] as (x, y) / side of the input (not months: used by the chain)."""
    return {"keypoints": np.asarray(model.predict_on_batch({"image": np.asarray(inputs["image"])})["keypoints"])}


KEYPOINT_TASK = Task(
    paper=PAPER,
    citation=CITATION,
    get_config=ig_config.get_config,
    build_model=ig_model.keypoint_model_from_config,
    data=DataSpec(
        preprocess=lambda config, training: pp.make_keypoint_preprocess(config, training),
        to_model_io=pp.make_keypoint_io,
        augment=pp.make_keypoint_augment,
        example_keys=("id", "image", "mask", "keypoints"),
    ),
    loss=keypoint_loss,
    metrics=keypoint_metrics,
    predict=keypoint_predict,
    needs_sex=False,
    variants=ig_config.all_variants(("keypoints",)),
    monitor="px_error",
    monitor_mode="min",
)

TASKS = {"segment": SEGMENT_TASK, "keypoints": KEYPOINT_TASK, "regress": AGE_TASK, "classify": AGE_TASK}
