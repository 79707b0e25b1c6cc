"""attention_mtl's task functions: masks in and out of the pipeline, targets per head, read-out with intervals."""
import math

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from common import preprocessing as common_pp
from common.datasets.base import DataError
from common.errors import UsageError
from reproductions.attention_mtl import conformal, heads
from reproductions.attention_mtl import task as attn_task
from reproductions.attention_mtl.config import get_config


POINTS = np.array([[0.5, 0.3], [0.7, 0.5], [0.45, 0.6]], np.float32)  # (x, y) / side of the 30 x 40 image


def _example(with_mask=True, with_keypoints=True):
    image = np.zeros((40, 30, 1), np.uint8)
    image[10:30, 5:25] = 200
    example = {"id": tf.constant("a"), "image": tf.constant(image), "male": tf.constant(1, tf.int64),
               "boneage_months": tf.constant(100.0)}
    if with_keypoints:
        example["keypoints"] = tf.constant(POINTS)
    if with_mask:
        example["mask"] = tf.constant((image > 0).astype(np.uint8) * 255)
    return example


def _handle(*features):
    class Handle:  # a dataset as common.data hands it over
        name = "folder/radiographs"

        class builder:
            class info:
                pass
    Handle.builder.info.features = dict.fromkeys(("image", "male", "boneage_months", "id", *features))
    return Handle


def test_the_aux_arm_takes_the_iglovikov18_chains_masks_and_key_points_where_the_data_has_none():
    from common import phantoms
    config = get_config("r512_aux")
    config.data.image_size = 128
    attn_task.check_annotations(config, _handle())  # a folder of radiographs: the chain makes both
    p = phantoms.sample_phantom(0, 0, 256)
    image = p.image[:, 28:228]  # a portrait radiograph: the letterbox pads it
    example = {"id": tf.constant("b"), "image": tf.constant(image[..., None]), "male": tf.constant(0, tf.int64),
               "boneage_months": tf.constant(p.boneage_months, tf.float32)}
    out = attn_task.preprocess(config, True)(example)
    truth = common_pp.letterbox({"image": tf.constant(image[..., None]),
                                 "mask": tf.constant(p.mask[:, 28:228, None]),
                                 "keypoints": tf.constant((p.keypoints - [28, 0]) / [200, 256], tf.float32)}, 128)
    mask, true_mask = out["mask"].numpy()[..., 0] > 127, truth["mask"].numpy()[..., 0] > 127
    assert (mask & true_mask).sum() / (mask | true_mask).sum() > 0.8
    peaks = [np.unravel_index(np.argmax(out["heatmaps"].numpy()[..., k]), (128, 128))[::-1] for k in range(3)]
    assert np.abs(np.array(peaks) + 0.5 - truth["keypoints"].numpy() * 128).max() < 0.06 * 128
    blank = attn_task.preprocess(config, True)({**example, "image": tf.zeros((64, 50, 1), tf.uint8)})
    assert not blank["mask"].numpy().any() and not blank["heatmaps"].numpy().any()  # no hand: empty targets
    phantom = attn_task.preprocess(config, True)(_example())  # a dataset's own annotations come first
    np.testing.assert_array_equal(phantom["mask"].numpy(),
                                  common_pp.letterbox(_example(), 128)["mask"].numpy())


def test_heads_refuse_a_dataset_without_their_annotations_with_the_fix():
    config = get_config("small")  # the mask and key-point heads on
    with pytest.raises(DataError, match="model.aux.mask_weight=0"):
        attn_task.preprocess(config, True)(_example(with_mask=False))
    with pytest.raises(DataError, match="model.aux.keypoint_weight=0"):
        attn_task.preprocess(config, True)(_example(with_keypoints=False))
    with pytest.raises(DataError, match="folder/radiographs: .*mask_weight=0.*keypoint_weight=0"):
        attn_task.check_annotations(config, _handle())  # a folder of radiographs: neither
    attn_task.check_annotations(config, _handle("mask", "keypoints"))  # phantoms: fine
    config.model.aux.mask_weight = config.model.aux.keypoint_weight = 0.0
    attn_task.check_annotations(config, _handle())
    config.model.aux.outside_mask_weight = 1.0  # the penalty reads the mask too
    with pytest.raises(DataError, match="outside_mask_weight=0"):
        attn_task.check_annotations(config, _handle("keypoints"))
    attn_task.check_annotations(get_config("r512"), _handle())  # the real-data settings need neither
    assert attn_task.TASK.runner.train is attn_task.run_train


