"""The feature extractors the paper models are built on, chosen by name (config `model.backbone`).

Each paper names its network ("resnet50", "inception_v3": keras.applications, include_top=False)
and that is what its configs use. One more name exists for the test suite alone:

"tiny_cnn" is a stand-in, never a paper's network: four stride-2 blocks of 3x3 convolution,
batch normalisation and ReLU (16, 32, 64, 128 channels; ~100k weights). On this project's 2-core
CI machine ResNet-50 trains at ~9 images/s at 64 px, so a run long enough to show learning took
an hour per paper and the suite outgrew CI's limit. With the stand-in, each paper's smoke test
still runs that paper's own data pipeline, preprocessing, head, loss, read-out, fusion and
evaluation end to end and must learn, in minutes. The paper backbones themselves are built,
run and checked (shapes, weights, jax backend) in each model_test.py. A run record's config
shows which backbone it used, and `train` says so when it is the stand-in.
"""
from __future__ import annotations

import keras

STAND_IN = "tiny_cnn"
# Each backbone's smallest input side (keras.applications' own minimum for the paper networks).
MIN_SIZE = {"resnet50": 32, "inception_v3": 75, STAND_IN: 16}
TINY_CNN_WIDTHS = (16, 32, 64, 128)
TINY_CNN_BN_MOMENTUM = 0.9  # a smoke run has a few hundred steps: keras' 0.99 would leave the moving statistics behind


def check_backbone(name: str, paper_backbone: str) -> None:
    """Raises ValueError unless `name` is the paper's backbone or the test stand-in."""
    if name not in (paper_backbone, STAND_IN):
        raise ValueError(f"model.backbone must be {paper_backbone!r} (the paper's network) or {STAND_IN!r} (the test "
                         f"suite's stand-in). Received: backbone={name!r}")


def build_backbone(name: str, input_shape, *, weights=None, pooling: str | None = "avg",
                   model_name: str | None = None) -> keras.Model:
    """Builds a backbone as a nested keras.Model.

    Args:
        name: str. "resnet50", "inception_v3" or "tiny_cnn".
        input_shape: (height, width, channels).
        weights: None, or anything keras.applications accepts (paper networks only).
        pooling: "avg" (global average pooling: [B, C]) or None (the feature grid [B, h, w, C]).
        model_name: str. The nested model's name (common code loads --weights into it by name);
            defaults to `name`.

    Returns:
        keras.Model mapping [B, *input_shape] float32 to features.
    """
    if name not in MIN_SIZE:
        raise ValueError(f"Unknown backbone; expected one of {tuple(MIN_SIZE)}. Received: name={name!r}")
    if pooling not in ("avg", None):
        raise ValueError(f"pooling must be 'avg' or None. Received: pooling={pooling!r}")
    if min(input_shape[:2]) < MIN_SIZE[name]:
        raise ValueError(f"{name} needs inputs of at least {MIN_SIZE[name]} px. Received: input_shape={input_shape!r}")
    model_name = model_name or name
    if name == "resnet50":
        return keras.applications.ResNet50(include_top=False, weights=weights, pooling=pooling,
                                           input_shape=tuple(input_shape), name=model_name)
    if name == "inception_v3":
        return keras.applications.InceptionV3(include_top=False, weights=weights, pooling=pooling,
                                              input_shape=tuple(input_shape), name=model_name)
    if weights is not None:
        raise ValueError(f"{STAND_IN} is the test suite's stand-in and has no pretrained weights. Received: weights={weights!r}")
    image = keras.Input(tuple(input_shape), dtype="float32")
    # Inputs arrive in each paper's own scaling (0-255, mean-subtracted, caffe BGR): a fixed
    # rescale brings them to roughly unit range so one learning rate suits every paper.
    x = keras.layers.Rescaling(1.0 / 128.0)(image)
    for i, width in enumerate(TINY_CNN_WIDTHS):
        x = keras.layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = keras.layers.BatchNormalization(momentum=TINY_CNN_BN_MOMENTUM, name=f"bn{i + 1}")(x)
        x = keras.layers.ReLU(name=f"relu{i + 1}")(x)
    if pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(image, x, name=model_name)
