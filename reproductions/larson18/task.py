"""Larson18 as a Task for the shared machinery: which config, model, data functions and read-out.

Targets are bone ages in months; the loss turns them into the patient's-sex monthly class
(cross-entropy on the selected half of the 2 x 240 head), and the metric `mae` reads the
expected age off the probabilities, so training logs and checkpoints speak in months.

With `model.sex_handling = "shared_head"` (the "nosex" ablation) the same targets, loss and
read-outs apply to the one shared 240-class head, and the sex is left out of the model's
inputs: it still travels beside them (common.train.with_ids), so evaluation reports by sex.
"""
import numpy as np
import tensorflow as tf

from common import monthly_classes
from common.task import DataSpec, Task
from reproductions.larson18 import config as larson_config
from reproductions.larson18 import model as larson_model
from reproductions.larson18 import preprocessing as larson_pp

CITATION = ("Larson DB, Chen MC, Lungren MP, et al. Performance of a Deep-Learning Neural Network Model in "
            "Assessing Skeletal Maturity on Pediatric Hand Radiographs. Radiology 2018;287(1):313-322.")


def build_model(config):
    return larson_model.build_larson18_model(config.data.crop_size, config.model.num_classes_per_sex,
                                             sex_handling=config.model.sex_handling,
                                             backbone=config.model.backbone)


def _sex_input(config) -> bool:
    """Whether the model takes the sex: only the split head; the shared head ("nosex") has no such input."""
    return config.model.sex_handling == "split_head"


def to_model_io(config):
    def io(batch):
        inputs = {"image": batch["image"]}
        if _sex_input(config):
            inputs["male"] = tf.cast(batch["male"], tf.float32)[:, None]
        return inputs, {"probs": batch["boneage_months"]}
    return io


def loss(config):
    # Cross-entropy against the month's class (age_to_class's rule, in keras.ops), label-smoothed.
    return {"probs": monthly_classes.crossentropy_loss(config.model.num_classes_per_sex, config.train.label_smoothing,
                                                       name="larson_class_crossentropy")}


def metrics(config):
    return {"probs": [monthly_classes.mae_metric()]}


def predict(model, inputs, config):
    """Both read-outs of the paper, the primary one first; test-time crops are averaged.

    A given "male" is ignored by the shared head (it has no sex input).
    """
    image = np.asarray(inputs["image"])
    crops = image.shape[1] if image.ndim == 5 else 1
    feed = {"image": image.reshape((-1,) + image.shape[-3:])}
    if _sex_input(config):
        feed["male"] = np.repeat(np.asarray(inputs["male"], np.float32), crops, axis=0)
    probs = np.asarray(model.predict_on_batch(feed)["probs"])
    probs = np.asarray(larson_model.average_crop_probs(probs.reshape(len(image), crops, -1), axis=1))
    return monthly_classes.read_out(probs, config.eval.primary_estimate)


def test_preprocess(config):
    if config.eval.test_time_crops == "center":
        return larson_pp.make_example_preprocess(config, training=False)
    return larson_pp.make_example_test_time_crops(config)


TASK = Task(
    paper="larson18",
    citation=CITATION,
    get_config=larson_config.get_config,
    build_model=build_model,
    data=DataSpec(
        preprocess=lambda config, training: larson_pp.make_example_preprocess(config, training=training),
        to_model_io=to_model_io,
        augment=larson_pp.make_example_augment,
        test_preprocess=test_preprocess,
    ),
    loss=loss,
    metrics=metrics,
    predict=predict,
    backbone_name=larson_model.BACKBONE_NAME,
    weights_hint="keras.applications ResNet50 ImageNet weights without top "
                 "(resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5)",
    # One Task serves every variant: `predict` asks for the sex even where the shared head ignores it.
    needs_sex=lambda config: config.model.sex_handling != "shared_head",  # the nosex ablation has no sex input
    variants=tuple(v for v in larson_config.VARIANTS if v),
)
