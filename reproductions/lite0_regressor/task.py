"""lite0_regressor as a Task for the shared machinery.

The data path through common.pipeline.make_dataset:

    decode -> letterbox to s x s (uint8, cached) -> shuffle -> batch
      -> [training: rotation, shift, zoom (Keras layers, batched)]
      -> [0, 1], grey to 3 channels -> {"image", "male"}, {"months"}

The letterbox keeps the hand's proportions; the backbone's first layer applies the ImageNet
checkpoint's own pixel scaling, so the pipeline hands it plain [0, 1].
"""
import tensorflow as tf

from common import months_regression
from common import preprocessing as common_pp
from common.task import DataSpec, Task
from reproductions.lite0_regressor import config as lite0_config
from reproductions.lite0_regressor import model as lite0_model

CITATION = ("boneage-repro's own transfer-learning baseline (not a paper): EfficientNet-Lite0 (Tan M, Le QV. "
            "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks. ICML 2019; Lite variants, "
            "tensorflow/tpu 2020) with a sex input, regressing months")


def build_model(config):
    m = config.model
    return lite0_model.build_lite0_regressor(
        config.data.image_size, sex_input=m.sex_input, sex_units=m.sex_units, dense_units=m.dense_units,
        dropout=m.dropout, target_mean_months=m.target_mean_months, target_std_months=m.target_std_months)


def preprocess(config, training):
    """Per example, deterministic: grey uint8 [H, W, 1] -> letterboxed uint8 [s, s, 1] (cached)."""
    size = config.data.image_size

    def fn(example):
        out = {k: v for k, v in example.items() if k not in ("mask", "keypoints")}
        return common_pp.letterbox(out, size)
    return fn


def batch_augment(config):
    return common_pp.affine_batch_augment(config.train.augmentation, config.seed, name="lite0_augmentation")


def unit_rgb(image, config):
    """uint8 grey -> [0, 1] repeated to RGB; the backbone's first layer applies the checkpoint's scaling."""
    return tf.repeat(tf.cast(image, tf.float32) / 255.0, 3, axis=-1)


to_model_io = months_regression.model_io(unit_rgb)


TASK = Task(
    paper="lite0_regressor",
    citation=CITATION,
    get_config=lite0_config.get_config,
    build_model=build_model,
    data=DataSpec(
        preprocess=preprocess,
        to_model_io=to_model_io,
        batch_augment=batch_augment,
    ),
    **months_regression.HOOKS,
    backbone_name=lite0_model.BACKBONE_NAME,
    weights_hint=("the converted EfficientNet-Lite0 ImageNet file (python -m common.weights convert efficientnet-lite0 "
                  "writes ~/.boneage-repro/weights/efficientnet_lite0_imagenet.h5)"),
    needs_sex=lambda config: bool(config.model.sex_input),
    variants=tuple(v for v in lite0_config.VARIANTS if v),
)
