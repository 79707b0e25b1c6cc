"""rsna17_winner model: InceptionV3 features (+ sex through a small dense layer) -> two dense layers -> months.

The challenge report's description of the winning entry, with the layer sizes of the public
reimplementation (lukaszbinden/pediatric-bone-age-prediction, src/baseline/RSNA16BitNet.py@18bb889c):

    image [s, s, 3] -> InceptionV3 up to mixed10 -> AveragePooling2D(2) -> Flatten ─┐
    male [1] -> Dense(32, relu) ────────────────────────────────────────────────────┴> concat
      -> Dense(1000, relu) -> Dense(1000, relu) -> Dense(1) -> months

The 2 x 2 pool uses 'same' padding: at the paper's 500 px (mixed10 is 14 x 14) that is exactly
the reimplementation's 'valid' pool (7 x 7 out); at the thumbnails' 100 px (mixed10 is 1 x 1) it
is the identity instead of an error.

The output unit predicts z = (months - mean) / std of the training labels and a fixed affine
layer turns it into months: the loss and every metric are in months, and a randomly
initialised unit starts near the mean age instead of near 0 months (a raw-months output from
random weights spends its first epochs learning the offset).

Only keras.layers / keras.ops / keras.applications: the model also builds with KERAS_BACKEND=jax.
The output head (the last Dense and the months layer) runs in float32 under mixed precision.
"""
from __future__ import annotations

import keras

from common.backbones import MIN_SIZE, build_backbone, check_backbone

BACKBONE_NAME = "inception_v3"  # the nested backbone model; common code loads ImageNet weights into it


def build_rsna17_winner_model(image_size: int, *, sex_input: bool = True, sex_units: int = 32,
                              dense_units=(1000, 1000), pool_size: int = 2, channels: int = 3,
                              target_mean_months: float = 127.32, target_std_months: float = 41.18,
                              weights: str | None = None, sex_activation: str = "relu",
                              dense_activation: str = "relu", backbone: str = BACKBONE_NAME) -> keras.Model:
    """Builds the winner's network.

    Args:
        image_size: int. Side of the square input (500 in the paper setting, >= 75).
        sex_input: bool. Whether sex enters the model (False: the "nosex" ablation, whose only
            input is the image).
        sex_units: int. Units of the dense layer that sex goes through (32).
        dense_units: sequence of int. The dense layers after the concatenation (1000, 1000).
        pool_size: int. Average pooling over the mixed10 features before flattening (2).
        channels: int. Image channels (3, grey replicated, so ImageNet weights fit).
        target_mean_months, target_std_months: float. The months layer computes
            `months = z * std + mean` from the output unit z.
        weights: None (random; common code loads ImageNet weights into
            `model.get_layer("inception_v3")`), or anything keras.applications.InceptionV3 accepts.
        backbone: str. "inception_v3" (the paper) or "tiny_cnn" (the test suite's stand-in:
            common/backbones.py).

    Returns:
        A keras.Model with inputs `{"image": [batch, s, s, channels] float32, "male": [batch, 1]
        float32}` (no "male" when `sex_input=False`) and output `{"months": [batch, 1] float32}`.

    Example:

        model = build_rsna17_winner_model(500)
        months = model({"image": x, "male": male})["months"]

    Reference: Halabi SS et al. Radiology 2019;290(2):498-503 (the winning entry's description).
    """
    check_backbone(backbone, BACKBONE_NAME)
    if not isinstance(image_size, int) or image_size < MIN_SIZE[backbone]:
        raise ValueError(f"image_size must be an int >= {MIN_SIZE[backbone]} ({backbone}'s minimum). "
                         f"Received: image_size={image_size!r}")
    if not dense_units or any(not isinstance(u, int) or u < 1 for u in dense_units):
        raise ValueError(f"dense_units must be a non-empty list of positive ints. Received: dense_units={dense_units!r}")
    if not target_std_months > 0:
        raise ValueError(f"target_std_months must be > 0. Received: target_std_months={target_std_months!r}")

    image = keras.Input((image_size, image_size, channels), dtype="float32", name="image")
    x = build_backbone(backbone, (image_size, image_size, channels), weights=weights, pooling=None)(image)  # mixed10, the backbone's last layer
    x = keras.layers.AveragePooling2D(pool_size, padding="same", name="feature_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    inputs = {"image": image}
    if sex_input:
        male = keras.Input((1,), dtype="float32", name="male")
        inputs["male"] = male
        sex = keras.layers.Dense(sex_units, activation=sex_activation, name="sex_dense")(male)
        x = keras.layers.Concatenate(name="image_and_sex")([x, sex])
    for i, units in enumerate(dense_units):
        x = keras.layers.Dense(units, activation=dense_activation, name=f"dense_{i + 1}")(x)
    z = keras.layers.Dense(1, dtype="float32", name="age_z")(x)
    months = keras.layers.Rescaling(scale=target_std_months, offset=target_mean_months, dtype="float32",
                                    name="months")(z)
    return keras.Model(inputs=inputs, outputs={"months": months}, name="rsna17_winner")
