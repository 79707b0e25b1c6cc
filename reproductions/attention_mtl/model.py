"""The attention_mtl network: backbone -> tokens -> pooling (gap | attention | gru) -> a location-scale age
head, with optional auxiliary heads (sex, hand mask, key-point heatmaps).

    image [B, s, s, 3] in [0, 1] --(scaling)--> backbone "backbone" --> grid [B, h, w, C]
        grid --> pooling.pool(...) --> pooled [B, d]  (+ Dense(sex) of the sex bit, with the sex input)
            --> Dense(ReLU) --> dropout --> Dense(2) --> "months" [B, 2] = (location, scale) in months
        pooled --> "sex" [B, 1] probability male          (sex_head: runs without the sex input)
        grid --> 1x1 convs --> resize --> "mask" [B, m, m, 1] logits of the hand mask   (mask_head)
        grid --> 1x1 convs --> resize --> "heatmaps" [B, m, m, 3] logits, one map per key point
                                                                                 (keypoint_head)
        attention scores --> mean over heads --> "attention" [B, h, w]   (attention_output: the
                                                    outside-mask penalty's input; attention pooling only)

The location is a z-score turned into months by a fixed layer (as lite0_regressor: a new head
starts near the mean age); the scale is softplus of the second unit in units of the label s.d.,
plus a floor (`min_scale_months`) so that no score divides by zero. With `distribution="point"`
(the plain-L1 ablation) the head has one unit, the location, and "months" carries a constant
scale of POINT_SCALE_MONTHS beside it, so that prediction and the conformal intervals read the
same two columns (the intervals are then location +/- q, one width for every image). Every
output is float32 under mixed precision. The backbone is the nested model named `backbone` (the
one `--weights` loads into): EfficientNet-Lite0 (common/efficientnet_lite.py) or a
keras.applications network. Each option off adds no layer: a model built with all of them off
has the layers (names and shapes) it had before they existed, so its saved weights load.
"""
from __future__ import annotations

import keras
from keras import ops

from common import backbones
from common.efficientnet_lite import build_efficientnet_lite0
from reproductions.attention_mtl import distribution as distribution_lib
from reproductions.attention_mtl import pooling as pooling_lib

BACKBONE_NAME = "backbone"
LITE0 = "efficientnet_lite0"
# keras.applications backbones for GPU runs, each with its ImageNet notop file via --weights. Each
# of these builds its own input normalisation in (include_preprocessing) and expects 0-255 pixels:
# the kit's [0, 1] images are multiplied by 255 before it. (ResNet50 / InceptionV3 want caffe or
# [-1, 1] inputs without such a layer; they are the papers' networks, not offered here yet.)
APPLICATIONS = {
    "efficientnet_b0": "EfficientNetB0",      # efficientnetb0_notop.h5
    "efficientnetv2_b0": "EfficientNetV2B0",  # efficientnetv2-b0_notop.h5
    "convnext_tiny": "ConvNeXtTiny",          # convnext_tiny_notop.h5
    "mobilenet_v3_small": "MobileNetV3Small",  # weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5
}
# The test suite's stand-in (common/backbones.py, `--set model.backbone=tiny_cnn`): the smoke test's
# backbone, never a method's; it also takes 0-255 pixels.
BACKBONES = (LITE0, *APPLICATIONS, backbones.STAND_IN)
HEADS = ("sex", "mask", "heatmaps")
NUM_KEYPOINTS = 3  # common.phantoms.KEYPOINT_NAMES: middle-finger tip, thumb tip, capitate centre
POINT_SCALE_MONTHS = 1.0  # the constant scale a point head reports: conformal scores are then |y - location| in months


class AttentionMTL(keras.Model):
    """The functional model, with one change: the months output's MAE is logged as `mae` (`val_mae`)
    however many heads there are. Keras names a metric `<output>_<metric>` once a model has two
    outputs; the shared training picks checkpoints by `val_mae` and the comparison reads it from
    metrics.csv, so the name must not depend on which auxiliary heads a config switches on."""

    calibration = None  # the conformal quantiles of this model's weights, set by task.load_trained / calibrate

    def get_metrics_result(self):
        return {("mae" if k == "months_mae" else k): v for k, v in super().get_metrics_result().items()}


