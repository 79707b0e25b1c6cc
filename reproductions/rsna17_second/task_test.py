"""The rsna17_second Task: the sex filter, the fusion read-outs, sub-runs per sex (without a ResNet)."""
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from common import pipeline
from common import train as common_train
from common.options import RunOptions
from reproductions.rsna17_second import task as second_task
from reproductions.rsna17_second.config import get_config
from reproductions.rsna17_second.task import TASK


def _config(sex="both", variant="small"):
    config = get_config(variant)
    config.model.sex = sex
    return config


def test_the_filter_keeps_the_models_sex():
    assert second_task.example_filter(_config("both")) is None
    examples = [{"male": tf.constant(m, tf.int64)} for m in (0, 1, 1, 0)]
    assert [bool(second_task.example_filter(_config("male"))(e)) for e in examples] == [False, True, True, False]
    assert [bool(second_task.example_filter(_config("female"))(e)) for e in examples] == [True, False, False, True]
    with pytest.raises(ValueError, match="Received: sex='boys'"):
        second_task.example_filter(_config("boys"))


def test_build_model_needs_one_sex():
    with pytest.raises(ValueError, match="must be one of"):
        second_task.build_model(_config("both"))


def test_fusions_come_primary_first_and_learned_only_with_weights():
    config = _config()
    patches = np.tile(np.arange(49, dtype=float), (3, 1))
    male = np.array([0, 1, 0])
    out = second_task.fuse_all(patches, male, config, {})
    assert list(out) == ["mean", "median"]  # no fitted weights yet: no learned estimate
    np.testing.assert_allclose(out["mean"], 24.0)
    one_hot = {"female": np.eye(49)[3], "male": np.eye(49)[40]}
    out = second_task.fuse_all(patches, male, config, one_hot)
    assert list(out) == ["mean", "median", "learned"]
    np.testing.assert_allclose(out["learned"], [3.0, 40.0, 3.0])  # each radiograph uses its sex's weights
    config.eval.primary_fusion = "learned"
    assert list(second_task.fuse_all(patches, male, config, one_hot))[0] == "learned"


def test_training_learns_from_a_random_subset_only_when_asked():
    assert second_task.expand_sample(get_config()) is None  # the paper: all 49 patches
    assert second_task.expand_sample(get_config("thumbs")) == get_config("thumbs").train.patches_per_image
    assert second_task.expand_sample(get_config("thumbs_whole")) is None  # the one whole image, every epoch
    assert second_task.expand_sample(get_config("whole")) is None


def test_whole_variant_builds_a_resnet_that_sees_the_whole_crop():
    """Issue #8 ablation: the patch model's input is the whole image_size crop (size 64 here, for speed)."""
    config = get_config("thumbs_whole").apply_overrides(["data.image_size=64", "data.patch_size=64", "model.sex=male"])
    model = second_task.build_model(config)
    assert model.name == "rsna17_second_male" and tuple(model.input["image"].shape) == (None, 64, 64, 1)
    assert model.get_layer("resnet50").inputs[0].shape[1:] == (64, 64, 3)
    full = get_config("thumbs_whole")
    assert full.data.patch_size == full.data.image_size == 128  # what build_model gives the unshrunk variant


def test_fusions_of_one_patch_are_the_prediction_and_fitted_weights_are_reloaded(tmp_path):
    config = _config("both", "thumbs_whole")
    patches = np.array([[80.0], [150.0], [99.0]])
    male = np.array([0, 1, 0])
    out = second_task.fuse_all(patches, male, config, {"female": np.ones(1), "male": np.ones(1)})
    assert list(out) == ["mean", "median", "learned"]
    for fused in out.values():
        np.testing.assert_allclose(fused, patches[:, 0])
    weights_file = tmp_path / "checkpoints" / "best.weights.h5"
    weights_file.parent.mkdir()
    weights_file.write_bytes(b"weights")
    (tmp_path / second_task.FUSION_FILE).write_text(json.dumps(
        {"weights": [1.0], "weights_sha256": second_task._sha256(weights_file)}))
    np.testing.assert_array_equal(second_task._fresh_fusion(tmp_path, weights_file, config.data.patch_grid), [1.0])
    assert second_task._fresh_fusion(tmp_path, weights_file, 7) is None  # a 49-patch run's file would not match


