"""Tests for larson18's task functions with both sex handlings: inputs and targets in tf.data, the
loss's month class, the read-outs over test-time crops, and `predict` from the command line.

The shared head ("nosex", issue #8) must get no sex at all; everything else stays as in the paper
setting. Models are built at 32-px crops, so ResNet-50 runs in seconds on shared CPUs.
"""
import json

import cv2
import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from reproductions.larson18 import task as larson_task
from reproductions.larson18.config import get_config

C = 240


def _config(variant):
    """`variant` at a tiny size: 40-px load, 32-px crops, 2 x 2 CLAHE tiles (20 px)."""
    config = get_config(variant)
    config.data.image_size, config.data.crop_size = 40, 32
    for channel in config.data.clahe:
        channel["tile_grid"] = 2
    config.variant = variant
    return config


def _film(seed, h=50, w=44):
    rng = np.random.default_rng(seed)
    yy = np.mgrid[0:h, 0:w][0]
    return np.clip(60 + 100 * yy / h + 20 * rng.standard_normal((h, w)), 0, 255).astype(np.uint8)


def _examples(months=(7.4, 130.6, 239.9), males=(0, 1, 1)):
    """A tf.data dataset of decoded examples, as common.pipeline reads them from the shards."""
    images = np.stack([_film(i)[..., None] for i in range(len(months))])
    return tf.data.Dataset.from_tensor_slices({
        "id": tf.constant([f"x{i}" for i in range(len(months))]), "image": tf.constant(images),
        "boneage_months": tf.constant(months, tf.float32), "male": tf.constant(males, tf.int64)})


@pytest.mark.parametrize("variant, sex_input", [("thumbs", True), ("thumbs_nosex", False)])
def test_model_io_and_loss_targets_inside_tf_data(variant, sex_input):
    config = _config(variant)
    months = (7.4, 130.6, 239.9)
    ds = (_examples(months).map(larson_task.test_preprocess(config)).batch(3)
          .map(larson_task.to_model_io(config)))
    inputs, targets = next(iter(ds))
    assert set(inputs) == ({"image", "male"} if sex_input else {"image"})
    assert inputs["image"].shape == (3, 10, 32, 32, 3)  # ten test-time crops per radiograph
    if sex_input:
        np.testing.assert_array_equal(inputs["male"].numpy(), [[0.0], [1.0], [1.0]])
    np.testing.assert_allclose(targets["probs"].numpy(), months, rtol=1e-6)  # targets stay in months
    # The loss's class is the rounded month, for the shared head as for each sex half (also in graph mode).
    loss = larson_task.loss(config)["probs"]
    right = tf.one_hot([7, 131, 239], C)
    wrong = tf.one_hot([8, 130, 238], C)
    losses = next(iter(ds.map(lambda x, y: (loss(y["probs"], right), loss(y["probs"], wrong)))))
    assert float(np.max(losses[0].numpy())) < 1e-5
    assert float(np.min(losses[1].numpy())) > 10.0


def test_training_batches_of_the_shared_head_carry_no_sex():
    config = _config("thumbs_nosex")
    preprocess, augment = larson_task.TASK.data.preprocess(config, True), larson_task.TASK.data.augment(config)
    ds = (_examples().map(preprocess).map(lambda e: augment(e, tf.constant([1, 2], tf.int32))).batch(3)
          .map(larson_task.to_model_io(config)))
    inputs, targets = next(iter(ds))
    assert set(inputs) == {"image"} and inputs["image"].shape == (3, 32, 32, 3)
    assert targets["probs"].shape == (3,)


@pytest.fixture(scope="module")
def nosex():
    config = _config("thumbs_nosex")
    return config, larson_task.build_model(config)


def _crops(n=2, seed=0):
    return np.random.default_rng(seed).normal(0.0, 50.0, (n, 10, 32, 32, 3)).astype("float32")


def test_shared_head_prediction_ignores_the_sex(nosex):
    config, model = nosex
    assert [i.name for i in model.inputs] == ["image"]
    image = _crops()
    female = larson_task.predict(model, {"image": image, "male": np.zeros((2, 1), "float32")}, config)
    male = larson_task.predict(model, {"image": image, "male": np.ones((2, 1), "float32")}, config)
    assert list(female) == ["expected", "argmax"]  # primary first, as in the paper setting
    for name in female:
        assert female[name].shape == (2,)
        np.testing.assert_array_equal(female[name], male[name])
    # Through to_model_io, as evaluation feeds it: batches that differ only in sex give equal inputs.
    batch = {"image": tf.constant(image), "boneage_months": tf.constant([10.0, 20.0])}
    a, _ = larson_task.to_model_io(config)({**batch, "male": tf.constant([0, 0], tf.int64)})
    b, _ = larson_task.to_model_io(config)({**batch, "male": tf.constant([1, 0], tf.int64)})
    np.testing.assert_array_equal(larson_task.predict(model, a, config)["expected"],
                                  larson_task.predict(model, b, config)["expected"])


def test_split_head_prediction_still_reads_the_sex():
    config = _config("thumbs")
    model = larson_task.build_model(config)
    image = _crops(seed=1)
    female = larson_task.predict(model, {"image": image, "male": np.zeros((2, 1), "float32")}, config)
    male = larson_task.predict(model, {"image": image, "male": np.ones((2, 1), "float32")}, config)
    assert female["expected"].shape == (2,)
    assert not np.allclose(female["expected"], male["expected"])


def test_predict_command_with_the_shared_head(nosex, tmp_path):
    """`predict` on a nosex run: no sex needed; given one, it is recorded and ignored."""
    from common import train as train_lib

    config, model = nosex
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(config.to_dict()))
    model.save_weights(run / "checkpoints" / "best.weights.h5")
    image = tmp_path / "hand.png"
    cv2.imwrite(str(image), _film(3, 60, 48))
    tables = {}
    for sex in ("F", "M"):
        csv = tmp_path / f"pred_{sex}.csv"
        assert train_lib.main(larson_task.TASK, ["predict", str(image), "--sex", sex, "--out", str(run),
                                                 "--output-csv", str(csv)]) == 0
        tables[sex] = pd.read_csv(csv)
    assert tables["F"]["male"].tolist() == [0] and tables["M"]["male"].tolist() == [1]
    for column in ("boneage_months", "boneage_months_argmax"):
        assert tables["F"][column].notna().all()
        np.testing.assert_array_equal(tables["F"][column], tables["M"][column])
    csv = tmp_path / "pred_unknown.csv"  # no --sex at all: the split-head paper model would refuse this
    assert train_lib.main(larson_task.TASK, ["predict", str(image), "--out", str(run), "--output-csv", str(csv)]) == 0
    np.testing.assert_array_equal(pd.read_csv(csv)["boneage_months"], tables["F"]["boneage_months"])


def test_only_the_split_head_needs_the_sex():
    assert larson_task.TASK.sex_needed(get_config()) and larson_task.TASK.sex_needed(get_config("thumbs"))
    assert not larson_task.TASK.sex_needed(get_config("nosex"))
    assert not larson_task.TASK.sex_needed(get_config("thumbs_nosex"))


def test_the_random_init_arm_refuses_init_from_before_any_data_is_built(tmp_path, capsys):
    from common.train import main
    from reproductions.larson18.task import TASK
    code = main(TASK, ["train", "--data", "phantoms/tiny", "--data-dir", str(tmp_path), "--variant", "r512_scratch",
                       "--init-from", str(tmp_path), "--out", str(tmp_path / "run")])
    assert code == 2 and "--variant r512_scratch starts from random weights" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "phantoms").exists()