class LocationScale(keras.layers.Layer):
    """[B, 2] raw units -> [B, 2] (location, scale) in months: z * std + mean, softplus(r) * std + floor."""

    def __init__(self, mean: float, std: float, min_scale: float, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.std, self.min_scale = float(mean), float(std), float(min_scale)

    def call(self, raw):
        raw = ops.cast(raw, "float32")
        loc = raw[:, :1] * self.std + self.mean
        scale = ops.softplus(raw[:, 1:]) * self.std + self.min_scale
        return ops.concatenate([loc, scale], axis=-1)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std, "min_scale": self.min_scale}


class PointLocation(keras.layers.Layer):
    """[B, 1] raw unit -> [B, 2] (location, POINT_SCALE_MONTHS) in months: z * std + mean beside a constant
    scale (a point head has no scale of its own; the column keeps the read-out's shape)."""

    def __init__(self, mean: float, std: float, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.std = float(mean), float(std)

    def call(self, raw):
        loc = ops.cast(raw, "float32")[:, :1] * self.std + self.mean
        return ops.concatenate([loc, ops.full_like(loc, POINT_SCALE_MONTHS)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


class ResizeTo(keras.layers.Layer):
    """Bilinear resize of [B, h, w, C] to [B, size, size, C] with keras.ops (keras.layers.Resizing would
    import TensorFlow under other backends)."""

    def __init__(self, size: int, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)

    def call(self, x):
        return ops.image.resize(ops.cast(x, self.compute_dtype), (self.size, self.size), interpolation="bilinear")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


def build_backbone(name: str, image_size: int) -> keras.Model:
    """The nested feature extractor named `backbone`: [B, s, s, 3] (its own input scaling) -> [B, h, w, C]."""
    if name == LITE0:
        return build_efficientnet_lite0((image_size, image_size, 3), include_top=False, name=BACKBONE_NAME)
    if name == backbones.STAND_IN:
        return backbones.build_backbone(name, (image_size, image_size, 3), pooling=None, model_name=BACKBONE_NAME)
    if name not in APPLICATIONS:
        raise ValueError(f"model.backbone must be one of {BACKBONES}. Received: backbone={name!r}")
    return getattr(keras.applications, APPLICATIONS[name])(include_top=False, weights=None,
                                                           input_shape=(image_size, image_size, 3), name=BACKBONE_NAME)


def build_attention_mtl(image_size: int, *, backbone: str = LITE0, pooling: str = "attention", sex_input: bool = True,
                        d_model: int = 256, heads: int = 4, gru_units: int = 128, sex_units: int = 16,
                        dense_units: int = 256, dropout: float = 0.2, target_mean_months: float = 127.32,
                        target_std_months: float = 41.18, min_scale_months: float = 0.5,
                        distribution: str = "laplace", sex_head: bool = False, mask_head: bool = False,
                        mask_size: int = 48, mask_channels: int = 64, keypoint_head: bool = False,
                        keypoint_channels: int = 64, attention_output: bool = False) -> keras.Model:
    """Builds the network.

    Args:
        image_size: int. Side of the square input (>= 32).
        backbone: str. One of BACKBONES.
        pooling: str. "gap", "attention" or "gru" (pooling.py).
        sex_input: bool. Whether the sex enters the model (the attention's query per sex, and a
            dense embedding beside the pooled features).
        d_model, heads, gru_units: int. Token width, attention heads, GRU units per direction.
        sex_units, dense_units: int. The sex embedding's and the hidden layer's units.
        dropout: float. Dropout before the age output.
        target_mean_months, target_std_months: float. location = z * std + mean.
        min_scale_months: float. The scale's floor.
        distribution: str. The age head's law: "laplace" or "gaussian" (location and scale), or
            "point" (the location alone, beside a constant scale of POINT_SCALE_MONTHS).
        sex_head: bool. The auxiliary sex classifier from the pooled image features (refused with
            the sex input: it would read the answer off its own input).
        mask_head: bool. The auxiliary hand-mask head from the feature grid.
        mask_size, mask_channels: int. The mask logits' side (also the heatmaps'), and the head's hidden channels.
        keypoint_head: bool. The auxiliary key-point head: NUM_KEYPOINTS heatmap logits at mask_size.
        keypoint_channels: int. Its hidden channels.
        attention_output: bool. Output the attention map over the grid ("attention" [B, h, w], mean
            over heads) for the outside-mask penalty; pooling "attention" only, and mask_size must be
            a multiple of the grid's side (the penalty averages the mask over each cell).

    Returns:
        AttentionMTL: inputs {"image"[, "male"]}, outputs {"months": [B, 2](, "sex": [B, 1], "mask": [B, m, m, 1],
        "heatmaps": [B, m, m, 3], "attention": [B, h, w])}.

    Example:
    >>> model = build_attention_mtl(64)
    >>> model.output_shape["months"]
    (None, 2)
    """
    if not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"image_size must be an int >= 32. Received: image_size={image_size!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")
    if not (target_std_months > 0 and min_scale_months > 0):
        raise ValueError(f"target_std_months and min_scale_months must be > 0. Received: target_std_months="
                         f"{target_std_months!r}, min_scale_months={min_scale_months!r}")
    if distribution not in distribution_lib.AGE_HEADS:
        raise ValueError(f"distribution must be one of {distribution_lib.AGE_HEADS}. Received: "
                         f"distribution={distribution!r}")
    if attention_output and pooling != "attention":
        raise ValueError("the outside-mask penalty acts on the attention weights: it needs pooling 'attention'. "
                         f"Received: pooling={pooling!r}, attention_output=True")
    if sex_head and sex_input:
        raise ValueError("the sex head predicts the sex from the image: it is for runs without the sex input. "
                         "Received: sex_head=True, sex_input=True")
    image = keras.Input((image_size, image_size, 3), name="image")
    inputs = {"image": image}
    male = None
    if sex_input:
        male = inputs["male"] = keras.Input((1,), name="male")
    net = build_backbone(backbone, image_size)
    x = image if backbone == LITE0 else keras.layers.Rescaling(255.0, name="to_0_255")(image)  # Lite0 scales itself
    grid = net(x)
    pooled = pooling_lib.pool(grid, male, pooling, d_model=d_model, heads=heads, gru_units=gru_units,
                              per_sex_query=sex_input, return_scores=attention_output)
    if attention_output:
        pooled, scores = pooled
    x = pooled
    if sex_input:
        sex = keras.layers.Dense(sex_units, activation="relu", name="sex_dense")(male)
        x = keras.layers.Concatenate(name="image_and_sex")([pooled, sex])
    x = keras.layers.Dense(dense_units, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    if distribution == distribution_lib.POINT:
        raw = keras.layers.Dense(1, dtype="float32", name="age_raw")(x)
        outputs = {"months": PointLocation(target_mean_months, target_std_months, dtype="float32", name="months")(raw)}
    else:
        raw = keras.layers.Dense(2, dtype="float32", name="age_raw")(x)
        outputs = {"months": LocationScale(target_mean_months, target_std_months, min_scale_months, dtype="float32",
                                           name="months")(raw)}
    if sex_head:
        outputs["sex"] = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="sex")(pooled)
    if mask_head:
        m = keras.layers.Conv2D(mask_channels, 1, activation="relu", name="mask_hidden")(grid)
        m = keras.layers.Conv2D(1, 1, name="mask_grid_logits")(m)
        outputs["mask"] = ResizeTo(mask_size, dtype="float32", name="mask")(m)
    if keypoint_head:
        k = keras.layers.Conv2D(keypoint_channels, 1, activation="relu", name="keypoint_hidden")(grid)
        k = keras.layers.Conv2D(NUM_KEYPOINTS, 1, name="keypoint_grid_logits")(k)
        outputs["heatmaps"] = ResizeTo(mask_size, dtype="float32", name="heatmaps")(k)
    if attention_output:
        h, w = grid.shape[1], grid.shape[2]
        if mask_size % h or mask_size % w:
            raise ValueError(f"the outside-mask penalty averages the {mask_size} x {mask_size} mask over each cell of the "
                             f"{h} x {w} attention grid: mask_size must be a multiple of the grid's side. Received: "
                             f"mask_size={mask_size}, grid={h} x {w}")
        outputs["attention"] = pooling_lib.AttentionMap((h, w), dtype="float32", name="attention")(scores)
    return AttentionMTL(inputs, outputs, name="attention_mtl")
