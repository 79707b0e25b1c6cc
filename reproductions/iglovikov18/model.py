"""Iglovikov18 networks: the VGG-style age networks (regression, classification) and the key-point net.

VGG-style tower (issue #6's summary of the paper; line by line as the authors' group's recipe,
neuro-inc/ml-recipe-bone-age code/model.py@5d35b32c, class m46): six blocks of

    3x3 conv -> ELU -> BN -> 1x1 conv -> ELU -> BN -> 3x3 max-pool, stride 2

with 32, 64, 128, 128, 256, 384 filters, then flatten -> dropout -> dense 2048 -> ELU ->
dropout -> dense 2048 -> ELU -> output. Note the order: the activation comes *before* batch
normalisation, as in the recipe.

Heads: regression = one linear unit read as months, `offset + scale * unit` (the recipe trains
on (months - 120) / 120); classification = a softmax over 240 monthly classes (class k = k
months), read as the expected month and the most probable month.

Sex ("sex_handling"): "separate" builds two towers, one per sex, and `SexSwitch` passes on the
output of the patient's sex, so each tower is a sex-specific network that only ever learns from
its own sex (zero gradient from the other); "input" builds one tower and concatenates sex to its
flattened features.

Only keras.layers / keras.ops are used, so every model also builds with KERAS_BACKEND=jax.
"""
from __future__ import annotations

import keras
from keras import ops

from common import monthly_classes
from reproductions.iglovikov18 import canvas

# The classifier's read-outs (expected and most probable month) and the month -> class rule: common's.
expected_age, argmax_age, age_to_class = (monthly_classes.expected_age, monthly_classes.argmax_age,
                                          monthly_classes.age_to_class)

HEADS = ("regression", "classification")
SEX_HANDLING = ("separate", "input")
POOL_PADDINGS = ("valid", "same")


def _initializer(name):
    if name == "he_normal_fan_out":  # torch kaiming_normal_(mode="fan_out", nonlinearity="relu")
        return keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")
    return name


def _check_filters(filters):
    if not filters or not all(isinstance(f, int) and f > 0 for f in filters):
        raise ValueError(f"filters must be a non-empty list of positive ints. Received: filters={filters!r}")


# torch.nn.BatchNorm2d's default momentum 0.1 (new = 0.9 old + 0.1 batch), as in the recipe; Keras' default is 0.99.
BN_MOMENTUM = 0.9


def vgg_features(x, filters, *, pool_size: int = 3, pool_padding: str = "valid",
                 kernel_initializer: str = "he_normal_fan_out", prefix: str = "", bn_momentum: float = BN_MOMENTUM):
    """The convolutional part: one block per entry of `filters`, then flatten."""
    _check_filters(filters)
    if pool_padding not in POOL_PADDINGS:
        raise ValueError(f"pool_padding must be one of {POOL_PADDINGS}. Received: pool_padding={pool_padding!r}")
    init = _initializer(kernel_initializer)
    for i, f in enumerate(filters, 1):
        b = f"{prefix}block{i}_"
        x = keras.layers.Conv2D(f, 3, padding="same", kernel_initializer=init, name=b + "conv1")(x)
        x = keras.layers.Activation("elu", name=b + "elu1")(x)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name=b + "bn1")(x)
        x = keras.layers.Conv2D(f, 1, kernel_initializer=init, name=b + "conv2")(x)
        x = keras.layers.Activation("elu", name=b + "elu2")(x)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name=b + "bn2")(x)
        x = keras.layers.MaxPooling2D(pool_size, strides=2, padding=pool_padding, name=b + "pool")(x)
    return keras.layers.Flatten(name=f"{prefix}flatten")(x)


def torch_linear_init():
    """torch.nn.Linear's default weight init, U(+-1/sqrt(fan_in)) (the recipe leaves its dense layers at it)."""
    return keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")


