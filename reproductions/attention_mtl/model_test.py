"""The attention_mtl network: outputs and shapes per pooling and head, float32 heads, backbones, the jax backend."""
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import ROOT, SUBPROCESS_TIMEOUT_S, requires_jax
from reproductions.attention_mtl import distribution
from reproductions.attention_mtl.model import BACKBONE_NAME, POINT_SCALE_MONTHS, build_attention_mtl
from reproductions.attention_mtl.pooling import attention_map_model

RNG = np.random.default_rng(0)
FEED = {"image": RNG.random((2, 64, 64, 3), dtype=np.float32), "male": np.array([[0.0], [1.0]], np.float32)}


@pytest.mark.parametrize("pooling", ["gap", "attention", "gru"])
def test_each_pooling_predicts_a_location_and_a_positive_scale(pooling):
    keras.utils.set_random_seed(0)
    model = build_attention_mtl(64, pooling=pooling, d_model=32, gru_units=8, dense_units=16)
    months = model.predict_on_batch(FEED)["months"]
    assert months.shape == (2, 2) and np.isfinite(months).all() and (months[:, 1] >= 0.5).all()
    assert model.get_layer(BACKBONE_NAME).output_shape == (None, 2, 2, 1280)


def test_attention_map_over_the_backbone_grid_sums_to_one():
    model = build_attention_mtl(96, d_model=32)
    maps = attention_map_model(model).predict_on_batch(
        {"image": RNG.random((2, 96, 96, 3), dtype=np.float32), "male": FEED["male"]})
    assert maps.shape == (2, 3, 3)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, rtol=1e-5)


def test_auxiliary_heads_have_the_right_shapes():
    model = build_attention_mtl(64, sex_input=False, sex_head=True, mask_head=True, mask_size=16, d_model=32)
    assert list(model.input) == ["image"]
    out = model.predict_on_batch({"image": FEED["image"]})
    assert out["months"].shape == (2, 2) and out["sex"].shape == (2, 1) and out["mask"].shape == (2, 16, 16, 1)
    assert ((out["sex"] > 0) & (out["sex"] < 1)).all()


