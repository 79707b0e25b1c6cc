"""rsna17_second models: the patch regressor (built once per module) and the sex router."""
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import ROOT, SUBPROCESS_TIMEOUT_S, requires_jax
from common.datasets.base import DataError
from reproductions.rsna17_second.model import SexRouter, build_patch_model

P = 32


@pytest.fixture(scope="module")
def model():
    return build_patch_model(P, target_mean=117.88, target_std=37.91, name="rsna17_second_female")


def _patches(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, P, P, 1)).astype("float32")


def test_shapes_backbone_and_unused_sex_input(model):
    assert isinstance(model.get_layer("resnet50"), keras.Model)  # --weights loads ImageNet into it
    assert model.get_layer("resnet50").inputs[0].shape[1:] == (P, P, 3)  # grey repeated to 3 channels
    x = _patches(3)
    a = np.asarray(model({"image": x, "male": np.zeros((3, 1), "float32")}, training=False))
    b = np.asarray(model({"image": x, "male": np.ones((3, 1), "float32")}, training=False))
    assert a.shape == (3, 1) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)  # a sex-specific model ignores the sex input


def test_head_is_standardised_months(model):
    """With a zero head the model says the training mean; a unit z adds one standard deviation."""
    dense = model.get_layer("z")
    kernel, bias = dense.get_weights()
    try:
        dense.set_weights([np.zeros_like(kernel), np.zeros_like(bias)])
        out = np.asarray(model({"image": _patches(2), "male": np.zeros((2, 1), "float32")}, training=False))
        np.testing.assert_allclose(out, 117.88, atol=1e-3)
        dense.set_weights([np.zeros_like(kernel), np.ones_like(bias)])
        out = np.asarray(model({"image": _patches(2), "male": np.zeros((2, 1), "float32")}, training=False))
        np.testing.assert_allclose(out, 117.88 + 37.91, atol=1e-3)
    finally:
        dense.set_weights([kernel, bias])


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Received: patch_size=16"):
        build_patch_model(16, 100.0, 30.0)
    with pytest.raises(ValueError, match="std must be > 0"):
        build_patch_model(P, 100.0, 0.0)


def _constant_model(months, size=8):
    """A stand-in patch model that says `months` for every patch (routing needs no ResNet)."""
    image = keras.Input((size, size, 1), name="image")
    male = keras.Input((1,), name="male")
    out = keras.layers.Dense(1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(months))(
        keras.layers.GlobalAveragePooling2D()(image))
    return keras.Model({"image": image, "male": male}, out)


def test_the_router_sends_each_radiograph_to_the_model_of_its_sex():
    router = SexRouter({"female": _constant_model(100.0), "male": _constant_model(150.0)}, patch_batch=5)
    patches = np.zeros((4, 49, 8, 8, 1), "float32")
    male = np.array([1, 0, 0, 1])
    out = router.patch_predictions(patches, male)
    assert out.shape == (4, 49)
    np.testing.assert_allclose(out[[0, 3]], 150.0, atol=1e-4)
    np.testing.assert_allclose(out[[1, 2]], 100.0, atol=1e-4)
    np.testing.assert_allclose(router.patch_predictions(patches[:1], [0.0]), 100.0, atol=1e-4)  # one sex only


def test_the_router_refuses_a_sex_it_has_no_model_for():
    router = SexRouter({"female": _constant_model(100.0)})
    with pytest.raises(DataError, match="model only for female"):
        router.patch_predictions(np.zeros((2, 49, 8, 8, 1), "float32"), [0, 1])
    with pytest.raises(ValueError, match="some of"):
        SexRouter({"boys": _constant_model(1.0)})


@requires_jax
def test_builds_and_runs_with_the_jax_backend():
    code = ("import numpy as np, keras; from reproductions.rsna17_second.model import build_patch_model; "
            "m = build_patch_model(32, 120.0, 40.0); "
            "y = m({'image': np.zeros((2, 32, 32, 1), 'float32'), 'male': np.zeros((2, 1), 'float32')}); "
            "import sys; print(keras.backend.backend(), tuple(y.shape), 'tensorflow' in sys.modules)")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "jax (2, 1) False"  # no TensorFlow needed


def test_head_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        mixed = build_patch_model(P, 135.30, 42.14)
        # training=True: batch statistics (untrained moving statistics overflow float16 in 50 blocks)
        out = mixed({"image": _patches(4), "male": np.ones((4, 1), "float32")}, training=True)
        assert mixed.get_layer("grey_to_caffe").compute_dtype == "float16"
        assert keras.backend.standardize_dtype(out.dtype) == "float32" and np.isfinite(np.asarray(out)).all()
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_the_router_handles_one_patch_per_radiograph():
    """The whole-image variants: [B, 1, S, S, 1] stacks give [B, 1] predictions."""
    router = SexRouter({"female": _constant_model(100.0), "male": _constant_model(150.0)})
    out = router.patch_predictions(np.zeros((3, 1, 8, 8, 1), "float32"), [1, 0, 1])
    assert out.shape == (3, 1)
    np.testing.assert_allclose(out[:, 0], [150.0, 100.0, 150.0], atol=1e-4)
