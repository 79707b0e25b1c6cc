"""Larson18 model: ResNet-50 features -> 2 x 240 monthly logits -> the patient's sex half -> softmax.

The authors' network (radinformatics/bone-age, boneage/resnet.py@46de7fd1) ends in one fully
connected layer of 2 x 240 units: units 0-239 are the girls' months, 240-479 the boys'. Their
inference code takes a softmax over all 480 units, keeps the half of the patient's sex and
renormalises it. For one crop that is exactly a softmax over the kept half, which is what this
model computes, so the forward output matches theirs. In training it makes each half learn
from its own sex only (the other half gets zero gradient); whether the authors trained a
480-way softmax (which would also push the wrong sex's logits down) is not published.

The sex-input ablation (config `model.sex_handling = "shared_head"`, variants "nosex" and
"thumbs_nosex", issue #8) replaces the two halves with one 240-unit layer and a plain softmax
shared by both sexes; the model then has the image as its only input, so any difference from
the paper setting is what knowing the sex adds.

Months: class k stands for a bone age of k months (k = 0..239). The authors read the age off
as `argmax_k p_k` and as `sum_k k * p_k` (boneage/predict_image.py@16e14a40); the RSNA
training labels are whole months, so class k is exactly label k and no half-month offset is
added (a bin-centre reading, k + 0.5, would bias every estimate by +0.5 month against
integer labels).

Only keras.layers / keras.ops / keras.applications are used, so the model also builds with
KERAS_BACKEND=jax.
"""
from __future__ import annotations

import keras
from keras import ops

from common.backbones import MIN_SIZE, build_backbone, check_backbone
from common import monthly_classes

NUM_CLASSES_PER_SEX = 240  # boneage/resnet.py@46de7fd1: NUM_AGES = 240

# The authors' read-outs, "weighted prediction" sum_k k * p_k and "predicted_age" argmax_k p_k
# (boneage/predict_image.py@16e14a40), and the month -> class rule: common's monthly-class read-out.
class_months, expected_age, argmax_age, age_to_class = (monthly_classes.class_months, monthly_classes.expected_age,
                                                        monthly_classes.argmax_age, monthly_classes.age_to_class)
BACKBONE_NAME = "resnet50"  # the nested backbone model; common code loads ImageNet weights into it
SEX_HANDLINGS = ("split_head", "shared_head")  # the paper's sex halves; the ablation's one head, no sex input


@keras.saving.register_keras_serializable(package="larson18")
class SexHalfSoftmax(keras.layers.Layer):
    """Keeps the patient's sex half of [batch, 2 * C] logits and applies a softmax.

    Female is half 0 (units 0..C-1), male half 1 (units C..2C-1), as in the authors' code.
    The choice uses `ops.where`, so the probabilities are differentiable in the logits and the
    unused half gets exactly zero gradient. Computed in float32 under any dtype policy.

    Args:
        num_classes_per_sex: int. C, the number of monthly classes per sex.

    Call args: `[logits, male]`, logits [batch, 2C], male [batch, 1] (1.0 = male, 0.0 = female;
    values >= 0.5 count as male). Returns [batch, C] probabilities.
    """

    def __init__(self, num_classes_per_sex: int, **kwargs):
        if not isinstance(num_classes_per_sex, int) or num_classes_per_sex < 2:
            raise ValueError("num_classes_per_sex must be an int >= 2. "
                             f"Received: num_classes_per_sex={num_classes_per_sex!r}")
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes_per_sex = num_classes_per_sex

    def call(self, inputs):
        logits, male = inputs
        halves = ops.reshape(ops.cast(logits, "float32"), (-1, 2, self.num_classes_per_sex))
        is_male = ops.reshape(ops.cast(male, "float32"), (-1, 1)) >= 0.5
        selected = ops.where(is_male, halves[:, 1, :], halves[:, 0, :])
        return ops.softmax(selected, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.num_classes_per_sex)

    def get_config(self):
        return {**super().get_config(), "num_classes_per_sex": self.num_classes_per_sex}


