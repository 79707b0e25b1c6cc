"""A plain U-Net (Ronneberger et al., MICCAI 2015) from keras.layers only.

Encoder: `depth` steps of (3x3 conv -> BN -> ReLU) x 2 then 2x2 max-pool, doubling the filters
from `base_filters`; a bottleneck of the same double conv; decoder: 2x2 transposed conv, the
skip connection concatenated, double conv. A 1x1 conv gives `out_channels` logits (float32).
Batch normalisation (not in the 2015 paper) is the common modern addition that lets it train
from scratch at a high learning rate. The input side must be divisible by 2**depth.

Example:

    from common.unet import build_unet
    model = build_unet((96, 96, 1), base_filters=8, depth=3)
    logits = model(images)            # [batch, 96, 96, 1]
"""
from __future__ import annotations

import keras


def _double_conv(x, filters, name, bn_momentum):
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def build_unet(input_shape, base_filters: int = 64, depth: int = 4, out_channels: int = 1,
               name: str = "unet", bn_momentum: float = 0.9) -> keras.Model:
    """Builds a U-Net returning per-pixel logits.

    Args:
        input_shape: (height, width, channels); height and width divisible by 2**depth.
        base_filters: int. Filters of the first level (64 in the 2015 paper), doubled per level.
        depth: int. Number of down-sampling steps (4 in the 2015 paper), >= 1.
        out_channels: int. Logit maps out (1 for a binary mask).
        name: str. Model name.
        bn_momentum: float. Batch-norm moving-average momentum: 0.9 (PyTorch's default); Keras'
            0.99 needs hundreds of steps before inference statistics match a small training run.

    Returns:
        keras.Model: [batch, h, w, c] -> [batch, h, w, out_channels] float32 logits.
    """
    height, width, _ = input_shape
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an int >= 1. Received: depth={depth!r}")
    if not isinstance(base_filters, int) or base_filters < 1:
        raise ValueError(f"base_filters must be an int >= 1. Received: base_filters={base_filters!r}")
    for side in (height, width):
        if side is not None and side % (2 ** depth):
            raise ValueError(f"The input side must be divisible by 2**depth = {2 ** depth}. "
                             f"Received: input_shape={tuple(input_shape)}, depth={depth}")
    inputs = keras.Input(input_shape, name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = _double_conv(x, base_filters * 2 ** level, f"down{level}", bn_momentum)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = _double_conv(x, base_filters * 2 ** depth, "bottleneck", bn_momentum)
    for level in reversed(range(depth)):
        x = keras.layers.Conv2DTranspose(base_filters * 2 ** level, 2, strides=2, name=f"up{level}")(x)
        x = keras.layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _double_conv(x, base_filters * 2 ** level, f"dec{level}", bn_momentum)
    logits = keras.layers.Conv2D(out_channels, 1, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=name)
