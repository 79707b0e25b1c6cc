"""The lite0_regressor network: shapes, the sex input, the months head in float32, argument checks."""
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import ROOT, SUBPROCESS_TIMEOUT_S, requires_jax
from reproductions.lite0_regressor.model import BACKBONE_NAME, build_lite0_regressor


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_lite0_regressor(64)


def test_shapes_and_the_nested_backbone(model):
    x = {"image": np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32), "male": np.array([[0.], [1.]])}
    months = model.predict_on_batch(x)["months"]
    assert months.shape == (2, 1) and np.isfinite(months).all()
    assert model.get_layer(BACKBONE_NAME).output_shape == (None, 2, 2, 1280)


def test_changing_only_the_sex_changes_the_estimate(model):
    image = np.random.default_rng(1).random((1, 64, 64, 3), dtype=np.float32)
    female = model.predict_on_batch({"image": image, "male": np.zeros((1, 1))})["months"]
    male = model.predict_on_batch({"image": image, "male": np.ones((1, 1))})["months"]
    assert not np.allclose(female, male)


def test_without_the_sex_input_the_image_is_the_only_input():
    assert list(build_lite0_regressor(32, sex_input=False).input) == ["image"]


def test_head_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_lite0_regressor(32)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert model.get_layer("months").dtype == "float32" and model.get_layer("age_z").dtype == "float32"
    assert model.get_layer(BACKBONE_NAME).get_layer("stem_conv").compute_dtype == "bfloat16"


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="Received: image_size=16"):
        build_lite0_regressor(16)
    with pytest.raises(ValueError, match="Received: dropout=1.0"):
        build_lite0_regressor(64, dropout=1.0)


@requires_jax
def test_builds_and_runs_with_the_jax_backend():
    code = ("import numpy as np, keras, sys; from reproductions.lite0_regressor.model import build_lite0_regressor; "
            "m = build_lite0_regressor(32); "
            "y = m({'image': np.zeros((2, 32, 32, 3), 'float32'), 'male': np.zeros((2, 1), 'float32')})['months']; "
            "print(keras.backend.backend(), tuple(y.shape), 'tensorflow' in sys.modules)")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "jax (2, 1) False"  # no TensorFlow needed