def test_the_keypoint_head_and_the_attention_output_have_the_right_shapes():
    model = build_attention_mtl(64, backbone="tiny_cnn", keypoint_head=True, attention_output=True, mask_size=16,
                                d_model=32)
    out = model.predict_on_batch(FEED)
    assert out["heatmaps"].shape == (2, 16, 16, 3) and out["attention"].shape == (2, 4, 4)
    np.testing.assert_allclose(out["attention"].sum(axis=(1, 2)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out["attention"], attention_map_model(model).predict_on_batch(FEED), rtol=1e-5)
    assert model.get_layer("heatmaps").dtype == "float32" and model.get_layer("attention").dtype == "float32"


def test_the_point_head_predicts_a_location_beside_a_constant_scale():
    keras.utils.set_random_seed(0)
    model = build_attention_mtl(64, backbone="tiny_cnn", distribution="point", d_model=32, dense_units=16)
    months = model.predict_on_batch(FEED)["months"]
    assert months.shape == (2, 2) and np.isfinite(months).all()
    np.testing.assert_array_equal(months[:, 1], POINT_SCALE_MONTHS)
    assert model.get_layer("age_raw").kernel.shape == (16, 1)


# The layers (and weight shapes) of the default network at 64 px with every option off: the weights of
# runs saved before the key-point head, the outside-mask penalty and the point head existed (the r512
# headline run's) must still load, so an option that is off may add no layer.
DEFAULT_HEAD_WEIGHTS = {
    "token_projection": [(1280, 32), (32,)], "token_positions": [(4, 32)], "token_norm": [(32,), (32,)],
    "sex_queries": [(2, 32)], "attention_pool": [(32, 4, 8), (4, 8), (32, 4, 8), (4, 8), (32, 4, 8), (4, 8), (4, 8, 32),
                                                (32,)],
    "pool_norm": [(32,), (32,)], "sex_dense": [(1, 16), (16,)], "dense": [(48, 256), (256,)],
    "age_raw": [(256, 2), (2,)]}


def test_options_that_are_off_add_no_layer():
    model = build_attention_mtl(64, d_model=32)
    names = [layer.name for layer in model.layers]
    assert names == ["image", "backbone", "tokens", "token_projection", "male", "token_positions", "sex_queries",
                     "token_norm", "attention_pool", "pooled", "pool_norm", "sex_dense", "image_and_sex", "dense",
                     "dropout", "age_raw", "months"], names
    weights = {layer.name: [tuple(w.shape) for w in layer.weights] for layer in model.layers
               if layer.weights and layer.name != BACKBONE_NAME}
    assert weights == DEFAULT_HEAD_WEIGHTS


def test_mae_is_logged_as_mae_whatever_the_heads():
    """Checkpoints are picked by val_mae and the comparison reads it: its name must not change with the heads."""
    model = build_attention_mtl(64, sex_input=False, sex_head=True, d_model=32, dense_units=16)
    model.compile(optimizer="adam", loss={"months": distribution.age_loss(), "sex": "binary_crossentropy"},
                  metrics={"months": [keras.metrics.MeanMetricWrapper(distribution.absolute_error, name="mae")]})
    y = {"months": np.array([[100.0], [150.0]], np.float32), "sex": np.array([[0.0], [1.0]], np.float32)}
    history = model.fit({"image": FEED["image"]}, y, validation_data=({"image": FEED["image"]}, y), epochs=1,
                        verbose=0)
    assert {"mae", "val_mae", "sex_loss"} <= set(history.history), history.history.keys()


def test_heads_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_attention_mtl(64, mask_head=True, mask_size=8, d_model=32)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert model.get_layer("months").dtype == "float32" and model.get_layer("mask").dtype == "float32"
    assert model.get_layer(BACKBONE_NAME).get_layer("stem_conv").compute_dtype == "bfloat16"


def test_a_keras_applications_backbone_builds_under_the_same_name():
    """GPU runs may name a keras.applications network; its notop file then loads into `backbone`."""
    model = build_attention_mtl(64, backbone="mobilenet_v3_small", d_model=32)
    backbone = model.get_layer(BACKBONE_NAME)
    assert backbone.output_shape[1:3] == (2, 2)
    assert model.predict_on_batch(FEED)["months"].shape == (2, 2)
    assert model.get_layer("to_0_255") is not None  # the application normalises 0-255 pixels itself


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="Received: image_size=16"):
        build_attention_mtl(16)
    with pytest.raises(ValueError, match="Received: backbone='vgg99'"):
        build_attention_mtl(64, backbone="vgg99")
    with pytest.raises(ValueError, match="sex_head=True, sex_input=True"):
        build_attention_mtl(64, sex_head=True)
    with pytest.raises(ValueError, match="Received: pooling='gap', attention_output=True"):
        build_attention_mtl(64, pooling="gap", attention_output=True)
    with pytest.raises(ValueError, match="mask_size=10, grid=4 x 4"):
        build_attention_mtl(64, backbone="tiny_cnn", attention_output=True, mask_size=10, d_model=32)
    with pytest.raises(ValueError, match="Received: distribution='poisson'"):
        build_attention_mtl(64, distribution="poisson")


@requires_jax
def test_builds_and_runs_with_the_jax_backend():
    code = ("import numpy as np, keras, sys; from reproductions.attention_mtl.model import build_attention_mtl; "
            "from reproductions.attention_mtl.pooling import attention_map_model; "
            "out = []\n"
            "for p in ('attention', 'gap', 'gru'):\n"
            "    m = build_attention_mtl(64, pooling=p, d_model=32, gru_units=8, sex_input=p != 'gap', "
            "sex_head=p == 'gap', mask_head=True, mask_size=8, keypoint_head=True, attention_output=p == 'attention', "
            "distribution='point' if p == 'gru' else 'laplace')\n"
            "    x = {'image': np.zeros((2, 64, 64, 3), 'float32'), 'male': np.zeros((2, 1), 'float32')}\n"
            "    x = x if p != 'gap' else {'image': x['image']}\n"
            "    out.append(tuple(m(x)['months'].shape))\n"
            "    if p == 'attention': out.append(round(float(np.asarray(attention_map_model(m)(x)).sum()), 4))\n"
            "    if p == 'gap': out.append('tensorflow' in sys.modules)\n"
            "print(keras.backend.backend(), out)")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-2000:]
    # Attention, mask and key-point heads need no TensorFlow (False); Keras's own GRU imports it (its cuDNN check).
    assert result.stdout.strip().splitlines()[-1] == "jax [(2, 2), 2.0, (2, 2), False, (2, 2)]"
