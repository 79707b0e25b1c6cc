"""rsna17_second models: one patch regressor (ResNet-50) per sex, and the router that picks one.

A patch model sees one grey CLAHE patch (0-255) and regresses the radiograph's bone age:

    grey [P, P, 1] -> repeat to 3 channels -> minus ImageNet "caffe" means -> ResNet-50
      (keras.applications, include_top=False, global average pooling) -> Dense(1) = z
      -> months = z * std + mean   (the training labels' mean and std of the model's sex)

The standardised target keeps the head's initial output near the labels (a random-init
regression with a raw-months output starts ~130 months off and learns far too slowly). The
gray plane is repeated three times so that keras' ImageNet weights fit the stem (`--weights`
loads them into the nested model "resnet50"); subtracting the "caffe" means is what those
weights were trained with.

The model also takes `male` as an input and does not use it: common.train's evaluation reads
the sex from the model inputs, and a sex-specific model is simply never shown the other sex.
`SexRouter` holds the trained model of each sex and sends each radiograph to its own.

Only keras.layers / keras.ops / keras.applications are used, so the models also build with
KERAS_BACKEND=jax.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from common.backbones import MIN_SIZE, build_backbone, check_backbone

BACKBONE_NAME = "resnet50"  # the nested backbone model; common code loads ImageNet weights into it
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)  # keras.applications.imagenet_utils, "caffe" mode
SEXES = ("female", "male")


@keras.saving.register_keras_serializable(package="rsna17_second")
class GreyToCaffe(keras.layers.Layer):
    """Grey 0-255 [B, P, P, 1] -> [B, P, P, 3]: the plane repeated, minus the ImageNet caffe means."""

    def call(self, x):
        x = ops.repeat(ops.cast(x, self.compute_dtype), 3, axis=-1)
        return x - ops.convert_to_tensor(CAFFE_BGR_MEAN, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (3,)


@keras.saving.register_keras_serializable(package="rsna17_second")
class Destandardize(keras.layers.Layer):
    """z [B, 1] -> months [B, 1] = z * std + mean, in float32 under any dtype policy.

    Args:
        mean: float. Mean of the training labels (months).
        std: float > 0. Their standard deviation (months).
    """

    def __init__(self, mean: float, std: float, **kwargs):
        if not std > 0:
            raise ValueError(f"std must be > 0. Received: std={std!r}")
        super().__init__(dtype="float32", **kwargs)
        self.mean, self.std = float(mean), float(std)

    def call(self, z):
        return ops.cast(z, "float32") * self.std + self.mean

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


def build_patch_model(patch_size: int, target_mean: float, target_std: float, *, weights=None,
                      bn_momentum: float | None = None, name: str = "rsna17_second",
                      backbone: str = BACKBONE_NAME) -> keras.Model:
    """Builds one sex's patch regressor.

    Args:
        patch_size: int. Side of the square grey patch (>= 32, ResNet-50's minimum).
        target_mean, target_std: float. The months of the training labels the head is scaled to.
        weights: None (random init; common code loads ImageNet weights into "resnet50"), or
            anything keras.applications.ResNet50 accepts, passed to the backbone.
        bn_momentum: float or None. Momentum of the backbone's batch-normalisation moving
            statistics; None keeps keras' 0.99. A short run (a few hundred steps) evaluates with
            statistics that lag the weights unless it is lower.
        name: str. The model's name.
        backbone: str. "resnet50" (the paper) or "tiny_cnn" (the test suite's stand-in:
            common/backbones.py).

    Returns:
        keras.Model with inputs `{"image": [B, P, P, 1] float32 (0-255), "male": [B, 1]}` (male
        is not used) and one output, months [B, 1] float32.

    Example:

        model = build_patch_model(128, 117.88, 37.91, name="rsna17_second_female")
        months = model({"image": patches, "male": male})     # [B, 1]
    """
    check_backbone(backbone, BACKBONE_NAME)
    if not isinstance(patch_size, int) or patch_size < MIN_SIZE[backbone]:
        raise ValueError(f"patch_size must be an int >= {MIN_SIZE[backbone]} ({backbone}'s minimum). "
                         f"Received: patch_size={patch_size!r}")
    image = keras.Input((patch_size, patch_size, 1), dtype="float32", name="image")
    male = keras.Input((1,), dtype="float32", name="male")
    x = GreyToCaffe(name="grey_to_caffe")(image)
    backbone = build_backbone(backbone, (patch_size, patch_size, 3), weights=weights, pooling="avg")
    if bn_momentum is not None:
        if not 0.0 <= bn_momentum < 1.0:
            raise ValueError(f"bn_momentum must be in [0, 1). Received: bn_momentum={bn_momentum!r}")
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = float(bn_momentum)
    z = keras.layers.Dense(1, dtype="float32", name="z")(backbone(x))
    months = Destandardize(target_mean, target_std, name="months")(z)
    return keras.Model(inputs={"image": image, "male": male}, outputs=months, name=name)


class SexRouter:
    """The trained patch model of each sex; each radiograph's patches go to its own sex's model.

    Args:
        models: dict {"female" | "male": keras.Model}. One or both.
        patch_batch: int. Patches per model call (memory only).
        fusion_weights: dict {sex: [N] weights} of the learned fusion, or {} (fusion.py).

    Call `patch_predictions(patches, male)` with patches [B, N, P, P, 1] and male [B] (1 = boy)
    for the per-patch bone ages [B, N]. A radiograph of a sex without a model is an error.
    """

    def __init__(self, models: dict, patch_batch: int = 512, fusion_weights: dict | None = None):
        unknown = set(models) - set(SEXES)
        if not models or unknown:
            raise ValueError(f"models must map some of {SEXES} to models. Received: {sorted(models)}")
        self.models = dict(models)
        self.patch_batch = int(patch_batch)
        self.fusion_weights = dict(fusion_weights or {})

    @property
    def sexes(self) -> tuple:
        return tuple(s for s in SEXES if s in self.models)

    def patch_predictions(self, patches, male) -> np.ndarray:
        patches = np.asarray(patches, np.float32)
        male = np.asarray(male).reshape(-1) >= 0.5
        if patches.ndim != 5 or patches.shape[0] != male.shape[0]:
            raise ValueError(f"Expected patches [B, N, P, P, C] and one sex per radiograph. Received: "
                             f"patches {patches.shape}, male {male.shape}")
        out = np.full(patches.shape[:2], np.nan, np.float64)
        for sex in SEXES:
            rows = np.flatnonzero(male == (sex == "male"))
            if rows.size == 0:
                continue
            if sex not in self.models:
                from common.datasets.base import DataError  # here: the model itself needs no TensorFlow
                raise DataError(f"{rows.size} radiograph(s) of {sex} patients, but this run has a model only for "
                                f"{' and '.join(self.sexes)}. Train with --sex both (or --sex {sex}).")
            flat = patches[rows].reshape((-1,) + patches.shape[2:])
            preds = [np.asarray(self.models[sex].predict_on_batch(
                {"image": flat[i:i + self.patch_batch], "male": np.full((len(flat[i:i + self.patch_batch]), 1),
                                                                         float(sex == "male"), np.float32)}))
                     for i in range(0, len(flat), self.patch_batch)]
            out[rows] = np.concatenate(preds).reshape(rows.size, patches.shape[1])
        return out