def build_larson18_model(image_size: int, num_classes_per_sex: int = NUM_CLASSES_PER_SEX,
                         weights: str | None = None, sex_handling: str = "split_head",
                         backbone: str = BACKBONE_NAME) -> keras.Model:
    """Builds the Larson18 network.

    Args:
        image_size: int. Side of the square input crop (224 in the paper setting, >= 32).
        num_classes_per_sex: int. Monthly classes per sex (240: 0-239 months).
        weights: None (random init; the usual case: common code loads ImageNet weights into
            `model.get_layer("resnet50")`), or anything keras.applications.ResNet50 accepts
            ("imagenet" or a weights file), passed through to the backbone.
        sex_handling: "split_head" (the paper: 2 x C logits, the patient's sex picks its half)
            or "shared_head" (the ablation: C logits for both sexes, no "male" input).
        backbone: str. "resnet50" (the paper) or "tiny_cnn" (the test suite's stand-in:
            common/backbones.py).

    Returns:
        A keras.Model with inputs `{"image": [batch, s, s, 3] float32, "male": [batch, 1]
        float32}` (no "male" with "shared_head") and output `{"probs": [batch,
        num_classes_per_sex] float32}`, the bone-age probabilities (of the patient's sex). The
        backbone is the nested model "resnet50"; the logits layer, 2 x C units (C when shared),
        is "age_logits" (float32 even under mixed precision).

    Example:

        model = build_larson18_model(224)
        probs = model({"image": x, "male": male})["probs"]
        months = expected_age(probs)

    Reference: Larson DB et al. Radiology 2018;287(1):313-322; head layout from
    radinformatics/bone-age boneage/resnet.py@46de7fd1.
    """
    check_backbone(backbone, BACKBONE_NAME)
    if not isinstance(image_size, int) or image_size < MIN_SIZE[backbone]:
        raise ValueError(f"image_size must be an int >= {MIN_SIZE[backbone]} ({backbone}'s minimum). "
                         f"Received: image_size={image_size!r}")
    if not isinstance(num_classes_per_sex, int) or num_classes_per_sex < 2:
        raise ValueError("num_classes_per_sex must be an int >= 2. "
                         f"Received: num_classes_per_sex={num_classes_per_sex!r}")
    if sex_handling not in SEX_HANDLINGS:
        raise ValueError(f"sex_handling must be one of {SEX_HANDLINGS}. Received: sex_handling={sex_handling!r}")

    image = keras.Input((image_size, image_size, 3), dtype="float32", name="image")
    features = build_backbone(backbone, (image_size, image_size, 3), weights=weights, pooling="avg")(image)
    if sex_handling == "shared_head":
        # The ablation: same backbone and month classes, but nothing tells the model the sex.
        logits = keras.layers.Dense(num_classes_per_sex, dtype="float32", name="age_logits")(features)
        probs = keras.layers.Softmax(dtype="float32", name="probs")(logits)
        return keras.Model(inputs={"image": image}, outputs={"probs": probs}, name="larson18")
    male = keras.Input((1,), dtype="float32", name="male")
    logits = keras.layers.Dense(2 * num_classes_per_sex, dtype="float32", name="age_logits")(features)
    probs = SexHalfSoftmax(num_classes_per_sex, name="probs")([logits, male])
    return keras.Model(inputs={"image": image, "male": male}, outputs={"probs": probs},
                       name="larson18")


# --- reading the age off the probabilities ---------------------------------------------------

def average_crop_probs(probs, axis: int = 0):
    """Mean of per-crop probabilities (config eval.combine = "mean_probs"), renormalised.

    The authors sum the ten crops' 480-way softmaxes, keep the sex half and renormalise; with
    this model's per-sex softmax the plain mean is the equivalent read-out (identical when
    every crop puts all its mass on the patient's half).
    """
    mean = ops.mean(ops.convert_to_tensor(probs, dtype="float32"), axis=axis)
    return mean / ops.sum(mean, axis=-1, keepdims=True)
