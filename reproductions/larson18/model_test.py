"""Tests for the Larson18 model: shapes, the sex-split head, the shared head (nosex), and the age read-outs."""
import keras
import numpy as np
import pytest

from reproductions.larson18 import model as larson_model
from reproductions.larson18.model import (SexHalfSoftmax, age_to_class, argmax_age,
                                          average_crop_probs, build_larson18_model, expected_age)

SIZE = 64  # tiny input: ResNet-50 runs on shared CPUs
C = 240


@pytest.fixture(scope="module")
def model():
    return build_larson18_model(SIZE)  # built once: building costs seconds on CPU


@pytest.fixture(scope="module")
def logits_model(model):
    return keras.Model(model.inputs, model.get_layer("age_logits").output)


def _batch(n, male, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, 50.0, size=(n, SIZE, SIZE, 3)).astype("float32")
    return {"image": image, "male": np.full((n, 1), float(male), "float32")}


def test_output_is_probs_of_one_sex_half(model):
    out = model(_batch(3, male=1), training=False)
    assert set(out) == {"probs"}
    probs = keras.ops.convert_to_numpy(out["probs"])
    assert probs.shape == (3, C)
    assert probs.dtype == np.float32
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_backbone_is_nested_resnet50(model):
    backbone = model.get_layer(larson_model.BACKBONE_NAME)
    assert isinstance(backbone, keras.Model)
    assert backbone.name == "resnet50"
    assert backbone.output.shape[-1] == 2048
    assert model.get_layer("age_logits").kernel.shape == (2048, 2 * C)


def test_changing_only_male_changes_output(model, logits_model):
    female, male = _batch(2, male=0), _batch(2, male=1)
    p_female = keras.ops.convert_to_numpy(model(female, training=False)["probs"])
    p_male = keras.ops.convert_to_numpy(model(male, training=False)["probs"])
    assert not np.allclose(p_female, p_male)
    # Female reads units 0..C-1, male units C..2C-1 (boneage/resnet.py: scores[NUM_AGES:] if male).
    logits = keras.ops.convert_to_numpy(logits_model(female, training=False))
    np.testing.assert_allclose(p_female, keras.ops.convert_to_numpy(keras.ops.softmax(logits[:, :C])),
                               atol=1e-6)
    np.testing.assert_allclose(p_male, keras.ops.convert_to_numpy(keras.ops.softmax(logits[:, C:])),
                               atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="uses tf.GradientTape")
@pytest.mark.parametrize("male", [1, 0])
def test_each_half_learns_only_from_its_sex(model, male):
    import tensorflow as tf

    batch = _batch(2, male=male, seed=1)
    labels = keras.ops.one_hot(np.array([30, 150]), C)
    kernel = model.get_layer("age_logits").kernel
    with tf.GradientTape() as tape:
        probs = model(batch, training=False)["probs"]
        loss = keras.losses.categorical_crossentropy(labels, probs)
    grad = tape.gradient(loss, kernel).numpy()
    own, other = (grad[:, C:], grad[:, :C]) if male else (grad[:, :C], grad[:, C:])
    assert np.all(other == 0.0)
    assert np.any(own != 0.0)


@pytest.mark.parametrize("sex_handling", ["split_head", "shared_head"])
def test_head_stays_float32_under_mixed_precision(sex_handling):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_larson18_model(32, sex_handling=sex_handling)
        assert model.get_layer("resnet50").compute_dtype == "float16"
        assert model.get_layer("age_logits").compute_dtype == "float32"
        assert model.get_layer("probs").compute_dtype == "float32"
        inputs = {"image": np.zeros((1, 32, 32, 3), "float32")}
        if sex_handling == "split_head":
            inputs["male"] = np.ones((1, 1), "float32")
        out = model(inputs, training=False)
        assert keras.backend.standardize_dtype(out["probs"].dtype) == "float32"
    finally:
        keras.config.set_dtype_policy(previous)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Received: image_size=16"):
        build_larson18_model(16)
    with pytest.raises(ValueError, match="Received: num_classes_per_sex=1"):
        build_larson18_model(64, num_classes_per_sex=1)
    with pytest.raises(ValueError, match="Received: sex_handling='ignore'"):
        build_larson18_model(64, sex_handling="ignore")