def test_masks_and_key_points_are_kept_only_for_their_heads_and_never_for_evaluation():
    small, default = get_config("small"), get_config()
    assert set(attn_task.preprocess(small, True)(_example())) == {"id", "image", "male", "boneage_months", "mask",
                                                                   "heatmaps"}
    assert set(attn_task.preprocess(default, True)(_example())) == {"id", "image", "male", "boneage_months"}
    penalty = get_config()
    penalty.model.aux.outside_mask_weight = 1.0
    assert set(attn_task.preprocess(penalty, True)(_example())) == {"id", "image", "male", "boneage_months", "mask"}
    assert set(attn_task.test_preprocess(small)(_example())) == {"id", "image", "male", "boneage_months"}
    assert "keypoints" in attn_task.TASK.data.example_keys and "mask" in attn_task.TASK.data.example_keys


def test_the_heatmap_targets_peak_at_the_letterboxed_key_points():
    """The 30 x 40 image is letterboxed into a square (5-px bars left and right), then the maps are area-resized
    to the mask head's 16 x 16: each target's peak lies within a cell of the key point's letterboxed place."""
    config = get_config("small")
    example = attn_task.preprocess(config, False)(_example())
    assert example["heatmaps"].shape == (64, 64, 3) and example["heatmaps"].dtype == tf.uint8
    letterboxed = common_pp.letterbox({"image": _example()["image"], "keypoints": tf.constant(POINTS)}, 64)["keypoints"]
    batch = {k: tf.stack([v] * 2) for k, v in example.items()}
    _, targets = attn_task.to_model_io(config)(batch)
    assert targets["heatmaps"].shape == (2, 16, 16, 3)
    peaks = heads.heatmap_peaks(targets["heatmaps"].numpy())[0]
    np.testing.assert_allclose(peaks, letterboxed.numpy(), atol=1 / 16)
    assert letterboxed.numpy()[1, 0] == pytest.approx(0.65)  # x 0.7 of 30 px + the 5-px bar, of 40 px
    assert abs(peaks[1, 0] - POINTS[1, 0]) > 1 / 32  # so the letterbox was applied to the targets


def test_the_mask_and_the_key_point_maps_move_with_their_image():
    """Every channel goes through one affine transform: copies of the image stay copies after it."""
    config = get_config("small")
    config.train.augmentation.rotation_degrees = 30
    image = tf.constant(np.random.default_rng(0).integers(0, 256, (4, 64, 64, 1)), tf.uint8)
    batch = {"image": image, "mask": image, "heatmaps": tf.concat([image] * 3, axis=-1), "male": tf.ones(4, tf.int64)}
    out = attn_task.batch_augment(config)(batch)
    assert out["image"].shape == (4, 64, 64, 1) and out["mask"].shape == (4, 64, 64, 1)
    assert out["heatmaps"].shape == (4, 64, 64, 3)
    assert not np.allclose(out["image"].numpy(), image.numpy())  # it did move
    for moved in (out["mask"], *tf.split(out["heatmaps"], 3, axis=-1)):
        np.testing.assert_allclose(moved.numpy(), out["image"].numpy(), atol=1e-4)


def test_the_mask_moves_with_its_image():
    config = get_config("small")
    config.train.augmentation.rotation_degrees = 30
    example = attn_task.preprocess(config, True)(_example())
    batch = {k: tf.stack([v] * 4) for k, v in example.items()}
    out = attn_task.batch_augment(config)(batch)
    moved_image, moved_mask = out["image"].numpy(), out["mask"].numpy()
    assert not np.allclose(moved_image, batch["image"].numpy())  # it did move
    np.testing.assert_allclose(moved_image / 200.0, moved_mask / 255.0, atol=1e-4)  # and the mask with it


def test_targets_follow_the_heads():
    config = get_config("small")
    config.model.sex_input, config.model.aux.sex_weight = False, 0.5
    batch = {k: tf.stack([v] * 2) for k, v in attn_task.preprocess(config, True)(_example()).items()}
    inputs, targets = attn_task.to_model_io(config)(batch)
    assert list(inputs) == ["image"] and inputs["image"].shape == (2, 64, 64, 3)
    assert set(targets) == {"months", "sex", "mask", "heatmaps"} and targets["mask"].shape == (2, 16, 16, 1)
    assert float(tf.reduce_max(targets["mask"])) <= 1.0 and float(tf.reduce_max(targets["mask"])) > 0.9
    assert set(attn_task.loss(config)) == {"months", "sex", "mask", "heatmaps"}
    assert set(attn_task.metrics(config)) == {"months", "sex"}
    assert set(attn_task.loss(get_config())) == {"months"}
    config.model.aux.outside_mask_weight, config.model.aux.mask_weight = 0.5, 0.0
    _, targets = attn_task.to_model_io(config)(batch)
    assert set(targets) == {"months", "sex", "heatmaps", "attention"} and targets["attention"].shape == (2, 16, 16, 1)
    assert set(attn_task.loss(config)) == {"months", "sex", "heatmaps", "attention"}
    assert set(attn_task.metrics(config)) == {"months", "sex", "attention"}
    model = attn_task.build_model(config)
    assert set(model.output) == {"months", "sex", "heatmaps", "attention"}


