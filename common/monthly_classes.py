"""The monthly-class read-out, shared by the classifiers over bone-age months (larson18, iglovikov18's
classification head): class k stands for a bone age of k months (k = 0..C-1), the model's output
"probs" is a softmax over the classes.

* `expected_age` (sum_k k * p_k) and `argmax_age` (the most probable month) read the age off;
  `read_out` gives both as a Task's predict returns them, the primary one first.
* `crossentropy_loss`: cross-entropy against the one-hot class of the true month (rounded,
  clipped to the classes), optionally label-smoothed; `mae_metric`: the expected age's absolute
  error in months, so that training logs and checkpoints speak in months.
* `age_to_class`: the same month -> class rule for NumPy and tf.data.

No half-month offset: the RSNA labels are whole months, so class k is exactly label k (a bin-centre
reading, k + 0.5, would bias every estimate by +0.5 month). Only keras.ops in the loss and metric,
so they run under any Keras backend (inside a JAX jit the months are a tracer).
"""
import keras
import numpy as np
from keras import ops

NUM_CLASSES = 240  # months 0-239: the default of `age_to_class`


def class_months(num_classes: int = NUM_CLASSES) -> np.ndarray:
    """The bone age, in months, that each class stands for: class k = k months."""
    return np.arange(num_classes, dtype="float32")


def expected_age(probs):
    """Probability-weighted age in months, `sum_k k * p_k`, over the last axis."""
    probs = ops.convert_to_tensor(probs, dtype="float32")
    return ops.sum(probs * ops.convert_to_tensor(class_months(probs.shape[-1])), axis=-1)


def argmax_age(probs):
    """The most probable month, `argmax_k p_k`, over the last axis."""
    return ops.argmax(ops.convert_to_tensor(probs, dtype="float32"), axis=-1)


def read_out(probs, primary: str) -> dict:
    """{"expected", "argmax"} months (float64 NumPy) of probabilities [N, C], `primary` first."""
    read = {"expected": np.asarray(expected_age(probs)), "argmax": np.asarray(argmax_age(probs)).astype(np.float64)}
    return {primary: read[primary], **{k: v for k, v in read.items() if k != primary}}


def age_to_class(months, num_classes: int = NUM_CLASSES):
    """Bone age in months -> int32 class: rounded to the nearest month, clipped to [0, C-1].

    Accepts Python numbers, NumPy arrays or tf tensors (returned as the same kind), so it can
    be used inside `tf.data` whatever the Keras backend.
    """
    if type(months).__module__.startswith("tensorflow"):
        import tensorflow as tf  # only reached for tf tensors, i.e. inside the tf.data pipeline

        rounded = tf.round(tf.cast(months, tf.float32))
        return tf.cast(tf.clip_by_value(rounded, 0.0, float(num_classes - 1)), tf.int32)
    return np.clip(np.rint(np.asarray(months, dtype="float64")), 0, num_classes - 1).astype("int32")


def month_class(months, num_classes: int):
    """`age_to_class`'s rule in keras.ops, flattened to [B] int32 (for losses: any backend, traced or not)."""
    return ops.cast(ops.clip(ops.round(ops.reshape(ops.cast(months, "float32"), (-1,))), 0, num_classes - 1), "int32")


def crossentropy_loss(num_classes: int, label_smoothing: float = 0.0, name: str = "month_crossentropy"):
    """loss(months [B] or [B, 1], probs [B, C]) -> [B]: cross-entropy against the month's one-hot class,
    label-smoothed (target * (1 - s) + s / C) when `label_smoothing` is set."""
    def loss(months, probs):
        target = ops.one_hot(month_class(months, num_classes), num_classes)
        if label_smoothing:
            target = target * (1.0 - label_smoothing) + label_smoothing / num_classes
        return keras.losses.categorical_crossentropy(target, ops.cast(probs, "float32"))
    loss.__name__ = loss.__qualname__ = name
    return loss


def absolute_error_months(months, probs):
    """|expected age - true months| per example, [B]."""
    return ops.abs(expected_age(probs) - ops.reshape(ops.cast(months, "float32"), (-1,)))


def mae_metric():
    """A fresh `mae` metric (months) of the expected age, for a Task's metrics on the "probs" output."""
    return keras.metrics.MeanMetricWrapper(absolute_error_months, name="mae")
