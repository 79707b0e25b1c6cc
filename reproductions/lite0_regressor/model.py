"""EfficientNet-Lite0 features -> global average pool, with the sex through a small dense layer -> months.

The head follows the kit's other regressors (rsna17_winner): the sex enters through a dense
layer and is concatenated with the pooled image features; the output unit predicts a z-score
that a fixed layer turns into months, so every loss and metric is in months and a new head
starts near the mean age. Only keras.layers: it builds on every backend. The head runs in
float32 under mixed precision.
"""
from __future__ import annotations

import keras

from common.efficientnet_lite import NAME as BACKBONE_NAME
from common.efficientnet_lite import build_efficientnet_lite0


def build_lite0_regressor(image_size: int, *, sex_input: bool = True, sex_units: int = 16, dense_units: int = 256,
                          dropout: float = 0.2, target_mean_months: float = 127.32,
                          target_std_months: float = 41.18) -> keras.Model:
    """Builds the regressor.

    Args:
        image_size: int. Side of the square input (>= 32).
        sex_input: bool. Whether the sex enters the model.
        sex_units: int. Units of the dense layer the sex goes through.
        dense_units: int. Units of the dense layer after the concatenation.
        dropout: float. Dropout before the output unit.
        target_mean_months, target_std_months: float. months = z * std + mean.

    Returns:
        keras.Model: inputs {"image": [B, s, s, 3] RGB in [0, 1], "male": [B, 1]} (no "male"
        without the sex input), output {"months": [B, 1] float32}. The backbone is the nested
        model named `efficientnet_lite0`, into which `--weights` loads ImageNet weights.

    Example:
    >>> model = build_lite0_regressor(128)
    >>> sorted(model.input)
    ['image', 'male']
    """
    if not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"image_size must be an int >= 32. Received: image_size={image_size!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")
    if not target_std_months > 0:
        raise ValueError(f"target_std_months must be > 0. Received: target_std_months={target_std_months!r}")
    image = keras.Input((image_size, image_size, 3), name="image")
    backbone = build_efficientnet_lite0((image_size, image_size, 3), include_top=False, name=BACKBONE_NAME)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(image))
    inputs = {"image": image}
    if sex_input:
        inputs["male"] = keras.Input((1,), name="male")
        sex = keras.layers.Dense(sex_units, activation="relu", name="sex_dense")(inputs["male"])
        x = keras.layers.Concatenate(name="image_and_sex")([x, sex])
    x = keras.layers.Dense(dense_units, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    z = keras.layers.Dense(1, dtype="float32", name="age_z")(x)
    months = keras.layers.Rescaling(target_std_months, target_mean_months, dtype="float32", name="months")(z)
    return keras.Model(inputs, {"months": months}, name="lite0_regressor")