def test_the_outside_mask_penalty_is_refused_without_attention_pooling():
    config = get_config("gap")
    config.model.aux.outside_mask_weight = 1.0
    with pytest.raises(UsageError, match="model.pooling=attention or model.aux.outside_mask_weight=0"):
        attn_task.build_model(config)


def test_predict_gives_location_then_scale_and_intervals():
    config = get_config("small")
    config.model.backbone = "tiny_cnn"
    model = attn_task.build_model(config)
    inputs = {"image": np.random.default_rng(0).random((3, 64, 64, 3), dtype=np.float32),
              "male": np.ones((3, 1), np.float32)}
    uncalibrated = attn_task.predict(model, inputs, config)
    assert list(uncalibrated)[0] == "location" and set(uncalibrated) - {"location"} == set(attn_task.TASK.extra_columns)
    assert np.isnan(uncalibrated["lower_90"]).all()
    model.calibration = {"quantiles": {"80": 1.0, "90": 2.0, "95": 3.0}}
    out = attn_task.predict(model, inputs, config)
    np.testing.assert_allclose(out["upper_90"] - out["lower_90"], 4.0 * out["scale_months"])
    assert (out["lower_95"] < out["lower_90"]).all() and (out["lower_90"] < out["location"]).all()


def test_the_point_head_gets_intervals_of_one_width_and_an_evaluation_that_says_so():
    """The plain-L1 arm: prediction, conformal fit on absolute residuals, report and markdown all work."""
    config = get_config("l1")
    config.data.image_size, config.model.backbone = 64, "tiny_cnn"
    model = attn_task.build_model(config)
    rng = np.random.default_rng(0)
    inputs = {"image": rng.random((40, 64, 64, 3), dtype=np.float32), "male": np.ones((40, 1), np.float32)}
    loc = attn_task.predict(model, inputs, config)["location"]
    y = loc + rng.laplace(0, 10, 40)
    _, scale = attn_task._location_scale(model, inputs, config)
    np.testing.assert_array_equal(scale, 1.0)
    model.calibration = {"quantiles": conformal.fit(y[:20], loc[:20], scale[:20])}
    out = attn_task.predict(model, inputs, config)
    width = out["upper_90"] - out["lower_90"]
    np.testing.assert_allclose(width, width[0])
    assert width[0] == pytest.approx(2 * np.sort(np.abs(y[:20] - loc[:20]))[math.ceil(21 * 0.9) - 1], rel=1e-6)
    table = pd.DataFrame({"boneage_true": y[20:], "boneage_pred": out["location"][20:],
                          **{k: v[20:] for k, v in out.items() if k != "location"}})
    result = conformal.report(table)
    assert result["constant_scale"] and result["levels"]["90"]["mean_width_months"] == pytest.approx(width[0])
    assert "one width for all" in conformal.markdown(result)
    assert not conformal.report(table.assign(scale_months=np.linspace(1, 2, 20)))["constant_scale"]
    assert attn_task.loss(config)["months"].__name__ == "point_l1"


def test_the_citation_says_it_is_not_a_paper():
    assert "not a paper" in attn_task.TASK.citation and attn_task.TASK.paper == "attention_mtl"


class _Handle:
    """A dataset handle with only a test split (the official 16 challenge images)."""
    name, splits = "folder/official-16", ("test",)

    def fingerprint(self, split=None):
        return "other-data"


def test_an_external_test_set_without_validation_keeps_the_runs_own_calibration(tmp_path):
    config = get_config("small")
    config.model.backbone = "tiny_cnn"
    model = attn_task.build_model(config)
    model.weights_file = tmp_path / "best.weights.h5"
    model.weights_file.write_bytes(b"weights")
    messages = []
    attn_task.calibrate(attn_task.TASK, model, config, _Handle(), tmp_path, log=messages.append)
    assert getattr(model, "calibration", None) is None and "no conformal intervals" in messages[-1]

    saved = {"quantiles": {"80": 1.0, "90": 2.0, "95": 3.0}, "weights_sha256": attn_task._sha256(model.weights_file),
             "fitted_on": {"dataset": "folder/rsna-512", "dataset_fingerprint": "own-data", "split": "validation",
                           "images": 102}}
    (tmp_path / attn_task.CONFORMAL_FILE).write_text(__import__("json").dumps(saved))
    attn_task.calibrate(attn_task.TASK, model, config, _Handle(), tmp_path, log=messages.append)
    assert model.calibration["quantiles"]["90"] == 2.0
    assert "102 validation images of folder/rsna-512" in messages[-1]
