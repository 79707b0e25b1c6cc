"""Tests for the Iglovikov18 networks: layout, heads, the sex switch, sizes, and the JAX backend."""
import os
import subprocess
import sys
import textwrap
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, SUBPROCESS_TIMEOUT_S, requires_jax
from reproductions.iglovikov18 import model as ig_model

SMALL = dict(filters=[4, 8, 8, 8, 8, 8], pool_padding="same", dense_units=16)


def test_vgg_block_layout_is_the_recipe_order():
    """conv3x3 -> ELU -> BN -> conv1x1 -> ELU -> BN -> max-pool 3/2, six times with the paper's filters."""
    m = ig_model.build_age_model((127, 127), sex_handling="input", dense_units=8)
    names = [layer.name for layer in m.layers]
    block = [n for n in names if n.startswith("block1_")]
    assert block == ["block1_conv1", "block1_elu1", "block1_bn1", "block1_conv2", "block1_elu2", "block1_bn2",
                     "block1_pool"]
    assert [m.get_layer(f"block{i}_conv1").filters for i in range(1, 7)] == [32, 64, 128, 128, 256, 384]
    assert m.get_layer("block1_conv1").kernel_size == (3, 3) and m.get_layer("block1_conv2").kernel_size == (1, 1)
    pool = m.get_layer("block1_pool")
    assert (pool.pool_size, pool.strides, pool.padding) == ((3, 3), (2, 2), "valid")
    assert m.get_layer("block1_bn1").momentum == pytest.approx(0.9)
    assert [m.get_layer(f"dropout{i}").rate for i in (1, 2)] == [0.3, 0.3]


def test_paper_input_gives_the_recipes_flattened_size():
    """500 x 375 through six valid 3/2 pools: 6 x 4 x 384 = 9216 features, as the recipe's m46 computes."""
    features = ig_model.vgg_features(keras.Input((500, 375, 1)), [32, 64, 128, 128, 256, 384])
    assert features.shape[-1] == 6 * 4 * 384


def test_heads_and_outputs():
    x = {"image": np.zeros((3, 40, 30, 1), np.float32), "male": np.array([[0.0], [1.0], [1.0]], np.float32)}
    reg = ig_model.build_age_model((40, 30), **SMALL)
    age = reg(x)["age"]
    assert age.shape == (3, 1) and age.dtype == "float32"
    cls = ig_model.build_age_model((40, 30), head="classification", num_classes=240, **SMALL)
    probs = np.asarray(cls(x)["probs"])
    assert probs.shape == (3, 240)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def test_regression_reads_months_around_the_recipes_offset():
    """An untrained net outputs 120 + 120 * (small unit): the recipe's (months - 120) / 120 target."""
    keras.utils.set_random_seed(0)  # unseeded, one initialisation in a few dozen put an output past 240 (seen once)
    m = ig_model.build_age_model((40, 30), **SMALL)
    x = {"image": np.random.default_rng(0).normal(size=(8, 40, 30, 1)).astype("float32"), "male": np.zeros((8, 1))}
    months = np.asarray(m(x, training=False)["age"])
    assert np.all(np.abs(months - 120.0) < 120.0)


def test_sex_switch_picks_the_tower_of_the_patients_sex():
    m = ig_model.build_age_model((40, 30), **SMALL)
    image = np.random.default_rng(1).normal(size=(1, 40, 30, 1)).astype("float32")
    female = float(m({"image": image, "male": np.zeros((1, 1))})["age"][0, 0])
    male = float(m({"image": image, "male": np.ones((1, 1))})["age"][0, 0])
    assert female != pytest.approx(male)
    # zero the female tower's output layer: only the female prediction changes
    layer = m.get_layer("female_out")
    layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    assert float(m({"image": image, "male": np.zeros((1, 1))})["age"][0, 0]) == pytest.approx(120.0)
    assert float(m({"image": image, "male": np.ones((1, 1))})["age"][0, 0]) == pytest.approx(male)


def test_each_tower_learns_only_from_its_sex():
    m = ig_model.build_age_model((40, 30), **SMALL)
    x = {"image": tf.random.normal((4, 40, 30, 1)), "male": tf.zeros((4, 1))}   # girls only
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(m(x, training=True)["age"])
    grads = dict(zip([v.path for v in m.trainable_variables], tape.gradient(loss, m.trainable_variables)))
    male = [g for p, g in grads.items() if p.startswith("male_")]
    female = [g for p, g in grads.items() if p.startswith("female_")]
    assert male and female
    assert all(g is None or float(tf.reduce_max(tf.abs(g))) == 0.0 for g in male)
    assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0.0 for g in female)