def dense_head(x, units: int, dropout: float, outputs: int, *, prefix: str = "", output_name: str = "out"):
    """dropout -> dense -> ELU -> dropout -> dense -> ELU -> dense(outputs) (float32)."""
    for i in (1, 2):
        x = keras.layers.Dropout(dropout, name=f"{prefix}dropout{i}")(x)
        x = keras.layers.Dense(units, kernel_initializer=torch_linear_init(), name=f"{prefix}fc{i}")(x)
        x = keras.layers.Activation("elu", name=f"{prefix}elu_fc{i}")(x)
    return keras.layers.Dense(outputs, kernel_initializer=torch_linear_init(), dtype="float32",
                              name=f"{prefix}{output_name}")(x)


def _check_input_shape(input_shape, filters, pool_size, pool_padding):
    h, w = int(input_shape[0]), int(input_shape[1])
    for _ in filters:
        if pool_padding == "valid":
            h, w = (h - pool_size) // 2 + 1, (w - pool_size) // 2 + 1
        else:
            h, w = -(-h // 2), -(-w // 2)
        if h < 1 or w < 1:
            raise ValueError(f"Input {tuple(input_shape[:2])} is too small for {len(filters)} {pool_size}x{pool_size}/2 "
                             f"{pool_padding} pools; use pool_padding='same' or a larger input.")


@keras.saving.register_keras_serializable(package="iglovikov18")
class SexSwitch(keras.layers.Layer):
    """Passes on the female or the male tower's output by the patient's sex (male >= 0.5).

    Call args: `[female_out, male_out, male]` with male [batch, 1]. Uses `ops.where`, so the
    tower that is not chosen gets exactly zero gradient. Computed in float32.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        female, male_out, male = inputs
        is_male = ops.reshape(ops.cast(male, "float32"), (-1, 1)) >= 0.5
        return ops.where(is_male, ops.cast(male_out, "float32"), ops.cast(female, "float32"))

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def build_age_model(input_shape, *, head: str = "regression", filters=(32, 64, 128, 128, 256, 384),
                    pool_size: int = 3, pool_padding: str = "valid", dense_units: int = 2048,
                    dropout: float = 0.3, num_classes: int = 240, age_offset: float = 120.0,
                    age_scale: float = 120.0, sex_handling: str = "separate",
                    kernel_initializer: str = "he_normal_fan_out", name: str = "iglovikov18_age") -> keras.Model:
    """Builds one age network (one region, one head).

    Args:
        input_shape: (height, width) or (height, width, 1) of the region crop.
        head: "regression" (months) or "classification" (softmax over num_classes months).
        filters, pool_size, pool_padding: the six VGG-style blocks (see module docstring).
        dense_units, dropout: the two dense layers.
        num_classes: int. Monthly classes of the classification head (class k = k months).
        age_offset, age_scale: float. Regression read-out: months = offset + scale * unit.
        sex_handling: "separate" (a tower per sex) or "input" (sex joins the dense layers).

    Returns:
        keras.Model with inputs {"image": [b, h, w, 1] float32, "male": [b, 1] float32} and
        output {"age": [b, 1] months} (regression) or {"probs": [b, num_classes]} (classification).

    Example:

        model = build_age_model((100, 75), head="classification", pool_padding="same", dense_units=256)
        probs = model({"image": x, "male": m})["probs"]
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}. Received: head={head!r}")
    if sex_handling not in SEX_HANDLING:
        raise ValueError(f"sex_handling must be one of {SEX_HANDLING}. Received: sex_handling={sex_handling!r}")
    if head == "classification" and (not isinstance(num_classes, int) or num_classes < 2):
        raise ValueError(f"num_classes must be an int >= 2. Received: num_classes={num_classes!r}")
    filters = list(filters)
    _check_filters(filters)
    input_shape = tuple(input_shape[:2]) + (1,)
    _check_input_shape(input_shape, filters, pool_size, pool_padding)

    image = keras.Input(input_shape, name="image")
    male = keras.Input((1,), name="male")
    outputs = 1 if head == "regression" else num_classes
    conv = dict(pool_size=pool_size, pool_padding=pool_padding, kernel_initializer=kernel_initializer)

    if sex_handling == "separate":
        towers = []
        for sex in ("female", "male"):
            features = vgg_features(image, filters, prefix=f"{sex}_", **conv)
            towers.append(dense_head(features, dense_units, dropout, outputs, prefix=f"{sex}_"))
        out = SexSwitch(name="sex_switch")([towers[0], towers[1], male])
    else:
        features = vgg_features(image, filters, **conv)
        features = keras.layers.Concatenate(name="with_sex")([features, male])
        out = dense_head(features, dense_units, dropout, outputs)

    if head == "regression":
        age = keras.layers.Rescaling(age_scale, offset=age_offset, dtype="float32", name="age")(out)
        return keras.Model({"image": image, "male": male}, {"age": age}, name=name)
    probs = keras.layers.Softmax(dtype="float32", name="probs")(out)
    return keras.Model({"image": image, "male": male}, {"probs": probs}, name=name)


