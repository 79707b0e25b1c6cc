"""attention_mtl's task functions: masks in and out of the pipeline, targets per head, read-out with intervals."""
import numpy as np
import pytest
import tensorflow as tf

from common.datasets.base import DataError
from reproductions.attention_mtl import task as attn_task
from reproductions.attention_mtl.config import get_config


def _example(with_mask=True):
    image = np.zeros((40, 30, 1), np.uint8)
    image[10:30, 5:25] = 200
    example = {"id": tf.constant("a"), "image": tf.constant(image), "male": tf.constant(1, tf.int64),
               "boneage_months": tf.constant(100.0), "keypoints": tf.zeros((3, 2))}
    if with_mask:
        example["mask"] = tf.constant((image > 0).astype(np.uint8) * 255)
    return example


def test_the_mask_head_refuses_a_dataset_without_masks_with_the_fix():
    config = get_config("small")
    with pytest.raises(DataError, match="model.aux.mask_weight=0"):
        attn_task.preprocess(config, True)(_example(with_mask=False))


    class Handle:  # a dataset without masks (a folder of radiographs), as common.data hands it over
        name = "folder/radiographs"

        class builder:
            class info:
                features = {"image": None, "male": None, "boneage_months": None, "id": None}
    with pytest.raises(DataError, match="folder/radiographs: the mask head is on"):
        attn_task.check_masks(config, Handle)
    Handle.builder.info.features["mask"] = None
    attn_task.check_masks(config, Handle)  # phantoms: fine
    assert attn_task.TASK.runner.train is attn_task.run_train


def test_masks_are_kept_only_for_the_mask_head_and_never_for_evaluation():
    small, default = get_config("small"), get_config()
    assert set(attn_task.preprocess(small, True)(_example())) == {"id", "image", "male", "boneage_months", "mask"}
    assert "mask" not in attn_task.preprocess(default, True)(_example())
    assert "mask" not in attn_task.test_preprocess(small)(_example())


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
    assert set(targets) == {"months", "sex", "mask"} and targets["mask"].shape == (2, 16, 16, 1)
    assert float(tf.reduce_max(targets["mask"])) <= 1.0 and float(tf.reduce_max(targets["mask"])) > 0.9
    assert set(attn_task.loss(config)) == {"months", "sex", "mask"} and set(attn_task.metrics(config)) == {"months", "sex"}
    assert set(attn_task.loss(get_config())) == {"months"}


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
    attn_task._EVALUATING.clear()