def test_sex_as_input_is_one_tower():
    m = ig_model.build_age_model((40, 30), sex_handling="input", **SMALL)
    assert not any(layer.name.startswith(("female_", "male_")) for layer in m.layers)
    assert m.get_layer("with_sex") is not None


def test_keypoint_model_starts_at_the_centre():
    m = ig_model.build_keypoint_model(64, pool_padding="same", filters=[4, 8, 8, 8, 8, 8], dense_units=16)
    kp = np.asarray(m({"image": np.zeros((2, 64, 64, 1), np.float32)}, training=False)["keypoints"])
    assert kp.shape == (2, 3, 2) and np.all(np.abs(kp - 0.5) < 0.5)


def test_classifier_read_outs():
    probs = np.zeros((2, 240), np.float32)
    probs[0, 100] = 1.0
    probs[1, [10, 20]] = 0.5
    np.testing.assert_allclose(ig_model.expected_age(probs), [100.0, 15.0])
    np.testing.assert_array_equal(ig_model.argmax_age(probs), [100, 10])
    np.testing.assert_array_equal(ig_model.age_to_class(np.array([-3.0, 10.4, 10.6, 400.0])), [0, 10, 11, 239])


def test_bad_arguments_say_what_was_received():
    with pytest.raises(ValueError, match="head"):
        ig_model.build_age_model((40, 30), head="ordinal")
    with pytest.raises(ValueError, match="sex_handling"):
        ig_model.build_age_model((40, 30), sex_handling="ignore")
    with pytest.raises(ValueError, match="too small"):
        ig_model.build_age_model((40, 30))          # six valid 3/2 pools need ~127 px
    with pytest.raises(ValueError, match="filters"):
        ig_model.build_age_model((40, 30), filters=[], pool_padding="same")


@requires_jax
def test_every_network_builds_with_the_jax_backend():
    code = textwrap.dedent("""
        import numpy as np, keras
        from common.unet import build_unet
        from reproductions.iglovikov18 import model as m
        assert keras.backend.backend() == "jax"
        small = dict(filters=[4, 8, 8, 8, 8, 8], pool_padding="same", dense_units=16)
        models = [m.build_age_model((40, 30), **small), m.build_age_model((40, 30), head="classification", **small),
                  m.build_keypoint_model(32, **small), build_unet((32, 32, 1), base_filters=4, depth=3)]
        assert all(model.count_params() > 0 for model in models)
        x = {"image": np.zeros((2, 40, 30, 1), "float32"), "male": np.array([[0.], [1.]], "float32")}
        assert models[0].predict_on_batch(x)["age"].shape == (2, 1)   # the sex switch runs under jit
        print("ok")
    """)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


@pytest.mark.parametrize("stage, region", [("segment", None), ("keypoints", None), ("regress", "hand"),
                                           ("classify", "carpal")])
def test_each_r512_network_starts_from_its_thumbs_network(stage, region):
    """`train --init-from` a thumbs run (common/init_from.py): every layer loads but the first dense layer
    of each tower, whose input grows with the image (none in the fully convolutional U-Net)."""
    from common import init_from
    from reproductions.iglovikov18.config import get_config
    from reproductions.iglovikov18.variants import Variant
    from reproductions.iglovikov18.task import TASKS
    build = TASKS[stage].build_model
    thumbs = build(get_config(Variant("thumbs", stage, region)))
    layers = [(p, type(layer).__name__, layer.get_weights()) for p, layer in init_from.weighted_layers(thumbs)]
    source = init_from.Source(run_dir="thumbs-run", weights=types.SimpleNamespace(name="best.weights.h5"),
                              layers=layers, record={})
    r512 = build(get_config(Variant("r512", stage, region)))
    report = init_from.load_matching(r512, source, log=lambda *_: None)
    towers = 2 if stage in ("regress", "classify") else 1  # model.sex_handling "separate": one tower per sex
    expected_skips = 0 if stage == "segment" else towers
    assert len(report["skipped"]) == expected_skips, report["skipped"]
    assert all("shapes" in line and "fc1" in line for line in report["skipped"]), report["skipped"]
    assert report["loaded_layers"] == report["layers"] - expected_skips
