"""rsna17_winner as a Task for the shared machinery: config, model, per-example functions, read-out.

The data path through common.pipeline.make_dataset:

    decode -> resize to s x s (uint8, cached) -> shuffle -> batch
      -> [training: rotation, shift, zoom, horizontal flip (Keras layers, batched)]
      -> scale to [-1, 1], grey to 3 channels -> {"image", "male"}, {"months"}

Resizing happens before the cache, so the cache holds small uint8 images; the augmentation
happens after it, so every epoch draws new transforms.
"""
import tensorflow as tf

from common import months_regression
from common import preprocessing as common_pp
from common.task import DataSpec, Task
from reproductions.rsna17_winner import config as winner_config
from reproductions.rsna17_winner import model as winner_model

CITATION = ("RSNA Pediatric Bone Age Challenge 2017, first place (16 Bit: Bilbily A, Cicero M), as described in "
            "Halabi SS, Prevedello LM, Kalpathy-Cramer J, et al. The RSNA Pediatric Bone Age Machine Learning "
            "Challenge. Radiology 2019;290(2):498-503.")


def build_model(config):
    m = config.model
    return winner_model.build_rsna17_winner_model(
        config.data.image_size, sex_input=m.sex_input, sex_units=m.sex_units, dense_units=tuple(m.dense_units),
        pool_size=m.pool_size, channels=config.data.channels, target_mean_months=m.target_mean_months,
        target_std_months=m.target_std_months, sex_activation=m.sex_activation, dense_activation=m.dense_activation,
        backbone=m.backbone)


def preprocess(config, training):
    """Per example, deterministic: grey uint8 [H, W, 1] -> uint8 [s, s, 1] (cached)."""
    size, mode = config.data.image_size, config.data.resize_mode
    if mode not in ("warp", "pad"):
        raise ValueError(f"data.resize_mode must be 'warp' or 'pad'. Received: {mode!r}")

    def fn(example):
        out = {k: v for k, v in example.items() if k not in ("mask", "keypoints")}
        if mode == "pad":
            return common_pp.letterbox(out, size)
        image = tf.image.resize(tf.cast(example["image"], tf.float32), (size, size), antialias=True)
        out["image"] = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        out["image"].set_shape([size, size, 1])
        return out
    return fn


def batch_augment(config):
    """Rotation, shift, zoom and horizontal flip of the batch (Keras preprocessing layers, seeded)."""
    return common_pp.affine_batch_augment(config.train.augmentation, config.seed, name="winner_augmentation")


def scale_image(image, scale: str, channels: int):
    """0-255 grey [..., 1] -> the network's range, repeated to `channels`."""
    image = tf.cast(image, tf.float32)
    if scale == "inception":
        image = image / 127.5 - 1.0
    elif scale == "half_centred":
        image = image / 255.0 - 0.5
    else:
        raise ValueError(f"data.scale must be 'inception' or 'half_centred'. Received: {scale!r}")
    return tf.repeat(image, channels, axis=-1) if channels > 1 else image


to_model_io = months_regression.model_io(
    lambda image, config: scale_image(image, config.data.scale, config.data.channels))


TASK = Task(
    paper="rsna17_winner",
    citation=CITATION,
    get_config=winner_config.get_config,
    build_model=build_model,
    data=DataSpec(
        preprocess=preprocess,
        to_model_io=to_model_io,
        batch_augment=batch_augment,
    ),
    **months_regression.HOOKS,
    backbone_name=winner_model.BACKBONE_NAME,
    weights_hint="keras.applications InceptionV3 ImageNet weights without top "
                 "(inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5)",
    needs_sex=lambda config: bool(config.model.sex_input),  # the nosex ablation has no sex input
    variants=tuple(v for v in winner_config.VARIANTS if v),
)
