"""Tests for the rsna17_winner network: shapes, the sex input, the ablation, argument checks, dtypes."""
import keras
import numpy as np
import pytest

from reproductions.rsna17_winner.model import BACKBONE_NAME, build_rsna17_winner_model

SIZE = 75  # InceptionV3's smallest input: the cheapest build


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_rsna17_winner_model(SIZE)


def _images(n=2, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, SIZE, SIZE, 3)).astype("float32")


def test_output_is_one_age_in_months_per_image(model):
    months = model.predict_on_batch({"image": _images(3), "male": np.zeros((3, 1), "float32")})["months"]
    assert months.shape == (3, 1) and months.dtype == np.float32
    # The months layer centres a fresh network on the training mean (127 months), not on 0.
    assert np.all(np.abs(months - 127.32) < 41.18), months


def test_changing_only_the_sex_changes_the_prediction(model):
    x = _images(2)
    girls = model.predict_on_batch({"image": x, "male": np.zeros((2, 1), "float32")})["months"]
    boys = model.predict_on_batch({"image": x, "male": np.ones((2, 1), "float32")})["months"]
    assert np.all(np.abs(girls - boys) > 1e-4), (girls, boys)
    again = model.predict_on_batch({"image": x, "male": np.zeros((2, 1), "float32")})["months"]
    np.testing.assert_allclose(girls, again, rtol=1e-6)


def test_the_architecture_of_the_report(model):
    assert model.get_layer(BACKBONE_NAME).output.shape[1:] == (1, 1, 2048)  # mixed10 at 75 px
    assert model.get_layer("sex_dense").units == 32
    assert [model.get_layer(f"dense_{i}").units for i in (1, 2)] == [1000, 1000]
    # 2048 image features + 32 sex features enter the first dense layer.
    assert model.get_layer("image_and_sex").output.shape[-1] == 2048 + 32


def test_paper_size_pools_mixed10_from_14_to_7():
    # The pool alone, at the paper's mixed10 shape: 'same' padding equals the reimplementation's 'valid'.
    features = np.random.default_rng(0).normal(size=(1, 14, 14, 4)).astype("float32")
    same = keras.layers.AveragePooling2D(2, padding="same")(features)
    valid = keras.layers.AveragePooling2D(2, padding="valid")(features)
    assert same.shape == (1, 7, 7, 4)
    np.testing.assert_allclose(np.asarray(same), np.asarray(valid), rtol=1e-6)


def test_the_no_sex_model_takes_only_the_image():
    model = build_rsna17_winner_model(SIZE, sex_input=False, dense_units=(8,))
    assert [i.name for i in model.inputs] == ["image"]
    assert model.predict_on_batch({"image": _images(2)})["months"].shape == (2, 1)


@pytest.mark.parametrize("kwargs, match", [
    ({"image_size": 64}, "image_size must be an int >= 75"),
    ({"image_size": SIZE, "dense_units": ()}, "dense_units must be"),
    ({"image_size": SIZE, "target_std_months": 0.0}, "target_std_months must be > 0"),
])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_rsna17_winner_model(**kwargs)


def test_mixed_precision_keeps_the_head_in_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_rsna17_winner_model(SIZE, dense_units=(8,))
        assert model.get_layer("dense_1").compute_dtype == "float16"
        assert model.get_layer("age_z").compute_dtype == "float32"
        out = model.predict_on_batch({"image": _images(1), "male": np.ones((1, 1), "float32")})["months"]
        assert out.dtype == np.float32 and np.isfinite(out).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")
