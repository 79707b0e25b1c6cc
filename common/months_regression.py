"""Task functions shared by the models with one "months" regression output and an optional sex input
(rsna17_winner, lite0_regressor): loss, metric and read-out. A Task names them; the config must
have `train.loss`, `model.sex_input` and `eval.primary_estimate`."""
import keras
import numpy as np


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