def build_keypoint_model(size: int, *, num_keypoints: int = 3, filters=(32, 64, 128, 128, 256, 384),
                         pool_size: int = 3, pool_padding: str = "valid", dense_units: int = 512,
                         dropout: float = 0.3, kernel_initializer: str = "he_normal_fan_out",
                         name: str = "iglovikov18_keypoints") -> keras.Model:
    """The key-point network: the VGG-style tower regressing (x, y) / side of each key point.

    Returns a keras.Model {"image": [b, size, size, 1]} -> {"keypoints": [b, K, 2]} float32,
    coordinates as fractions of the input side (pixel-centre convention: pixel = fraction x side).
    """
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8. Received: size={size!r}")
    filters = list(filters)
    _check_filters(filters)
    _check_input_shape((size, size), filters, pool_size, pool_padding)
    image = keras.Input((size, size, 1), name="image")
    features = vgg_features(image, filters, pool_size=pool_size, pool_padding=pool_padding,
                            kernel_initializer=kernel_initializer)
    flat = dense_head(features, dense_units, dropout, 2 * num_keypoints, output_name="coords")
    # Start at the image centre: 0.5 + small offsets, so early predictions are inside the image.
    coords = keras.layers.Rescaling(1.0, offset=0.5, dtype="float32", name="centred")(flat)
    keypoints = keras.layers.Reshape((num_keypoints, 2), dtype="float32", name="keypoints")(coords)
    return keras.Model({"image": image}, {"keypoints": keypoints}, name=name)


# --- from a config (what task.py and benchmarks/train_step.py build) ----------------------------

def age_model_from_config(config):
    """The age network (regression or classification head) of an iglovikov18 regress/classify config."""
    m = config.model
    _, _, h, w = canvas.region_box(config, m.region)
    return build_age_model(
        (h, w), head=m.head, filters=m.filters, pool_size=m.pool_size, pool_padding=m.pool_padding,
        dense_units=m.dense_units, dropout=m.dropout, num_classes=m.num_classes, age_offset=m.age_offset,
        age_scale=m.age_scale, sex_handling=m.sex_handling, kernel_initializer=m.kernel_initializer,
        name=f"iglovikov18_{m.head}_{m.region}")


def segment_model_from_config(config):
    """The U-Net of an iglovikov18 segment config, with named input and output."""
    from common.unet import build_unet
    s = int(config.data.image_size)
    unet = build_unet((s, s, 1), base_filters=config.model.base_filters, depth=config.model.depth, name="unet")
    image = keras.Input((s, s, 1), name="image")
    return keras.Model({"image": image}, {"logits": unet(image)}, name="iglovikov18_unet")


def keypoint_model_from_config(config):
    """The key-point network of an iglovikov18 keypoints config."""
    m = config.model
    return build_keypoint_model(
        int(config.data.image_size), num_keypoints=len(config.keypoints.names), filters=m.filters,
        pool_size=m.pool_size, pool_padding=m.pool_padding, dense_units=m.dense_units, dropout=m.dropout,
        kernel_initializer=m.kernel_initializer)