def test_its_runner_trains_one_sub_run_per_sex_and_loads_them_as_one_router():
    runner = TASK.runner
    assert runner.several_models  # several processes are refused: `train --sex both` trains two models
    assert (runner.train, runner.load_trained, runner.calibrate, runner.add_flags) == (
        second_task.run_train, second_task.load_trained, second_task.calibrate, second_task.add_flags)


def test_unknown_sex_flag_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        common_train.main(TASK, ["train", "--sex", "girls"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'girls'" in capsys.readouterr().err


def test_both_trains_one_sub_run_per_sex_and_skips_finished_ones(tiny_phantoms, tmp_path, monkeypatch):
    """run_train's bookkeeping with common.train.train replaced by a stub that writes a sub-run."""
    trained = []

    def fake_train(task, options, log=print):
        config = common_train.make_config(task, options)
        out = tmp_path / "run" / config.model.sex
        out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"epoch": [0, 1], "loss": [50.0, 40.0], "mae": [50.0, 40.0], "val_loss": [45.0, 30.0],
                      "val_mae": [45.0, 30.0]}).to_csv(out / "metrics.csv", index=False)
        (out / "run.json").write_text(json.dumps({
            "paper": task.paper, "variant": config.variant, "status": "trained", "epochs_done": config.train.epochs,
            "epochs": config.train.epochs, "wall_time_s": 60.0, "image_size": config.data.image_size,
            "best_val_mae": 30.0, "best_epoch": 2, "config": config.to_dict(), "started": "a", "ended": "b",
            "dataset": {"name": "phantoms/tiny"}}))
        trained.append(config.model.sex)

    monkeypatch.setattr(common_train, "train", fake_train)
    monkeypatch.setattr(common_train, "RESULTS_DIR", tmp_path)
    data_dir = tiny_phantoms.version_dir.parents[2]
    options = RunOptions(data="phantoms/tiny", data_dir=str(data_dir), variant="small", epochs=2,
                         precision="float32", out=str(tmp_path / "run"), extras={"sex": "both"})
    run_dir, _, handle, config = second_task.run_train(TASK, options, log=lambda *_: None)
    assert trained == ["female", "male"] and config.model.sex == "both"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "trained" and record["wall_time_s"] == 120.0 and set(record["sub_runs"]) == {
        "female", "male"}
    boys = sum(int(e["male"]) for e in pipeline.read_split(handle, "train"))
    assert record["sub_runs"]["male"]["train_images"] == boys
    assert record["sub_runs"]["female"]["train_images"] == handle.splits["train"] - boys
    history = common_train.read_history(run_dir)  # what evaluate plots: both sexes' curves side by side
    assert {"female_mae", "val_female_mae", "male_mae", "val_male_mae"} <= set(history.columns)
    assert json.loads((run_dir / "config.json").read_text())["model"]["sex"] == "both"

    logs = []
    second_task.run_train(TASK, options, log=logs.append)  # the same command again: both are finished
    assert trained == ["female", "male"] and sum("skipping" in line for line in logs) == 2
    options = dataclasses.replace(options, epochs=3)  # a longer run resumes them
    second_task.run_train(TASK, options, log=lambda *_: None)
    assert trained == ["female", "male", "female", "male"]


def test_the_r512_pair_refuses_the_wrong_start_before_any_data(tmp_path, monkeypatch, capsys):
    """r512_fromthumbs starts from the thumbs run by its name, r512 from random weights: train refuses
    each with the other's start before it opens any data, so neither record can hold the wrong start."""
    from common import data
    from common.cli import main
    from reproductions.rsna17_second.task import TASK

    def resolve(*args, **kwargs):
        raise AssertionError("data.resolve was called")
    monkeypatch.setattr(data, "resolve", resolve)
    common = ["train", "--data", "phantoms/small", "--out", str(tmp_path / "run")]
    assert main(TASK, [*common, "--variant", "r512_fromthumbs"]) == 2
    assert "starts from another run's weights by its name" in capsys.readouterr().err
    assert main(TASK, [*common, "--variant", "r512", "--init-from", str(tmp_path)]) == 2
    assert "starts from random weights by its name" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
