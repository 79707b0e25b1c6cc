"""Task functions shared by the models with one "months" regression output and an optional sex input
(rsna17_winner, lite0_regressor): model inputs, loss, metric and read-out. A Task names them (`HOOKS`
for the last three); the config must have `train.loss`, `model.sex_input` and `eval.primary_estimate`."""
import keras
import numpy as np
import tensorflow as tf


def model_io(image_fn):
    """to_model_io for a Task: ({"image": image_fn(batch image, config)[, "male": (B, 1)]}, {"months": (B, 1)}).
    Each model turns the pipeline's uint8 image into its own input; the rest is the same for all."""
    def to_model_io(config):
        def io(batch):
            inputs = {"image": image_fn(batch["image"], config)}
            if config.model.sex_input:
                inputs["male"] = tf.cast(batch["male"], tf.float32)[:, None]
            return inputs, {"months": tf.cast(batch["boneage_months"], tf.float32)[:, None]}
        return io
    return to_model_io


def loss(config):
    if config.train.loss != "mean_absolute_error":
        raise ValueError(f"train.loss must be 'mean_absolute_error'. Received: {config.train.loss!r}")
    return {"months": keras.losses.MeanAbsoluteError()}


def metrics(config):
    return {"months": [keras.metrics.MeanAbsoluteError(name="mae")]}


def predict(model, inputs, config):
    """The one regression read-out (no test-time augmentation)."""
    feed = {"image": np.asarray(inputs["image"])}
    if config.model.sex_input:
        feed["male"] = np.asarray(inputs["male"], np.float32)
    months = np.asarray(model.predict_on_batch(feed)["months"], np.float64).reshape(-1)
    return {config.eval.primary_estimate: months}


HOOKS = {"loss": loss, "metrics": metrics, "predict": predict}  # Task(..., **months_regression.HOOKS)