# --- the shared head: the sex-input ablation (issue #8) ----------------------------------------

@pytest.fixture(scope="module")
def shared_model():
    return build_larson18_model(32, sex_handling="shared_head")


def test_shared_head_has_only_the_image_input_and_240_classes(shared_model):
    assert [i.name for i in shared_model.inputs] == ["image"]  # nothing can carry the sex in
    assert shared_model.get_layer("age_logits").kernel.shape == (2048, C)
    assert [tuple(o.shape) for o in shared_model.outputs] == [(None, C)]
    probs = keras.ops.convert_to_numpy(
        shared_model({"image": np.random.default_rng(0).normal(0.0, 50.0, (2, 32, 32, 3)).astype("float32")},
                     training=False)["probs"])
    assert probs.shape == (2, C) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_sex_half_softmax_layer_config_round_trip():
    layer = SexHalfSoftmax(5, name="probs")
    clone = SexHalfSoftmax.from_config(layer.get_config())
    assert clone.num_classes_per_sex == 5 and clone.name == "probs"
    logits = np.random.default_rng(0).normal(size=(1, 10)).astype("float32").repeat(2, 0)
    probs = keras.ops.convert_to_numpy(clone([logits, np.array([[0.0], [1.0]], "float32")]))
    female = keras.ops.convert_to_numpy(keras.ops.softmax(logits[0, :5]))
    male = keras.ops.convert_to_numpy(keras.ops.softmax(logits[0, 5:]))
    assert np.abs(female - male).max() > 0.05  # the halves differ, so picking the wrong one would fail
    np.testing.assert_allclose(probs[0], female, atol=1e-6)  # female: first half
    np.testing.assert_allclose(probs[1], male, atol=1e-6)  # male: second half


# --- read-outs on hand-made distributions ----------------------------------------------------

def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_one_hot_reads_as_its_month():
    probs = np.zeros((2, C), "float32")
    probs[0, 8] = 1.0
    probs[1, 239] = 1.0
    np.testing.assert_allclose(_np(expected_age(probs)), [8.0, 239.0])
    np.testing.assert_array_equal(_np(argmax_age(probs)), [8, 239])


def test_expected_and_argmax_differ_on_a_spread_distribution():
    # The authors' demo output: 0.954 at 8 months and 0.046 at 14 -> argmax 8, weighted 8.276.
    probs = np.zeros(C, "float32")
    probs[8], probs[14] = 0.954, 0.046
    assert float(_np(expected_age(probs))) == pytest.approx(8 * 0.954 + 14 * 0.046, abs=1e-4)
    assert int(_np(argmax_age(probs))) == 8
    # Uniform over months 10 and 11: expected 10.5 (no bin-centre offset); argmax the first.
    probs = np.zeros(C, "float32")
    probs[10:12] = 0.5
    assert float(_np(expected_age(probs))) == pytest.approx(10.5)
    assert int(_np(argmax_age(probs))) == 10


def test_average_crop_probs_is_a_renormalised_mean():
    crops = np.zeros((10, C), "float32")
    crops[:5, 100] = 1.0
    crops[5:, 110] = 1.0
    mean = _np(average_crop_probs(crops))
    assert mean.shape == (C,)
    np.testing.assert_allclose(mean.sum(), 1.0, rtol=1e-6)
    assert float(_np(expected_age(mean))) == pytest.approx(105.0)


def test_age_to_class_rounds_and_clips():
    got = age_to_class(np.array([-3.0, 0.4, 12.0, 12.6, 228.0, 300.0]))
    np.testing.assert_array_equal(got, [0, 0, 12, 13, 228, 239])
    assert got.dtype == np.int32
    assert int(age_to_class(7.2)) == 7


def test_age_to_class_on_tf_tensors():
    import tensorflow as tf

    got = age_to_class(tf.constant([-1.0, 5.6, 500.0]), num_classes=C)
    assert got.dtype == tf.int32
    np.testing.assert_array_equal(got.numpy(), [0, 6, 239])
    ds = tf.data.Dataset.from_tensor_slices(tf.constant([3.0, 250.0])).map(age_to_class)
    assert [int(v) for v in ds] == [3, 239]
